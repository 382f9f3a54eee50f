/* tests/test_method.c: the method configuration (qgate/method.h,
 * src/method/method.c) and the plug-in points a method uses: option
 * parsing and validation messages, checkpoint metadata both ways (and the
 * metadata of checkpoints written before the method registry), the weight
 * quantizer of a float conv and linear (src/model/wquant.h) against the C
 * references, and the model's auxiliary loss terms. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qgate/train.h"

#include "support/support.h"
#include "method/method.h"
#include "method/params.h"
#include "model/nodes.h"
#include "quant/quant.h"
#include "ref/ref_conv.h"
#include "ref/ref_quant.h"
#include "tensor/tensor_impl.h"

TestSuite(method, .init = NULL, .fini = qg_test_ctx_free);

Test(method, options_parse_validate_and_describe)
{
    qg_method_cfg mc;
    QG_EXPECT_OK(qg_test_methods_try("pg pact wbits=8 abits=3 pred_bits=2 spbp", &mc));
    /* PG turns quantization on; the shared gtar/sigma keep per-method defaults */
    cr_expect(qg_method_cfg_enabled(&mc, "quant"));
    const qg_pg_params *pg = qg__method_params(&mc, QG_METHOD_PG);
    cr_assert_not_null(pg);
    cr_expect_eq(pg->pred_bits, 2);
    cr_expect_eq(pg->spbp, 1);
    cr_expect_float_eq(pg->sigma, 0.001f, 1e-9);
    char buf[128];
    QG_EXPECT_OK(qg_method_cfg_get(&mc, "pb", buf, sizeof buf)); /* alias */
    cr_expect_str_eq(buf, "2");
    qg_method_cfg_describe(&mc, buf, sizeof buf);
    cr_expect_str_eq(buf, "quant w8 a3 pact pg pb2 spbp");
    QG_EXPECT_OK(qg_test_methods_try("cg spbp", &mc));
    const qg_cg_params *cg = qg__method_params(&mc, QG_METHOD_CG);
    cr_expect_float_eq(cg->sigma, 1e-4f, 1e-12, "CG's own default loss factor");
    cr_expect_eq(cg->spbp, 1);
    cr_expect_null(qg__method_params(&mc, QG_METHOD_PG));

    /* messages name the flags */
    cr_expect_eq(qg_test_methods_try("wbits=1", &mc), QG_ERR_INVALID_ARG);
    cr_expect_neq(strstr(qg_last_error(), "--wbits expects an integer in 2..16"), NULL, "%s",
                  qg_last_error());
    cr_expect_eq(qg_test_methods_try("pg abits=3 pred_bits=3", &mc), QG_ERR_INVALID_ARG);
    cr_expect_neq(strstr(qg_last_error(), "--pb 3 must be smaller than --abits 3"), NULL);
    cr_expect_eq(qg_test_methods_try("pg", &mc), QG_ERR_INVALID_ARG);
    cr_expect_neq(strstr(qg_last_error(), "--pg needs --pb"), NULL, "%s", qg_last_error());
    cr_expect_eq(qg_test_methods_try("spbp", &mc), QG_ERR_INVALID_ARG);
    cr_expect_neq(strstr(qg_last_error(), "--spbp only applies with --pg or --cg"), NULL);
    cr_expect_eq(qg_test_methods_try("nosuch", &mc), QG_ERR_NOT_FOUND);
    cr_expect_neq(strstr(qg_last_error(), "unknown method option 'nosuch'"), NULL, "%s",
                  qg_last_error());
    cr_expect_eq(qg_method_cfg_enable(&mc, "nosuch", 1), QG_ERR_NOT_FOUND);
    cr_expect_neq(strstr(qg_last_error(), "known: quant, pact, pg, cg"), NULL, "%s",
                  qg_last_error());
    cr_expect_eq(qg_test_methods_try("cg gtar=x", &mc), QG_ERR_INVALID_ARG);
    qg_method_cfg_describe(qg_test_methods(""), buf, sizeof buf);
    cr_expect_str_eq(buf, "full precision");
}

/* The metadata a checkpoint stores, as key/value pairs. */
typedef struct kv {
    char k[32][32], v[32][32];
    int n;
} kv;

