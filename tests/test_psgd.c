/* tests/test_psgd.c: PSGD (docs/methods.md §6): the grid kernels of
 * cl/psgd.cl (via src/quant/psgd.c) against src/ref/ref_psgd.c and the
 * oracles PSGD-Q1 and PSGD-1 on both; hand cases for the running range
 * (first call, moving average, the reference's "previous 0 counts as the
 * current value") and for weights exactly on grid points (zero gradient);
 * the weight quantizer inside a ResNet (scaled gradients against the float
 * model's, the optimizer's weight decay added after the scaling,
 * low-precision forwards); the method's options (--psgd --wbits does not
 * turn on quantized training).
 *
 * Tolerances: the kernels and their C twins do the same IEEE float
 * operations in the same order (FP_CONTRACT off, PoCL's division correctly
 * rounded), so ranges, grid values and scaled gradients are compared
 * exactly. Model gradients: the two models run the same kernels on the
 * same data, so the float model's gradient scaled on the host must equal
 * the PSGD model's exactly too; the SGD step's result within 1e-6 absolute
 * (the device may fuse the update's multiply-add). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <jansson.h>

#include "qgate/train.h"

#include "support/support.h"
#include "cl/ctx.h"
#include "method/method.h"
#include "method/params.h"
#include "model/graph.h"
#include "model/wquant.h"
#include "quant/psgd.h"
#include "ref/ref_psgd.h"
#include "tensor/tensor_impl.h"
#include "train/optim.h"
#include "train/trainer.h"

TestSuite(psgd, .fini = qg_test_ctx_free);

static qg_tensor *flat(qg_ctx *ctx, size_t n, const float *v)
{
    int64_t s[1] = {(int64_t)n};
    return qg_test_tensor(ctx, 1, s, v);
}

/* Runs the range update (with Q(w)) on the device and the reference from
 * the same state; both states and Q(w) must agree exactly. */
static void range_both(qg_ctx *ctx, size_t n, const float *w, int bits, float *state,
                       float *wq_out)
{
    qg_tensor *tw = flat(ctx, n, w), *ts = flat(ctx, QG_PSGD_STATE_NUMEL, state);
    int64_t s[1] = {(int64_t)n};
    qg_test_buf q = qg_test_buf_new(ctx, 1, s, NULL);
    QG_EXPECT_OK(qg__psgd_range(ctx, tw, bits, ts, q.view));
    float *dq = qg_test_buf_get(&q, "wq"), *ds = qg_test_read(ts);
    float *rq = malloc(n * sizeof *rq);
    qg_ref_psgd_range(n, w, bits, state, rq);
    cr_expect(qg_test_allclose("range state", ds, state, QG_PSGD_STATE_NUMEL, 0, 0));
    cr_expect(qg_test_allclose("Q(w)", dq, rq, n, 0, 0));
    if (wq_out)
        memcpy(wq_out, rq, n * sizeof *rq);
    free(dq), free(ds), free(rq);
    qg_test_buf_free(&q);
    qg_tensor_free(tw), qg_tensor_free(ts);
}

/* g scaled on the device and by the reference; both must agree exactly. */
static void scale_both(qg_ctx *ctx, size_t n, const float *w, float *g, int bits, float lambda,
                       const float *state)
{
    qg_tensor *tw = flat(ctx, n, w), *ts = flat(ctx, QG_PSGD_STATE_NUMEL, state);
    int64_t s[1] = {(int64_t)n};
    qg_test_buf tg = qg_test_buf_new(ctx, 1, s, g);
    QG_EXPECT_OK(qg__psgd_scale(ctx, tw, tg.view, bits, lambda, ts));
    float *dg = qg_test_buf_get(&tg, "g");
    qg_ref_psgd_scale(n, w, g, bits, lambda, state);
    cr_expect(qg_test_allclose("scaled gradient", dg, g, n, 0, 0));
    free(dg);
    qg_test_buf_free(&tg);
    qg_tensor_free(tw), qg_tensor_free(ts);
}

