/* tests/test_harden.c: loading checkpoints defensively (issue 23):
 * src/train/checkpoint.c checks each tensor's shape dimension by
 * dimension (a [64, 10] weight used to load into a [10, 64] parameter
 * because the element counts agree) and refuses NaN/Inf values, naming
 * the tensor, the file and the element. Parser fuzzing lives in
 * tests/fuzz/; the file-format tests in test_safetensors.c and
 * test_data.c. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "support/support.h"
#include <criterion/redirect.h>
#include "model/graph.h"
#include "model/safetensors.h"
#include "train/checkpoint.h"
#include "cl/tunedb.h"
#include "ops/reduce.h"
#include "ref/ref_eltwise.h"

static void fini(void)
{
    qg_test_ctx_free();
}

TestSuite(harden, .fini = fini, .timeout = 60);

#define EXPECT_ERR(expr, want_st, ...)                                                    \
    do {                                                                                \
        qg_status s_ = (expr);                                                          \
        cr_assert_eq(s_, want_st, "%s returned %s, want %s (%s)", #expr,                \
                     qg_status_str(s_), qg_status_str(want_st), qg_last_error());       \
        const char *subs_[] = {__VA_ARGS__};                                            \
        for (size_t k_ = 0; k_ < sizeof subs_ / sizeof *subs_; k_++)                    \
            cr_assert_not_null(strstr(qg_last_error(), subs_[k_]),                      \
                               "error \"%s\" lacks \"%s\"", qg_last_error(), subs_[k_]); \
    } while (0)

/* A model with a linear-like [10, 64] weight, a [1] PACT-like clip value
 * and optimizer state on the weight. */
static qg_model *small_model(qg_param **w, qg_param **alpha)
{
    qg_model *m = NULL;
    QG_EXPECT_OK(qg__model_new(qg_test_ctx(), "test", 1, 8, 8, 10, &m));
    const int64_t ws[2] = {10, 64}, one[1] = {1};
    QG_EXPECT_OK(qg__model_add_param(m, "fc.weight", QG_PARAM_WEIGHT, 2, ws, w));
    QG_EXPECT_OK(qg__model_add_param(m, "act.alpha", QG_PARAM_CLIP, 1, one, alpha));
    QG_EXPECT_OK(qg_tensor_new(m->ctx, 2, ws, QG_DTYPE_F32, "m", &(*w)->state[0]));
    return m;
}

typedef struct file_spec {
    int64_t wshape[2];
    int alpha_scalar;          /* store alpha as [] instead of [1] */
    float wpoison, spoison;    /* written at element 37 of weight / state (0: none) */
} file_spec;

static const char *write_ckpt(const file_spec *s, float *wdata, float *sdata)
{
    static float alpha = 6.0f;
    for (int i = 0; i < 640; i++) {
        wdata[i] = (float)i / 64.0f - 5.0f;
        sdata[i] = (float)i * 1e-3f;
    }
    if (s->wpoison != 0)
        wdata[37] = s->wpoison;
    if (s->spoison != 0)
        sdata[37] = s->spoison;
    const qg_st_tensor ts[3] = {
        {.name = "fc.weight", .dtype = QG_DTYPE_F32, .ndim = 2,
         .shape = {s->wshape[0], s->wshape[1]}, .data = wdata},
        {.name = "act.alpha", .dtype = QG_DTYPE_F32, .ndim = s->alpha_scalar ? 0 : 1,
         .shape = {1}, .data = &alpha},
        {.name = "optimizer.fc.weight.state0", .dtype = QG_DTYPE_F32, .ndim = 2,
         .shape = {10, 64}, .data = sdata},
    };
    const char *path = qg_test_tmp_path("harden", "ckpt.safetensors");
    QG_EXPECT_OK(qg__safetensors_write(path, ts, 3, NULL, 0));
    return path;
}

static qg_status load(qg_model *m, const char *path, int with_optimizer)
{
    qg_st_file *f = NULL;
    QG_EXPECT_OK(qg__safetensors_read(path, &f));
    qg_status st = qg__checkpoint_load(m, f, path, with_optimizer);
    qg__safetensors_free(f);
    return st;
}