static void kv_add(void *user, const char *key, const char *value)
{
    kv *t = user;
    cr_assert_lt(t->n, 32);
    snprintf(t->k[t->n], 32, "%s", key);
    snprintf(t->v[t->n], 32, "%s", value);
    t->n++;
}

static const char *kv_get(void *user, const char *key)
{
    kv *t = user;
    for (int i = 0; i < t->n; i++)
        if (strcmp(t->k[i], key) == 0)
            return t->v[i];
    return NULL;
}

Test(method, metadata_round_trip_and_old_checkpoints)
{
    const qg_method_cfg *a = qg_test_methods("pg pact wbits=6 abits=4 pred_bits=3 gtar=1.5");
    kv t = {.n = 0};
    char scratch[QG_METHOD_META_SCRATCH];
    qg__method_cfg_to_meta(a, scratch, kv_add, &t);
    cr_expect_str_eq(kv_get(&t, "methods"), "quant,pact,pg");
    cr_expect_str_eq(kv_get(&t, "wbits"), "6");
    cr_expect_str_eq(kv_get(&t, "gtar"), "1.5");
    cr_expect_str_eq(kv_get(&t, "cg"), "0");
    qg_method_cfg b;
    QG_EXPECT_OK(qg__method_cfg_from_meta(&b, kv_get, &t));
    QG_EXPECT_OK(qg_method_cfg_check(&b));
    char da[128], db[128];
    qg_method_cfg_describe(a, da, sizeof da);
    qg_method_cfg_describe(&b, db, sizeof db);
    cr_expect_str_eq(db, da);
    const qg_pg_params *p = qg__method_params(&b, QG_METHOD_PG);
    cr_expect_float_eq(p->gtar, 1.5f, 0);

    /* a checkpoint from before "methods": one key per switch, wbits 32
     * meaning full precision */
    kv old = {.n = 0};
    kv_add(&old, "pg", "0");
    kv_add(&old, "pact", "1");
    kv_add(&old, "cg", "0");
    kv_add(&old, "wbits", "8");
    kv_add(&old, "abits", "3");
    kv_add(&old, "pred_bits", "0");
    QG_EXPECT_OK(qg__method_cfg_from_meta(&b, kv_get, &old));
    qg_method_cfg_describe(&b, db, sizeof db);
    cr_expect_str_eq(db, "quant w8 a3 pact");
    snprintf(old.v[3], 32, "32");
    QG_EXPECT_OK(qg__method_cfg_from_meta(&b, kv_get, &old));
    qg_method_cfg_describe(&b, db, sizeof db);
    cr_expect_str_eq(db, "pact");

    kv bad = {.n = 0};
    kv_add(&bad, "methods", "quant,zzz");
    cr_expect_eq(qg__method_cfg_from_meta(&b, kv_get, &bad), QG_ERR_FORMAT);
    cr_expect_neq(strstr(qg_last_error(), "'zzz'"), NULL, "%s", qg_last_error());
}

/* A float conv given the uniform weight quantizer computes with the
 * quantized weights, and its weight gradient is the STE of the gradient
 * with respect to them (zero where w == 0); the linear layer likewise.
 * Conv tolerance as in test_conv: 1e-4 relative + absolute. */