/* PSGD-Q1 (spec T8.2): b = 4, absmax 7 so delta = 1; ties go to even. */
Test(psgd, oracle_ties_on_the_grid)
{
    qg_ctx *ctx = qg_test_ctx();
    float w[5] = {7.0f, 2.5f, -2.5f, 3.5f, 0.5f}, st[4] = {0}, wq[5];
    range_both(ctx, 5, w, 4, st, wq);
    cr_expect_eq(st[0], -2.5f);
    cr_expect_eq(st[1], 7.0f);
    cr_expect_eq(st[2], 1.0f);
    cr_expect_eq(wq[0], 7.0f);
    cr_expect_eq(wq[1], 2.0f, "rint(2.5) = %g, not 3 (C round)", wq[1]);
    cr_expect_eq(wq[2], -2.0f);
    cr_expect_eq(wq[3], 4.0f);
    cr_expect_eq(wq[4], 0.0f);
    float g[5] = {1, 1, 1, 1, 1};
    scale_both(ctx, 5, w, g, 4, 150.0f, st);
    cr_expect_eq(g[0], 0.0f);
    cr_expect_eq(g[1], 75.0f);
    cr_expect_eq(g[2], 75.0f);
    cr_expect_eq(g[3], 75.0f);
    cr_expect_eq(g[4], 75.0f);
}

/* PSGD-1: W = [-0.7, 0.3, 0.234], b = 4: delta = 0.1, Q(0.234) = 0.2,
 * multiplier 150*0.034 = 5.1; then a minimum of -0.5 moves x_min to
 * -0.68 and delta to 0.0971429. */
Test(psgd, oracle_grid_scale_and_moving_average)
{
    qg_ctx *ctx = qg_test_ctx();
    float w[3] = {-0.7f, 0.3f, 0.234f}, st[4] = {0}, wq[3];
    range_both(ctx, 3, w, 4, st, wq);
    cr_expect_eq(st[2], 0.7f / 7.0f);
    cr_expect_float_eq(st[2], 0.1f, 1e-8f);
    cr_expect_float_eq(wq[2], 0.2f, 1e-7f);
    float g[3] = {0.2f, 0.2f, 0.2f};
    scale_both(ctx, 3, w, g, 4, 150.0f, st);
    cr_expect_float_eq(g[2], 1.02f, 2e-6f, "0.2 * 150 * 0.034 = %.7f", g[2]);
    cr_expect_float_eq(g[2] / 0.2f, 5.1f, 1e-5f);
    float w2[3] = {-0.5f, 0.3f, 0.1f};
    range_both(ctx, 3, w2, 4, st, NULL);
    cr_expect_float_eq(st[0], -0.68f, 1e-7f);
    cr_expect_float_eq(st[1], 0.3f, 1e-7f);
    cr_expect_float_eq(st[2], 0.0971429f, 1e-7f);
}

/* Running range by hand: first call min(0, min w) / max(0, max w) (an
 * all-positive tensor has x_min 0), later 0.1*cur + 0.9*prev, except that
 * a previous 0 stands for the current value (`prev or cur`). */
Test(psgd, running_range_by_hand)
{
    qg_ctx *ctx = qg_test_ctx();
    float st[4] = {0};
    float a[4] = {0.5f, 1.0f, 2.0f, 0.25f};
    range_both(ctx, 4, a, 3, st, NULL); /* L = 3 */
    cr_expect_eq(st[0], 0.0f);
    cr_expect_eq(st[1], 2.0f);
    cr_expect_eq(st[2], 2.0f / 3.0f);
    cr_expect_eq(st[3], 1.0f);
    float b[4] = {-1.0f, 1.0f, 0.0f, 3.0f};
    range_both(ctx, 4, b, 3, st, NULL);
    cr_expect_eq(st[0], 0.1f * -1.0f + 0.9f * -1.0f, "previous 0 counts as the current -1");
    cr_expect_eq(st[1], 0.1f * 3.0f + 0.9f * 2.0f);
    cr_expect_float_eq(st[1], 2.1f, 1e-6f);
    cr_expect_eq(st[2], fmaxf(fabsf(st[0]), st[1]) / 3.0f);
    /* an all-zero tensor: delta 0, Q = 0, no gradient and no NaN */
    float z[3] = {0, 0, 0}, s0[4] = {0}, zq[3];
    range_both(ctx, 3, z, 4, s0, zq);
    cr_expect_eq(s0[2], 0.0f);
    cr_expect_eq(zq[0], 0.0f);
    float g[3] = {1, 2, 3};
    scale_both(ctx, 3, z, g, 4, 150.0f, s0);
    cr_expect(g[0] == 0.0f && g[1] == 0.0f && g[2] == 0.0f);
}

