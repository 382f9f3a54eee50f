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