Test(method, conv_and_linear_with_a_weight_quantizer)
{
    qg_ctx *ctx = qg_test_ctx();
    int N = 2, C = 3, H = 6, W = 5, K = 4, bits = 3;
    qg_model *m;
    QG_EXPECT_OK(qg__model_new(ctx, "wq", C, H, W, 5, &m));
    qg_rng rng = {11};
    int y1 = qg__node_conv_wq(m, "conv", 0, K, 3, 1, 1, 1, 0, &qg__wquant_uniform, &bits, &rng);
    cr_assert_geq(y1, 0, "%s", qg_last_error());
    int y2 = qg__node_gap(m, "pool", y1);
    int y3 = qg__node_linear_wq(m, "fc", y2, 5, &qg__wquant_uniform, &bits, &rng);
    cr_assert_geq(y3, 0, "%s", qg_last_error());
    QG_EXPECT_OK(qg__model_setup(m, N));
    qg_conv_desc d;
    QG_EXPECT_OK(qg__conv_desc_init(ctx, &d, N, C, H, W, K, 3, 3, 1, 1, 1));
    size_t nx = (size_t)N * C * H * W, nw = (size_t)K * C * 9, ny = (size_t)N * K * H * W;
    float *x = malloc(nx * 4), *w = malloc(nw * 4), *wq = malloc(nw * 4), *y = malloc(ny * 4);
    float *dy = malloc(ny * 4), *dw = malloc(nw * 4), *db = malloc((size_t)K * 4), s;
    qg_test_fill(x, nx, -1, 1, 21);
    qg_test_fill(w, nw, -0.5f, 0.5f, 22);
    w[3] = 0.0f; /* the STE blocks here */
    qg_ref_quant_fwd(nw, K, w, bits, QG_QSCALE_PG, &s, wq);
    qg_ref_conv2d_fwd(&d, x, wq, NULL, y);
    qg_param *pw = qg__model_find_param(m, "conv.weight");
    QG_EXPECT_OK(qg_tensor_write(pw->value, w, nw * 4));
    QG_EXPECT_OK(qg_tensor_write(qg__model_input(m), x, nx * 4));
    QG_EXPECT_OK(qg__model_forward(m, 1));
    float *gy = qg_test_read(m->acts[y1].value);
    cr_expect(qg_test_allclose("conv y with quantized weights", gy, y, ny, 1e-4f, 1e-4f));
    /* the gradient from the conv's output: dy given at its activation */
    qg_test_fill(dy, ny, -1, 1, 23);
    qg_ref_conv2d_bwd_weight(&d, x, dy, dw, db);
    qg_ref_quant_ste_bwd(nw, w, dw, dw, qg__quant_ste(bits), 0);
    cr_expect_eq(dw[3], 0.0f);
    qg_node *conv = &m->nodes[0];
    QG_EXPECT_OK(qg_tensor_write(m->acts[y1].grad, dy, ny * 4));
    QG_EXPECT_OK(conv->ops->backward(conv, m));
    float *gdw = qg_test_read(pw->grad);
    cr_expect(qg_test_allclose("conv dw through the STE", gdw, dw, nw, 1e-4f, 1e-4f));
    cr_expect_eq(gdw[3], 0.0f);
    /* linear: logits = q(W) pooled + b */
    qg_param *fw = qg__model_find_param(m, "fc.weight"), *fb = qg__model_find_param(m, "fc.bias");
    float *lw = qg_test_read(fw->value), *lb = qg_test_read(fb->value), lwq[5 * 4], ls;
    qg_ref_quant_fwd(5 * 4, 5, lw, bits, QG_QSCALE_PG, &ls, lwq);
    float *pooled = qg_test_read(m->acts[y2].value), *logits = qg_test_read(m->acts[y3].value);
    float want[2 * 5];
    for (int n = 0; n < N; n++)
        for (int o = 0; o < 5; o++) {
            double acc = lb[o];
            for (int i = 0; i < K; i++)
                acc += (double)lwq[o * K + i] * pooled[n * K + i];
            want[n * 5 + o] = (float)acc;
        }
    cr_expect(qg_test_allclose("linear with quantized weights", logits, want, 10, 1e-5f, 1e-5f));
    free(x), free(w), free(wq), free(y), free(dy), free(dw), free(db), free(gy), free(gdw);
    free(lw), free(lb), free(pooled), free(logits);
    qg__model_free(m);
}

/* Loss terms registered with the model run in order, once per call, and
 * add into the one loss scalar. */
static int calls[3];

static qg_status term(qg_node *n, qg_model *m, void *user, qg_tensor *loss)
{
    int i = (int)(intptr_t)user;
    calls[i]++;
    cr_expect_null(n);
    float v;
    qg_status st = qg_tensor_read(loss, &v, sizeof v);
    v += (float)(i + 1);
    return st == QG_OK ? qg_tensor_write(loss, &v, sizeof v) : st;
}