/* Weights exactly on grid points get no gradient (no epsilon); weights
 * between two points get lambda*|w - Q| <= lambda*delta/2; outside the
 * range the clamp to +-L counts the distance to the end point. */
Test(psgd, zero_gradient_on_grid_points)
{
    qg_ctx *ctx = qg_test_ctx();
    /* delta = 0.5 (absmax 3.5 at 3 bits, L = 3... use 4 bits: L = 7, absmax 3.5) */
    float w[8] = {3.5f, -3.5f, 0.0f, 0.5f, -1.5f, 2.0f, 0.75f, -0.25f}, st[4] = {0};
    range_both(ctx, 8, w, 4, st, NULL);
    cr_expect_eq(st[2], 0.5f);
    float g[8] = {1, 1, 1, 1, 1, 1, 1, 1};
    scale_both(ctx, 8, w, g, 4, 150.0f, st);
    for (int i = 0; i < 6; i++)
        cr_expect_eq(g[i], 0.0f, "w = %g is on the grid, gradient %g", w[i], g[i]);
    cr_expect_eq(g[6], 0.25f * 150.0f);
    cr_expect_eq(g[7], 0.25f * 150.0f);
    /* a weight beyond the (moving) range: clamped to L*delta */
    float st2[4] = {-1.0f, 1.0f, 1.0f / 7.0f, 1.0f}, w2[1] = {1.5f}, g2[1] = {2.0f};
    scale_both(ctx, 1, w2, g2, 4, 10.0f, st2);
    cr_expect_float_eq(g2[0], (2.0f * fabsf(1.5f - 7.0f * (1.0f / 7.0f))) * 10.0f, 1e-6f);
}

/* Random tensors under three work-group sizes, several updates in a row
 * (the moving range), sizes below and above one group's items. */
Test(psgd, kernels_match_reference, .timeout = 120)
{
    qg_ctx *ctx = qg_test_ctx();
    static const long wgs[] = {256, 16, 64};
    static const size_t sizes[] = {1, 37, 4608, 70001};
    for (size_t k = 0; k < 3; k++) {
        QG_EXPECT_OK(qg__program_override(ctx, "psgd", &wgs[k]));
        for (size_t si = 0; si < 4; si++) {
            size_t n = sizes[si];
            float *w = malloc(n * 4), *g = malloc(n * 4), st[4] = {0};
            for (int step = 0; step < 3; step++) {
                int bits = 2 + (int)((k + si + step) % 7);
                qg_test_fill(w, n, -0.3f - 0.1f * step, 0.25f + 0.05f * step,
                             (uint32_t)(100 * k + 10 * si + step));
                qg_test_fill(g, n, -1, 1, (uint32_t)(7 + step));
                range_both(ctx, n, w, bits, st, NULL);
                scale_both(ctx, n, w, g, bits, 150.0f, st);
            }
            free(w), free(g);
        }
    }
}