/* Issue 23.4: shapes are compared exactly. */
Test(harden, checkpoint_shapes_must_match_exactly)
{
    qg_param *w, *alpha;
    qg_model *m = small_model(&w, &alpha);
    float wd[640], sd[640];

    const char *p = write_ckpt(&(file_spec){.wshape = {64, 10}}, wd, sd);
    EXPECT_ERR(load(m, p, 0), QG_ERR_SHAPE, p, "'fc.weight'", "F32 [64, 10]",
               "expects F32 [10, 64]");
    p = write_ckpt(&(file_spec){.wshape = {640, 1}}, wd, sd);
    EXPECT_ERR(load(m, p, 0), QG_ERR_SHAPE, "[640, 1]", "[10, 64]");

    /* The right shape loads, values intact; [] and [1] are one value. */
    for (int scalar = 0; scalar < 2; scalar++) {
        p = write_ckpt(&(file_spec){.wshape = {10, 64}, .alpha_scalar = scalar}, wd, sd);
        QG_EXPECT_OK(load(m, p, 1));
        float *got = qg_test_read(w->value);
        cr_assert_arr_eq(got, wd, sizeof wd);
        free(got);
        got = qg_test_read(alpha->value);
        cr_assert_eq(got[0], 6.0f);
        free(got);
        got = qg_test_read(w->state[0]);
        cr_assert_arr_eq(got, sd, sizeof sd);
        free(got);
    }
    unlink(p);
    qg__model_free(m);
}

/* Issue 23.5/23.10: NaN or Inf in a checkpoint is refused on load, naming
 * the tensor and element, with no "lower --lr?" hint (that belongs to a
 * run that diverges). */
Test(harden, checkpoint_non_finite_values_are_refused)
{
    qg_param *w, *alpha;
    qg_model *m = small_model(&w, &alpha);
    float wd[640], sd[640];
    const char *p = write_ckpt(&(file_spec){.wshape = {10, 64}, .wpoison = NAN}, wd, sd);
    EXPECT_ERR(load(m, p, 0), QG_ERR_FORMAT, p, "tensor 'fc.weight'", "1 non-finite value",
               "element 37");
    cr_assert_null(strstr(qg_last_error(), "--lr"), "%s", qg_last_error());
    cr_assert_not_null(strstr(qg_ctx_last_error(m->ctx), "fc.weight"));

    p = write_ckpt(&(file_spec){.wshape = {10, 64}, .spoison = -INFINITY}, wd, sd);
    QG_EXPECT_OK(load(m, p, 0)); /* optimizer state not read: nothing to refuse */
    EXPECT_ERR(load(m, p, 1), QG_ERR_FORMAT, "'optimizer.fc.weight.state0'", "-inf",
               "element 37");
    unlink(p);
    qg__model_free(m);
}

/* Issue 23.9: tuning-database values that passed the host check but hit
 * a kernel's #error (optim WG=4096 on a device allowing 4096) aborted
 * every run, and CLBlast parameters of 0 divided by zero in the host
 * check itself. Such entries are now dropped with a warning naming the
 * file and the entry, valid entries beside them still apply, and the
 * warning is printed without --verbose. */
static void redirect_err(void)
{
    cr_redirect_stderr();
}

Test(harden, tunedb_entries_the_kernels_refuse_are_ignored, .init = redirect_err)
{
    char *db = qg_test_tmp_path("harden", "tune.json");
    unlink(db);
    qg_ctx *ctx = qg_test_ctx_with_db(db);
    const char *key = qg_ctx_device(ctx)->key;
    char text[2048];
    snprintf(text, sizeof text,
             "{\"schema\": 1, \"entries\": ["
             "{\"device\": \"%s\", \"program\": \"optim\", \"shape\": \"*\", "
             "\"params\": {\"WG\": 4096}},"
             "{\"device\": \"%s\", \"program\": \"quant\", \"params\": {\"WG\": 64, \"VW\": 3}},"
             "{\"device\": \"%s\", \"program\": \"clblast_xgemm\", \"params\": {\"MDIMC\": 0}},"
             "{\"device\": \"%s\", \"program\": \"eltwise\", \"params\": {\"WG\": \"big\"}},"
             "{\"device\": \"%s\", \"program\": \"reduce\", \"params\": {\"WG\": 128}}]}",
             key, key, key, key, key);
    qg_test_write_text(db, text);
    qg__tunedb_reset(ctx);
    long v[QG_MAX_TUNABLES];
    int n;
    QG_EXPECT_OK(qg__program_params(ctx, "optim", v, &n));
    cr_expect_eq(v[0], 256, "optim WG=4096 was used");
    QG_EXPECT_OK(qg__program_params(ctx, "quant", v, &n));
    cr_expect_eq(v[2], qg_ctx_device(ctx)->type == QG_DEVICE_TYPE_CPU ? 16 : 1,
                 "quant VW=%ld", v[2]);
    cr_expect_eq(qg__tunedb_lookup(ctx, QG_PROG_CLBLAST_XGEMM, "*", v), 0);
    QG_EXPECT_OK(qg__program_params(ctx, "reduce", v, &n));
    cr_expect_eq(v[0], 128, "the valid entry beside them must still apply");
    const char *w = qg__tunedb_warnings(ctx);
    const char *want[] = {db, "entry 0 (program 'optim', shape '*')",
                          "WG=4096 is not a power of two in 1..1024",
                          "entry 1 (program 'quant'", "VW=3 is not one of the values",
                          "entry 2 (program 'clblast_xgemm'", "entry 3 (program 'eltwise'",
                          "WG is not an integer"};
    for (size_t i = 0; i < sizeof want / sizeof *want; i++)
        cr_expect_not_null(strstr(w, want[i]), "warnings \"%s\" lack \"%s\"", w, want[i]);
    cr_expect_null(strstr(w, "'reduce'"), "%s", w);
    /* The registry's own check refuses what the kernels refuse. */
    long big = 2048;
    cr_expect_eq(qg__program_override(ctx, "reduce", &big), QG_ERR_INVALID_ARG);
    qg_ctx_free(ctx);

    qg_test_write_text(db, "{\"schema\": 1, \"entries\": [ {oops");
    ctx = qg_test_ctx_with_db(db); /* not verbose */
    QG_EXPECT_OK(qg__program_params(ctx, "optim", v, &n));
    qg_ctx_free(ctx);
    unlink(db);
    fflush(stderr);
    char out[4096];
    size_t got = fread(out, 1, sizeof out - 1, cr_get_redirected_stderr());
    out[got] = 0;
    cr_expect_not_null(strstr(out, "qgate: warning: ignoring entry 0 (program 'optim'"), "%s",
                       out);
    cr_expect_not_null(strstr(out, "qgate: warning: ignoring corrupt tuning database"), "%s",
                       out);
}