Test(method, auxiliary_loss_terms)
{
    qg_ctx *ctx = qg_test_ctx();
    qg_model *m;
    QG_EXPECT_OK(qg__model_new(ctx, "aux", 1, 2, 2, 2, &m));
    for (int i = 0; i < 3; i++)
        QG_EXPECT_OK(qg__model_add_aux_loss(m, "t", term, -1, (void *)(intptr_t)i));
    int64_t one[1] = {1};
    qg_tensor *loss;
    QG_EXPECT_OK(qg_tensor_new(ctx, 1, one, QG_DTYPE_F32, "loss", &loss));
    QG_EXPECT_OK(qg_tensor_write(loss, &(float){100.0f}, 4));
    QG_EXPECT_OK(qg__model_aux_loss(m, loss));
    float v;
    QG_EXPECT_OK(qg_tensor_read(loss, &v, 4));
    cr_expect_float_eq(v, 6.0f, 0, "zeroed, then 1 + 2 + 3: %f", v);
    for (int i = 0; i < 3; i++)
        cr_expect_eq(calls[i], 1);
    qg_tensor_free(loss);
    qg__model_free(m);
}

/* The public model and step API: a PG ResNet-8 by name and method
 * configuration learns a fixed synthetic batch (loss falls), and a saved
 * and reloaded copy (rebuilt from the same configuration) gives the same
 * summed loss and correct count. */
Test(method, public_model_and_trainer_api, .timeout = 300)
{
    qg_ctx *ctx = qg_test_ctx();
    qg_method_cfg *mc;
    QG_EXPECT_OK(qg_method_cfg_new(&mc));
    QG_EXPECT_OK(qg_method_cfg_enable(mc, "pg", 1));
    QG_EXPECT_OK(qg_method_cfg_set(mc, "abits", "4"));
    QG_EXPECT_OK(qg_method_cfg_set(mc, "pred_bits", "2"));
    QG_EXPECT_OK(qg_method_cfg_check(mc));
    qg_model_opts mo = {.arch = "resnet8", .in_c = 1, .in_h = 8, .in_w = 8, .classes = 3,
                        .seed = 4, .methods = mc};
    qg_model *m, *m2;
    QG_EXPECT_OK(qg_model_new(ctx, &mo, &m));
    cr_expect_gt(qg_model_param_count(m), 1000);
    qg_optim_cfg oc = {.kind = QG_OPTIM_SGD, .lr = 0.05f, .momentum = 0.9f,
                       .decay_kinds = QG_DECAY_ALL};
    qg_trainer *t;
    QG_EXPECT_OK(qg_trainer_new(m, &oc, 8, &t));
    float x[8 * 64];
    int32_t y[8];
    qg_test_fill(x, sizeof x / sizeof *x, -1, 1, 5);
    for (int i = 0; i < 8; i++)
        y[i] = i % 3;
    float first = 0, last = 0;
    for (int s = 0; s < 12; s++) {
        float l;
        QG_EXPECT_OK(qg_trainer_step(t, x, y, 8, 0.05f, &l, NULL));
        if (s == 0)
            first = l;
        last = l;
    }
    cr_expect(isfinite(last) && last < 0.7f * first, "loss %f -> %f", first, last);
    cr_expect_eq(qg_trainer_step(t, x, y, 9, 0.05f, NULL, NULL), QG_ERR_INVALID_ARG);
    float ls1, ls2;
    int c1, c2;
    QG_EXPECT_OK(qg_trainer_eval(t, x, y, 8, &ls1, &c1));
    char *path = qg_test_tmp_path("method", "api.safetensors");
    QG_EXPECT_OK(qg_model_save(m, path));
    QG_EXPECT_OK(qg_model_new(ctx, &mo, &m2));
    qg_trainer *t2;
    QG_EXPECT_OK(qg_trainer_new(m2, &oc, 8, &t2));
    QG_EXPECT_OK(qg_model_load(m2, path));
    QG_EXPECT_OK(qg_trainer_eval(t2, x, y, 8, &ls2, &c2));
    cr_expect_float_eq(ls2, ls1, 1e-5f * fabsf(ls1), "%f vs %f", ls2, ls1);
    cr_expect_eq(c2, c1);
    unlink(path);
    qg_trainer_free(t);
    qg_trainer_free(t2);
    qg_model_free(m);
    qg_model_free(m2);
    qg_method_cfg_free(mc);
}