Test(psgd, launcher_checks_name_the_problem)
{
    qg_ctx *ctx = qg_test_ctx();
    float w[4] = {1, 2, 3, 4}, st[4] = {0};
    qg_tensor *tw = flat(ctx, 4, w), *ts = flat(ctx, 4, st), *short_st = flat(ctx, 3, st);
    cr_expect_eq(qg__psgd_range(ctx, tw, 1, ts, NULL), QG_ERR_INVALID_ARG);
    cr_expect(strstr(qg_last_error(), "bits"), "%s", qg_last_error());
    cr_expect_neq(qg__psgd_range(ctx, tw, 4, short_st, NULL), QG_OK);
    cr_expect(strstr(qg_last_error(), "state"), "%s", qg_last_error());
    qg_tensor *g3 = flat(ctx, 3, st);
    cr_expect_neq(qg__psgd_scale(ctx, tw, g3, 4, 1.0f, ts), QG_OK);
    qg_tensor_free(tw), qg_tensor_free(ts), qg_tensor_free(short_st), qg_tensor_free(g3);
}

/* --psgd --wbits 4 sets PSGD's bits without turning on quantized
 * training; -w alone still does; --psgd with -a (activation quantization)
 * or --pg is refused with a message naming the flags. */
Test(psgd, options)
{
    qg_method_cfg mc;
    QG_EXPECT_OK(qg_test_methods_try("psgd wbits=4 lambda_s=150 first_last_quant=1", &mc));
    cr_expect(qg__method_on(&mc, QG_METHOD_PSGD));
    cr_expect(!qg__method_on(&mc, QG_METHOD_QUANT), "--psgd --wbits turned on quantization");
    const qg_psgd_params *p = qg__method_params(&mc, QG_METHOD_PSGD);
    cr_expect_eq(p->wbits, 4);
    cr_expect_eq(p->lambda_s, 150.0f);
    cr_expect_eq(p->body.bits, 4);
    cr_expect_eq(p->first_last.bits, 4);
    QG_EXPECT_OK(qg_test_methods_try("psgd wbits=3 first_last_quant=1", &mc));
    p = qg__method_params(&mc, QG_METHOD_PSGD);
    cr_expect_eq(p->body.bits, 3);
    cr_expect_eq(p->first_last.bits, 8, "first and last layers at 8 bits below 4");
    QG_EXPECT_OK(qg_test_methods_try("wbits=4", &mc));
    cr_expect(qg__method_on(&mc, QG_METHOD_QUANT));
    cr_expect(!qg__method_on(&mc, QG_METHOD_PSGD));
    cr_expect_eq(qg_test_methods_try("psgd abits=4", &mc), QG_ERR_INVALID_ARG);
    cr_expect(strstr(qg_last_error(), "--psgd"), "%s", qg_last_error());
    cr_expect_eq(qg_test_methods_try("lambda_s=3", &mc), QG_ERR_INVALID_ARG);
    cr_expect(strstr(qg_last_error(), "--psgd"), "%s", qg_last_error());
}

static qg_model *resnet8(qg_ctx *ctx, const char *spec)
{
    qg_model *m;
    const qg_method_cfg *mc = spec ? qg_test_methods(spec) : NULL;
    QG_EXPECT_OK(qg__model_build(ctx, "resnet8", 'B', 1, 8, 8, 5, 3, mc, &m));
    return m;
}

/* Inside a ResNet-8 with option-B shortcuts and --first-last-quant: every
 * conv and linear (and the linear's bias) has a grid quantizer, BN none;
 * the PSGD model's gradients are the float twin's scaled by
 * lambda*|w - Q(w)| (the grid of the weights themselves after one
 * forward), BN gradients unchanged; the SGD step adds the weight decay
 * after the scaling; a low-precision forward computes with Q(w). */