/* qg__tensor_all_finite / qg__reduce_nonfinite (cl/reduce.cl) against
 * qg_ref_reduce_nonfinite, for the trainer's divergence check: NaN, +Inf
 * and -Inf count, the largest finite floats and subnormals do not. The
 * view sits inside a NaN-filled parent, so a read outside it would count;
 * odd sizes hit partial work-groups, under three work-group sizes. */
Test(harden, nonfinite_count_matches_the_reference)
{
    qg_ctx *ctx = qg_test_ctx();
    const size_t sizes[] = {1, 3, 31, 64, 65, 1000};
    const long wgs[] = {16, 64, 256};
    for (size_t w = 0; w < sizeof wgs / sizeof *wgs; w++) {
        QG_EXPECT_OK(qg__program_override(ctx, "reduce", &wgs[w]));
        for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
            size_t n = sizes[k], pad = 7;
            float *host = malloc((n + 2 * pad) * sizeof *host);
            for (size_t i = 0; i < n + 2 * pad; i++)
                host[i] = NAN;
            float *x = host + pad;
            qg_test_fill(x, n, -3.0f, 3.0f, 42);
            x[0] = 3.4028235e38f;
            if (n > 1)
                x[n - 1] = 1e-45f;
            for (int variant = 0; variant < 2; variant++) {
                if (variant == 1) {
                    x[n - 1] = NAN;
                    x[n / 2] = INFINITY;
                    x[n / 3] = -INFINITY;
                }
                const int64_t all[1] = {(int64_t)(n + 2 * pad)}, vs[1] = {(int64_t)n},
                              one[1] = {1};
                qg_tensor *parent = NULL, *view = NULL, *out = NULL;
                QG_EXPECT_OK(qg_tensor_new(ctx, 1, all, QG_DTYPE_F32, "parent", &parent));
                QG_EXPECT_OK(qg_tensor_write(parent, host, (n + 2 * pad) * sizeof *host));
                QG_EXPECT_OK(qg_tensor_view(parent, pad, 1, vs, &view));
                QG_EXPECT_OK(qg_tensor_new(ctx, 1, one, QG_DTYPE_F32, "count", &out));
                QG_EXPECT_OK(qg__reduce_nonfinite(ctx, view, out));
                float got;
                QG_EXPECT_OK(qg_tensor_read(out, &got, sizeof got));
                size_t want = qg_ref_reduce_nonfinite(n, x);
                size_t planted = 1 + (n / 2 != n - 1) + (n / 3 != n / 2 && n / 3 != n - 1);
                cr_expect_eq(want, variant ? planted : 0u, "n=%zu", n);
                cr_expect_eq((size_t)got, want, "n=%zu WG=%ld variant %d: %g vs %zu", n,
                             wgs[w], variant, got, want);
                int ok = -1;
                QG_EXPECT_OK(qg__tensor_all_finite(ctx, view, &ok));
                cr_expect_eq(ok, variant == 0, "n=%zu WG=%ld variant %d", n, wgs[w], variant);
                qg_tensor_free(view);
                qg_tensor_free(parent);
                qg_tensor_free(out);
            }
            free(host);
        }
    }
    QG_EXPECT_OK(qg__program_override(ctx, "reduce", NULL));
}

