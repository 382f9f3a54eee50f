/* tests/test_psgd_act.c: PSG-pytorch's activation quantization at
 * evaluation (qgate eval -a/--abits B --act-clip N; docs/methods.md §6.7):
 * the clip and step of a batch norm by hand, the kernel
 * (cl/psgd.cl qg_psgd_act_quant) against its C twin, the model's batch
 * norms quantizing their ReLU outputs in a low-precision evaluation (with
 * and without the eval-mode conv fold), and qg_eval_run's checks. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "support/support.h"
#include "core/rng.h"
#include "model/nodes.h"
#include "quant/psgd.h"
#include "ref/ref_psgd.h"
#include "tensor/tensor_impl.h"

TestSuite(psgd_act, .fini = qg_test_ctx_free);

/* Hand cases: clip = max_c(beta_c + n*gamma_c), delta = clip/(2^b - 1). */
Test(psgd_act, clip_and_step_by_hand)
{
    float clip;
    /* 0.25 + 6*1.0 = 6.25, 0 + 6*1.25 = 7.5: clip 7.5, 4 bits: 7.5/15 = 0.5 */
    const float g1[2] = {1.0f, 1.25f}, b1[2] = {0.25f, 0.0f};
    cr_expect_float_eq(qg_ref_psgd_act_delta(2, g1, b1, 6.0f, 4, &clip), 0.5f, 0);
    cr_expect_float_eq(clip, 7.5f, 0);
    /* n = 3: 3.25 and 3.75; 2 bits: 3.75/3 = 1.25 */
    cr_expect_float_eq(qg_ref_psgd_act_delta(2, g1, b1, 3.0f, 2, &clip), 1.25f, 0);
    cr_expect_float_eq(clip, 3.75f, 0);
    /* a negative gamma can win nothing; the max may be negative: -1 + 6*0.1 */
    const float g2[2] = {-1.0f, 0.1f}, b2[2] = {0.5f, -1.0f};
    float d = qg_ref_psgd_act_delta(2, g2, b2, 6.0f, 8, &clip);
    cr_expect_float_eq(clip, -1.0f + 6.0f * 0.1f, 0);
    cr_expect(d < 0);
    /* 8 bits: 6.0/255 divided in double, then rounded to float */
    const float g3[1] = {1.0f}, b3[1] = {0.0f};
    cr_expect_float_eq(qg_ref_psgd_act_delta(1, g3, b3, 6.0f, 8, &clip),
                       (float)(6.0 / 255.0), 0);
    /* the quantizer at delta 0.5, 4 bits (codes 0..15): the clamp at 0 is
     * the ReLU, ties go to even (0.5 -> 0, 1.5 -> 2), the top code is 7.5 */
    float x[7] = {-1.0f, 0.2f, 0.25f, 0.75f, 1.3f, 7.5f, 9.0f};
    const float want[7] = {0.0f, 0.0f, 0.0f, 1.0f, 1.5f, 7.5f, 7.5f};
    qg_ref_psgd_act_quant(7, x, 4, 0.5f);
    cr_expect(qg_test_allclose("act quant by hand", x, want, 7, 0, 0));
    float y[2] = {3.0f, -2.0f};
    qg_ref_psgd_act_quant(2, y, 4, -0.1f);
    cr_expect(y[0] == 0.0f && y[1] == 0.0f, "a clip at or below 0 gives 0");
}

/* The kernel against the C twin, exactly, at odd sizes, with values on
 * the grid's half steps (ties) among them; the output view's margins stay
 * untouched. */
Test(psgd_act, kernel_matches_reference)
{
    qg_ctx *ctx = qg_test_ctx();
    static const size_t sizes[] = {1, 37, 1001};
    static const int bits[] = {2, 4, 8, 16};
    static const float deltas[] = {0.5f, 0.0123f, 0.0f, -1.0f};
    for (size_t s = 0; s < 3; s++)
        for (int k = 0; k < 4; k++) {
            size_t n = sizes[s];
            int64_t sh[1] = {(int64_t)n};
            float *x = malloc(n * 4);
            qg_test_fill(x, n, -2, 10, (uint32_t)(3 + s + k));
            for (size_t i = 0; i < n; i += 5) /* ties: (j + 0.5) steps */
                x[i] = ((float)(i % 13) + 0.5f) * deltas[k];
            qg_test_buf b = qg_test_buf_new(ctx, 1, sh, x);
            QG_EXPECT_OK(qg__psgd_act_quant(ctx, b.view, bits[k], deltas[k]));
            float *got = qg_test_buf_get(&b, "psgd_act_quant");
            qg_ref_psgd_act_quant(n, x, bits[k], deltas[k]);
            char label[80];
            snprintf(label, sizeof label, "act quant n=%zu bits=%d delta=%g", n, bits[k],
                     deltas[k]);
            cr_expect(qg_test_allclose(label, got, x, n, 0, 0));
            free(got), free(x);
            qg_test_buf_free(&b);
        }
    int64_t sh[1] = {4};
    qg_tensor *t = qg_test_tensor(ctx, 1, sh, (float[4]){0});
    cr_expect_eq(qg__psgd_act_quant(ctx, t, 1, 0.5f), QG_ERR_INVALID_ARG);
    cr_expect_eq(qg__psgd_act_quant(ctx, t, 17, 0.5f), QG_ERR_INVALID_ARG);
    qg_tensor_free(t);
}