Test(psgd, model_gradients_and_weight_decay, .timeout = 300)
{
    qg_ctx *ctx = qg_test_ctx();
    qg_model *mf = resnet8(ctx, NULL);
    qg_model *mp = resnet8(ctx, "psgd wbits=4 lambda_s=150 first_last_quant=1");
    int nq = 0;
    for (int qi = 0; qi < mp->nwquants; qi++) {
        qg_wquant *q = mp->wquants[qi];
        cr_expect_eq(q->ops, &qg__wquant_grid);
        cr_expect(q->w->kind == QG_PARAM_WEIGHT || strcmp(q->w->name, "linear.bias") == 0,
                  "%s has a grid quantizer", q->w->name);
        nq++;
    }
    /* stem, 3 blocks x 2 convs, 2 shortcut convs, linear weight and bias */
    cr_expect_eq(nq, 1 + 6 + 2 + 2, "%d grid quantizers", nq);
    const int N = 4;
    QG_EXPECT_OK(qg__model_setup(mf, N));
    QG_EXPECT_OK(qg__model_setup(mp, N));
    float x[4 * 64], dl[4 * 5];
    qg_test_fill(x, sizeof x / 4, -1, 1, 3);
    qg_test_fill(dl, sizeof dl / 4, -0.2f, 0.2f, 4);
    qg_model *ms[2] = {mf, mp};
    for (int k = 0; k < 2; k++) {
        QG_EXPECT_OK(qg_tensor_write(qg__model_input(ms[k]), x, sizeof x));
        QG_EXPECT_OK(qg__model_forward(ms[k], 1));
        QG_EXPECT_OK(qg_tensor_write(qg__model_logits_grad(ms[k]), dl, sizeof dl));
        QG_EXPECT_OK(qg__model_backward(ms[k]));
    }
    float *lf = qg_test_read(qg__model_logits(mf)), *lp = qg_test_read(qg__model_logits(mp));
    cr_expect(qg_test_allclose("PSGD forward uses the float weights", lp, lf, 20, 0, 0));
    free(lf), free(lp);
    cr_assert_eq(mf->nparams, mp->nparams, "PSGD adds no parameters");
    float lr = 0.1f, wd = 1e-3f;
    qg_optim_cfg oc = {.kind = QG_OPTIM_SGD, .momentum = 0, .weight_decay = wd,
                       .decay_kinds = QG_DECAY_ALL};
    float **want = calloc((size_t)mp->nparams, sizeof *want);
    for (int i = 0; i < mp->nparams; i++) {
        qg_param *pf = mf->params[i], *pp = mp->params[i];
        cr_assert_str_eq(pf->name, pp->name);
        if (!pp->grad)
            continue;
        size_t n = qg_tensor_numel(pp->value);
        float *w = qg_test_read(pp->value), *g = qg_test_read(pf->grad);
        float *gp = qg_test_read(pp->grad);
        int quantized = 0;
        for (int qi = 0; qi < mp->nwquants; qi++)
            quantized |= mp->wquants[qi]->w == pp;
        if (quantized) {
            float st[4] = {0};
            qg_ref_psgd_range(n, w, 4, st, NULL);
            qg_ref_psgd_scale(n, w, g, 4, 150.0f, st);
        }
        char label[128];
        snprintf(label, sizeof label, "%s gradient (%s)", pp->name,
                 quantized ? "scaled" : "unchanged");
        cr_expect(qg_test_allclose(label, gp, g, n, 0, 0));
        want[i] = malloc(n * 4);
        for (size_t j = 0; j < n; j++)
            want[i][j] = w[j] - lr * (gp[j] + wd * w[j]);
        free(w), free(g), free(gp);
    }
    QG_EXPECT_OK(qg__optim_step(mp, &oc, lr, 1));
    for (int i = 0; i < mp->nparams; i++) {
        if (!want[i])
            continue;
        float *w = qg_test_read(mp->params[i]->value);
        char label[128];
        snprintf(label, sizeof label, "%s after SGD: w - lr*(scaled g + wd*w)",
                 mp->params[i]->name);
        cr_expect(qg_test_allclose(label, w, want[i], qg_tensor_numel(mp->params[i]->value),
                                   1e-6f, 0));
        free(w), free(want[i]);
    }
    free(want);
    /* low precision: every quantized layer computes with Q(w); compare the
     * logits with the float model whose weights are set to Q(w) (of the
     * range after this forward's update, so run the update on the host
     * from the state the device holds) */
    mp->lowp = 1;
    QG_EXPECT_OK(qg__model_forward(mp, 0));
    mp->lowp = 0;
    float *lq = qg_test_read(qg__model_logits(mp));
    for (int i = 0; i < mp->nparams; i++) {
        qg_param *pp = mp->params[i];
        float *w = qg_test_read(pp->value);
        size_t n = qg_tensor_numel(pp->value);
        for (int qi = 0; qi < mp->nwquants; qi++) {
            qg_wquant *q = mp->wquants[qi];
            if (q->w == pp) {
                double dist, delta, hist[4];
                QG_EXPECT_OK(qg__wquant_grid_stats(q, &dist, &delta, 4, hist));
                cr_expect(dist >= 0 && dist <= 0.5, "%s: distance %g", pp->name, dist);
                cr_expect_float_eq(hist[0] + hist[1] + hist[2] + hist[3], 1.0, 1e-9);
                for (size_t j = 0; j < n; j++)
                    w[j] = qg_ref_psgd_q(w[j], (float)delta, 4);
            }
        }
        QG_EXPECT_OK(qg_tensor_write(mf->params[i]->value, w, n * 4));
        free(w);
    }
    mf->no_eval_fold = 1; /* the PSGD model's convs (with quantizers) never fold */
    QG_EXPECT_OK(qg__model_forward(mf, 0));
    float *lw = qg_test_read(qg__model_logits(mf));
    cr_expect(qg_test_allclose("low-precision logits = float model on Q(w)", lq, lw, 20, 1e-5f,
                               1e-5f));
    free(lq), free(lw);
    qg__model_free(mf);
    qg__model_free(mp);
}