/* Issue 23, fidelity: a partial last batch fills only the first n slots
 * of the batch buffer; the rest hold the previous batch. The PG layers'
 * whole-tensor activation scale and the gate counters used to see those
 * stale slots. Now only the real rows count: evaluating 5 images in an
 * 8-slot model gives the same loss, correct count and gate counters
 * whether the stale slots hold huge values or copies of the 5 images,
 * and the counters cover exactly 5 images' outputs. (A ReLU model
 * without PACT, so nothing bounds the stale values.) */
static void gates(qg_model *m, long long *total, long long *on)
{
    int ng = 0;
    QG_EXPECT_OK(qg__model_gate_stats(m, total, on, &ng, NULL, NULL, NULL));
    cr_assert_gt(ng, 0);
}

Test(harden, partial_batch_sees_only_its_real_rows, .timeout = 300)
{
    qg_ctx *ctx = qg_test_ctx();
    const qg_method_cfg *mc = qg_test_methods("pg abits=4 pred_bits=2");
    qg_model_opts mo = {.arch = "resnet8", .in_c = 1, .in_h = 8, .in_w = 8, .classes = 3,
                        .seed = 4, .methods = mc};
    qg_model *m;
    QG_EXPECT_OK(qg_model_new(ctx, &mo, &m));
    qg_optim_cfg oc = {.kind = QG_OPTIM_SGD, .lr = 0.05f, .momentum = 0.9f,
                       .decay_kinds = QG_DECAY_ALL};
    qg_trainer *t;
    QG_EXPECT_OK(qg_trainer_new(m, &oc, 8, &t));
    float real[8 * 64], junk[8 * 64], copies[8 * 64];
    int32_t y[8] = {0, 1, 2, 0, 1, 2, 0, 1};
    qg_test_fill(real, 8 * 64, -1, 1, 11);
    qg_test_fill(junk, 8 * 64, -40, 40, 12);
    memcpy(copies, real, 5 * 64 * sizeof(float));
    memcpy(copies + 5 * 64, real, 3 * 64 * sizeof(float));
    /* a few steps so the thresholds and weights are not the initial ones */
    for (int s = 0; s < 3; s++)
        QG_EXPECT_OK(qg_trainer_step(t, real, y, 8, 0.05f, NULL, NULL));

    long long tot8, on8, tot[2], on[2];
    float ls[2];
    int c[2];
    QG_EXPECT_OK(qg__model_gate_reset(m));
    QG_EXPECT_OK(qg_trainer_eval(t, real, y, 8, &ls[0], &c[0]));
    gates(m, &tot8, &on8);
    for (int k = 0; k < 2; k++) {
        QG_EXPECT_OK(qg_trainer_eval(t, k ? copies : junk, y, 8, &ls[k], &c[k]));
        QG_EXPECT_OK(qg__model_gate_reset(m));
        QG_EXPECT_OK(qg_trainer_eval(t, real, y, 5, &ls[k], &c[k]));
        gates(m, &tot[k], &on[k]);
    }
    cr_expect_eq(tot[0], tot8 / 8 * 5, "gate counters cover %lld outputs, 5 images have %lld",
                 tot[0], tot8 / 8 * 5);
    cr_expect_eq(tot[1], tot[0]);
    cr_expect_eq(on[0], on[1], "outputs updated in full: %lld after junk, %lld after copies",
                 on[0], on[1]);
    cr_expect_eq(ls[0], ls[1], "loss of the 5 images: %.9g after junk, %.9g after copies",
                 ls[0], ls[1]);
    cr_expect_eq(c[0], c[1]);
    qg_trainer_free(t);
    qg_model_free(m);

    /* A training step on 5 of 8 slots (--keep-last's partial batch) is
     * the step of a 5-sample model: same loss, same updated weights. */
    float lt[2];
    float *wt[2];
    for (int k = 0; k < 2; k++) {
        QG_EXPECT_OK(qg_model_new(ctx, &mo, &m));
        QG_EXPECT_OK(qg_trainer_new(m, &oc, k ? 5 : 8, &t));
        if (!k)
            QG_EXPECT_OK(qg_trainer_eval(t, junk, y, 8, NULL, NULL));
        QG_EXPECT_OK(qg_trainer_step(t, real, y, 5, 0.05f, &lt[k], NULL));
        qg_param *p = qg__model_find_param(m, "linear.weight");
        cr_assert_not_null(p);
        wt[k] = qg_test_read(p->value);
        qg_trainer_free(t);
        qg_model_free(m);
    }
    cr_expect_eq(lt[0], lt[1], "step loss %.9g in 8 slots, %.9g in a 5-sample model", lt[0],
                 lt[1]);
    cr_expect(qg_test_allclose("weights after the partial step", wt[0], wt[1], 3 * 64, 0, 0));
    free(wt[0]);
    free(wt[1]);
}