/* In a model: conv -> bn + ReLU -> global average pool -> linear, batch 3,
 * random batch-norm parameters. A low-precision evaluation with abits set
 * makes the bn node's output the C twin's quantization of the float
 * evaluation's output, with the node's own clip, whether the conv folds
 * the batch norm in or not; without lowp, or with abits 0, nothing
 * changes. */
Test(psgd_act, model_quantizes_relu_after_batch_norm)
{
    qg_ctx *ctx = qg_test_ctx();
    qg_model *m;
    qg_rng rng = {11};
    QG_EXPECT_OK(qg__model_new(ctx, "act-quant", 2, 6, 5, 3, &m));
    int c = qg__node_conv(m, "conv", 0, 4, 3, 1, 1, 1, 0, &rng);
    int b = c >= 0 ? qg__node_bn_act(m, "bn", c, -1, 1, 1) : -1;
    int g = b >= 0 ? qg__node_gap(m, "gap", b) : -1;
    int y = g >= 0 ? qg__node_linear(m, "fc", g, 3, &rng) : -1;
    cr_assert(y > 0, "%s", qg_last_error());
    QG_EXPECT_OK(qg__model_setup(m, 3));
    const float gamma[4] = {0.5f, 0.25f, 0.125f, 0.3f}, beta[4] = {0.1f, 0.4f, -0.2f, 0.0f};
    QG_EXPECT_OK(qg_tensor_write(qg__model_find_param(m, "bn.weight")->value, gamma, 16));
    QG_EXPECT_OK(qg_tensor_write(qg__model_find_param(m, "bn.bias")->value, beta, 16));
    size_t nx = qg_tensor_numel(qg__model_input(m));
    float *x = malloc(nx * 4);
    qg_test_fill(x, nx, -1, 1, 21);
    QG_EXPECT_OK(qg_tensor_write(qg__model_input(m), x, nx * 4));
    qg_tensor *out = qg__act(m, b)->value;
    size_t n = qg_tensor_numel(out);
    for (int fold = 0; fold < 2; fold++) {
        m->no_eval_fold = !fold;
        m->lowp = 1;
        m->lowp_abits = 0;
        QG_EXPECT_OK(qg__model_forward(m, 0));
        float *yf = qg_test_read(out);
        m->lowp = 0;
        m->lowp_abits = 3;
        m->lowp_act_clip = 2.0f;
        QG_EXPECT_OK(qg__model_forward(m, 0));
        float *y0 = qg_test_read(out);
        cr_expect(qg_test_allclose("abits without lowp change nothing", y0, yf, n, 0, 0));
        m->lowp = 1;
        QG_EXPECT_OK(qg__model_forward(m, 0));
        float *yq = qg_test_read(out);
        float clip;
        float d = qg_ref_psgd_act_delta(4, gamma, beta, 2.0f, 3, &clip);
        /* 0.1 + 2*0.5 = 1.1 wins over 0.9, 0.05 and 0.6; step 1.1/7 */
        cr_expect_float_eq(clip, 0.1f + 2.0f * 0.5f, 0);
        qg_ref_psgd_act_quant(n, yf, 3, d);
        char label[64];
        snprintf(label, sizeof label, "bn output, W-A3 clip 2, fold %d", fold);
        cr_expect(qg_test_allclose(label, yq, yf, n, 1e-6f, 0));
        long codes = 0;
        for (size_t i = 0; i < n; i++)
            codes += yq[i] > 0 && yq[i] < clip;
        cr_expect_gt(codes, 0, "some outputs between 0 and the clip");
        free(yf), free(y0), free(yq);
    }
    m->lowp = 0;
    m->lowp_abits = 0;
    free(x);
    qg__model_free(m);
}

/* qg_eval_run: --abits needs the low-precision pass (a float checkpoint
 * without -w is refused with the file named); with -w 4 it reports the
 * activation bits and the clip, and 2-bit activations change the
 * low-precision loss but not the float one. */
Test(psgd_act, eval_run_reports_and_refuses, .timeout = 600)
{
    char *fp = qg_test_tmp_path("psgd-act", "float.safetensors");
    qg_train_cfg c;
    qg_test_tiny_train_cfg(&c);
    c.shortcut = 'B';
    c.epochs = 1;
    c.checkpoint_path = fp;
    QG_EXPECT_OK(qg_train_run(&c));
    qg_eval_result r;
    qg_test_tiny_train_cfg(&c);
    c.eval_abits = 4;
    cr_expect_eq(qg_eval_run(&c, fp, &r), QG_ERR_INVALID_ARG);
    cr_expect(strstr(qg_last_error(), "--abits") && strstr(qg_last_error(), fp), "%s",
              qg_last_error());
    c.eval_wbits = 4;
    c.eval_abits = 0;
    QG_EXPECT_OK(qg_eval_run(&c, fp, &r));
    double loss_w4 = r.loss_lp, loss = r.loss;
    cr_expect_eq(r.lowp_abits, 0);
    qg_eval_result_free(&r);
    c.eval_abits = 2;
    QG_EXPECT_OK(qg_eval_run(&c, fp, &r));
    cr_expect_eq(r.lowp_abits, 2);
    cr_expect_float_eq(r.act_clip, 6.0f, 0);
    cr_expect_eq(r.loss, loss, "the float pass is unchanged");
    cr_expect_neq(r.loss_lp, loss_w4, "2-bit activations changed nothing");
    cr_expect(isfinite(r.loss_lp) && r.acc_lp >= 0 && r.acc_lp <= 1);
    qg_eval_result_free(&r);
    c.eval_act_clip = 0;
    cr_expect_eq(qg_eval_run(&c, fp, &r), QG_ERR_INVALID_ARG);
    unlink(fp);
}