/* PyTorch golden (tests/tools/psgd_torch.py gen): one PSGD step of a
 * ResNet-8 with option-B shortcuts and --first-last-quant, autograd plus
 * the reference's scaling and SGD's decay after it. Tolerances: logits
 * 1e-5 + 1e-4 relative; gradients and new weights 1e-5 + 1e-3 relative
 * (PyTorch's and qgate's conv sums run in different orders; the grid and
 * |w - Q(w)| are exact on both sides, the same float operations). */
Test(psgd, pytorch_golden_one_step, .timeout = 300)
{
    qg_ctx *ctx = qg_test_ctx();
    json_t *g = qg_test_golden("psgd_step");
    int bits = qg_test_json_int(g, "bits");
    char spec[128];
    snprintf(spec, sizeof spec, "psgd wbits=%d lambda_s=%g first_last_quant=1", bits,
             qg_test_json_num(g, "lambda_s"));
    qg_model *m = resnet8(ctx, spec);
    json_t *ts = json_object_get(g, "tensors");
    cr_assert(json_is_array(ts));
    size_t nt = json_array_size(ts);
    int trainable = 0;
    for (int i = 0; i < m->nparams; i++)
        trainable += m->params[i]->grad != NULL;
    cr_expect_eq((int)nt, trainable, "golden %zu tensors, model %d trainable", nt, trainable);
    for (size_t i = 0; i < nt; i++) {
        json_t *t = json_array_get(ts, i);
        const char *name = json_string_value(json_object_get(t, "name"));
        qg_param *p = qg__model_find_param(m, name);
        cr_assert_not_null(p, "qgate has no parameter '%s' (PyTorch's name)", name);
        size_t n = (size_t)qg_test_json_num(t, "numel");
        cr_assert_eq(qg_tensor_numel(p->value), n, "%s: size", name);
        float *v = qg_test_lcg_values((int)qg_test_json_num(t, "seed"), n, 0.3, qg_test_json_num(t, "offset"));
        QG_EXPECT_OK(qg_tensor_write(p->value, v, n * 4));
        free(v);
    }
    size_t nx, nd, nl;
    float *x = qg_test_json_floats(g, "x", &nx), *dl = qg_test_json_floats(g, "dlogits", &nd);
    float *want_logits = qg_test_json_floats(g, "logits", &nl);
    QG_EXPECT_OK(qg__model_setup(m, 4));
    QG_EXPECT_OK(qg_tensor_write(qg__model_input(m), x, nx * 4));
    QG_EXPECT_OK(qg__model_forward(m, 1));
    float *lo = qg_test_read(qg__model_logits(m));
    cr_expect(qg_test_allclose("logits vs PyTorch", lo, want_logits, nl, 1e-5f, 1e-4f));
    QG_EXPECT_OK(qg_tensor_write(qg__model_logits_grad(m), dl, nd * 4));
    QG_EXPECT_OK(qg__model_backward(m));
    float lr = (float)qg_test_json_num(g, "lr"), wd = (float)qg_test_json_num(g, "wd");
    qg_optim_cfg oc = {.kind = QG_OPTIM_SGD, .momentum = 0.9f, .weight_decay = wd,
                       .decay_kinds = QG_DECAY_ALL};
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1)
            QG_EXPECT_OK(qg__optim_step(m, &oc, lr, 1));
        for (size_t i = 0; i < nt; i++) {
            json_t *t = json_array_get(ts, i);
            const char *name = json_string_value(json_object_get(t, "name"));
            qg_param *p = qg__model_find_param(m, name);
            float *got = qg_test_read(pass ? p->value : p->grad);
            json_t *idx = json_object_get(t, "index");
            size_t k;
            float *want = qg_test_json_floats(t, pass ? "new" : "grad", &k);
            float *sel = malloc(k * 4);
            for (size_t j = 0; j < k; j++)
                sel[j] = got[json_integer_value(json_array_get(idx, j))];
            char label[128];
            snprintf(label, sizeof label, "%s %s vs PyTorch", name,
                     pass ? "after the SGD step" : "gradient");
            cr_expect(qg_test_allclose(label, sel, want, k, 1e-5f, 1e-3f));
            free(got), free(want), free(sel);
        }
    }
    free(x), free(dl), free(want_logits), free(lo);
    json_decref(g);
    qg__model_free(m);
}

/* A ResNet-32 with option-B shortcuts trained with PSGD (the grid adds no
 * tensors) saves a checkpoint that PyTorch loads with strict=True into a
 * model with the same names (tests/tools/psgd_torch.py check). Skipped
 * with a message when python3-torch is missing. */
Test(psgd, checkpoint_loads_in_pytorch_strict, .timeout = 300)
{
    static const char *pythons[] = {"/usr/bin/python3", "python3"};
    const char *py = NULL;
    for (int i = 0; i < 2 && !py; i++) {
        char cmd[256];
        snprintf(cmd, sizeof cmd, "%s -c 'import torch' >/dev/null 2>&1", pythons[i]);
        if (system(cmd) == 0)
            py = pythons[i];
    }
    if (!py)
        cr_skip_test("python3-torch is not installed: PyTorch strict load not checked");
    const char *dir = getenv("QG_TEST_DATA") ? getenv("QG_TEST_DATA") : "tests/data";
    char tool[1024];
    snprintf(tool, sizeof tool, "%s/../tools/psgd_torch.py", dir);
    FILE *f = fopen(tool, "r");
    if (!f)
        cr_skip_test("%s not found (set QG_TEST_DATA)", tool);
    fclose(f);
    qg_ctx *ctx = qg_test_ctx();
    qg_model *m;
    QG_EXPECT_OK(qg__model_build(ctx, "resnet32", 'B', 3, 32, 32, 100, 5,
                                 qg_test_methods("psgd wbits=4 first_last_quant=1"), &m));
    char *path = qg_test_tmp_path("psgd", "r32b.safetensors");
    QG_EXPECT_OK(qg_model_save(m, path));
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s %s check %s", py, tool, path);
    cr_expect_eq(system(cmd), 0, "%s", cmd);
    unlink(path);
    qg__model_free(m);
}

/* The recipe end to end on a tiny run: a float ResNet-8/B, then --init
 * from it with --psgd (every name matches: PSGD adds no tensors), whose
 * epochs report test_acc_lp; qgate eval of the PSGD checkpoint gives both
 * precisions and the grid metrics; eval -w 4 of the float checkpoint is
 * post-training rounding (its float pass unchanged); the CLI prints the
 * reference's two lines and refuses --first-last-quant without -w. */
Test(psgd, init_train_and_low_precision_eval, .timeout = 600)
{
    char *fp = qg_test_tmp_path("psgd", "float.safetensors");
    char *pp = qg_test_tmp_path("psgd", "psgd.safetensors");
    char *mj = qg_test_tmp_path("psgd", "metrics.jsonl");
    qg_train_cfg c;
    qg_test_tiny_train_cfg(&c);
    c.shortcut = 'B';
    c.epochs = 1;
    c.checkpoint_path = fp;
    QG_EXPECT_OK(qg_train_run(&c));
    qg_test_tiny_train_cfg(&c);
    c.shortcut = 'B';
    c.epochs = 1;
    c.init_path = fp;
    c.optim.lr = 0.01f;
    c.methods = qg_test_methods("psgd wbits=4 lambda_s=150 first_last_quant=1");
    c.checkpoint_path = pp;
    c.metrics_path = mj;
    QG_EXPECT_OK(qg_train_run(&c));
    FILE *f = fopen(mj, "r");
    cr_assert_not_null(f);
    char line[65536];
    cr_assert_not_null(fgets(line, sizeof line, f));
    fclose(f);
    cr_expect(strstr(line, "\"test_acc_lp\": "), "%.300s", line);
    cr_expect(strstr(line, "\"grid_dist_layers\": {\"conv1\": "), "%.300s", line);
    cr_expect(strstr(line, "\"linear.bias\""), "%.300s", line);
    qg_eval_result r;
    qg_test_tiny_train_cfg(&c);
    QG_EXPECT_OK(qg_eval_run(&c, pp, &r));
    cr_expect_eq(r.lowp, 1);
    cr_expect_eq(r.lowp_bits, 4);
    cr_expect(r.acc_lp >= 0 && r.acc_lp <= 1 && isfinite(r.loss_lp));
    int have_dist = 0;
    for (size_t i = 0; i < r.nmetrics; i++)
        if (!r.metrics[i].layer && strcmp(r.metrics[i].key, "grid_dist") == 0) {
            have_dist = 1;
            cr_expect(r.metrics[i].value > 0 && r.metrics[i].value <= 0.5);
        }
    cr_expect(have_dist);
    qg_eval_result_free(&r);
    QG_EXPECT_OK(qg_eval_run(&c, fp, &r));
    cr_expect_eq(r.lowp, 0, "a float checkpoint alone evaluates once");
    double acc = r.acc;
    qg_eval_result_free(&r);
    c.eval_wbits = 2;
    QG_EXPECT_OK(qg_eval_run(&c, fp, &r));
    cr_expect_eq(r.lowp, 1);
    cr_expect_eq(r.lowp_bits, 2);
    cr_expect_eq(r.acc, acc, "the float pass is unchanged by -w");
    qg_eval_result_free(&r);
    /* the CLI: the reference's two lines; refusals name the flags */
    char cmd[1024], out[8192];
    snprintf(cmd, sizeof cmd, "./qgate eval %s -w 4 --limit-test 64 --eval-batch 64 2>&1", fp);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = 0;
    cr_expect_eq(pclose(p), 0, "%s", out);
    cr_expect(strstr(out, "Low Precision (W4):  Loss: ") && strstr(out, "Full Precision: "),
              "%s", out);
    snprintf(cmd, sizeof cmd, "./qgate eval %s --first-last-quant 2>&1", fp);
    p = popen(cmd, "r");
    n = fread(out, 1, sizeof out - 1, p);
    out[n] = 0;
    cr_expect_neq(pclose(p), 0);
    cr_expect(strstr(out, "--first-last-quant needs -w"), "%s", out);
    unlink(fp), unlink(pp), unlink(mj);
}
