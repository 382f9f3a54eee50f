/* tests/test_bsq_model.c: the BSQ method on a model (src/method/m_bsq.c,
 * src/model/wquant_bsq.c): which layers get bit planes and under which
 * names, the effective weights a forward builds, re-quantization with
 * precision growth (N grows, the scale adjusts) and MSB/LSB plane removal
 * on a layer (parameters resized, optimizer state reset), a checkpoint
 * whose precisions differ from the built model's, and a short training run
 * with re-quantization every epoch, its metrics and `eval`. */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "support/support.h"
#include "method/method.h"
#include "model/graph.h"
#include "interop/convert_bsq.h"
#include "model/wquant_bsq.h"
#include "quant/bsq.h"
#include "ref/ref_bsq.h"
#include "train/checkpoint.h"
#include "tensor/tensor_impl.h"
#include "train/checkpoint.h"
#include "train/optim.h"
#include "train/trainer.h"

TestSuite(bsq_model, .fini = qg_test_ctx_free);

static qg_model *build(const char *spec)
{
    qg_model *m = NULL;
    QG_EXPECT_OK(qg__model_build(qg_test_ctx(), "resnet8", 'B', 1, 8, 8, 10, 3,
                                 qg_test_methods(spec), &m));
    return m;
}

static qg_bsq_layer *layer(qg_model *m, const char *name)
{
    for (int i = 0; i < m->nwquants; i++) {
        qg_bsq_layer *l = qg__bsq_layer(m->wquants[i]);
        if (l && strcmp(l->name, name) == 0)
            return l;
    }
    cr_assert_fail("no BSQ layer %s", name);
    return NULL;
}

/* The effective weights of set k on the host, from its planes. */
static float *host_value(qg_bsq_set *s)
{
    int N = qg__bsq_set_bits(s);
    float *p = qg_test_read(s->p->value), *n = qg_test_read(s->n->value), sc;
    float *w = malloc(s->M * sizeof *w);
    QG_EXPECT_OK(qg_tensor_read(s->s->value, &sc, sizeof sc));
    qg_ref_bsq_fwd(s->M, N, p, n, sc, w);
    free(p);
    free(n);
    return w;
}

Test(bsq_model, layers_names_and_forward)
{
    qg_model *m = build("bsq nbits=4");
    /* stem, six block convs, the classifier; not the shortcuts */
    int count = 0;
    for (int i = 0; i < m->nwquants; i++)
        count += qg__bsq_layer(m->wquants[i]) != NULL;
    cr_expect_eq(count, 8);
    qg_param *p = qg__model_find_param(m, "conv1.pweight");
    cr_assert(p);
    cr_expect(p->value->ndim == 5 && p->value->shape[4] == 4 && p->flex_last);
    cr_expect(qg__model_find_param(m, "layer1.0.conv2.nweight"));
    cr_expect(qg__model_find_param(m, "layer1.0.conv2.scale"));
    cr_expect(qg__model_find_param(m, "linear.pbias"));
    cr_expect(qg__model_find_param(m, "linear.biasscale"));
    cr_expect_null(qg__model_find_param(m, "layer2.0.shortcut.0.pweight"));
    cr_expect_eq(qg__model_find_param(m, "conv1.weight")->kind, QG_PARAM_BUFFER);
    cr_expect_eq(qg__model_find_param(m, "linear.bias")->kind, QG_PARAM_BUFFER);
    cr_expect_eq(qg__model_find_param(m, "layer2.0.shortcut.0.weight")->kind, QG_PARAM_WEIGHT);
    /* a forward writes the planes' values into the layers' weights */
    QG_EXPECT_OK(qg__model_setup(m, 2));
    float x[2 * 64];
    qg_test_fill(x, 128, -1, 1, 3);
    QG_EXPECT_OK(qg_tensor_write(qg__model_input(m), x, sizeof x));
    QG_EXPECT_OK(qg__model_forward(m, 1));
    const char *names[2] = {"layer1.0.conv1", "linear"};
    for (int k = 0; k < 2; k++) {
        qg_bsq_layer *l = layer(m, names[k]);
        for (int j = 0; j < l->nsets; j++) {
            float *want = host_value(&l->set[j]), *got = qg_test_read(l->set[j].target->value);
            cr_expect(qg_test_allclose(names[k], got, want, l->set[j].M, 0, 0));
            free(want);
            free(got);
        }
    }
    qg__model_free(m);
}

/* Re-quantization on a layer: a continuous MSB of 2 overflows, so the
 * precision grows by one and the scale by (2^5-1)/(2^4-1); then a layer
 * whose codes leave the MSB and two LSB planes empty loses them. */
Test(bsq_model, requant_overflow_and_plane_removal)
{
    qg_model *m = build("bsq nbits=4");
    qg_bsq_layer *l = layer(m, "layer1.0.conv1");
    qg_bsq_set *s = &l->set[0];
    size_t M = s->M;
    int N = 4;
    float *p = calloc(M * N, sizeof *p), *n = calloc(M * N, sizeof *n), sc = 0.5f;
    for (size_t i = 0; i < M; i++) {
        int code = (int)(i % 16); /* exact bits, codes 0..15 */
        for (int b = 0; b < N; b++)
            p[i * N + b] = (float)((code >> (N - 1 - b)) & 1);
    }
    p[0] = 2.0f; /* weight 0: 2 at the MSB, 16/15 before the clip */
    p[1] = p[2] = p[3] = 0.0f;
    QG_EXPECT_OK(qg_tensor_write(s->p->value, p, M * N * sizeof *p));
    QG_EXPECT_OK(qg_tensor_write(s->n->value, n, M * N * sizeof *n));
    QG_EXPECT_OK(qg_tensor_write(s->s->value, &sc, sizeof sc));
    float *before = host_value(s);
    cr_expect_float_eq(before[0], 0.5f, 1e-7f); /* clipped at 1.0 * s */
    /* optimizer state exists and is non-zero */
    qg_optim_cfg oc = {.kind = QG_OPTIM_SGD, .momentum = 0.9f};
    QG_EXPECT_OK(qg__optim_ensure_state(m, &oc));
    QG_EXPECT_OK(qg_tensor_write(s->p->state[0], p, M * N * sizeof *p));
    QG_EXPECT_OK(qg__bsq_layer_requant(m, l, 8, 1, 0.0f));
    QG_EXPECT_OK(qg__model_reset_optim_state(m));
    cr_assert_eq(qg__bsq_set_bits(s), 5);
    cr_expect_eq(s->p->value->shape[4], 5);
    cr_expect_eq(s->p->grad->shape[4], 5);
    cr_expect_eq(s->p->state[0]->shape[4], 5);
    float nsc;
    QG_EXPECT_OK(qg_tensor_read(s->s->value, &nsc, sizeof nsc));
    cr_expect_float_eq(nsc, 0.5f * 31.0f / 15.0f, 1e-6f);
    float *after = host_value(s);
    cr_expect_float_eq(after[0], 0.5f * 16.0f / 15.0f, 1e-6f); /* the clip is gone */
    for (size_t i = 1; i < M; i++)
        cr_expect_float_eq(after[i], before[i], 1e-6f, "weight %zu", i);
    float *st = qg_test_read(s->p->state[0]);
    for (size_t i = 0; i < M * 5; i++)
        cr_expect(st[i] == 0.0f);
    free(st);
    free(before);
    free(after);

    /* codes 4k (k < 4) at N = 5: MSB, and the two LSB planes empty */
    N = 5;
    p = realloc(p, M * N * sizeof *p);
    n = realloc(n, M * N * sizeof *n);
    memset(n, 0, M * N * sizeof *n);
    for (size_t i = 0; i < M; i++) {
        int code = 4 * (int)(i % 4);
        for (int b = 0; b < N; b++)
            p[i * N + b] = (float)((code >> (N - 1 - b)) & 1);
    }
    QG_EXPECT_OK(qg_tensor_write(s->p->value, p, M * N * sizeof *p));
    QG_EXPECT_OK(qg_tensor_write(s->n->value, n, M * N * sizeof *n));
    before = host_value(s);
    QG_EXPECT_OK(qg__bsq_layer_requant(m, l, 8, 1, 0.0f));
    cr_expect_eq(qg__bsq_set_bits(s), 2);
    after = host_value(s);
    for (size_t i = 0; i < M; i++)
        cr_expect_float_eq(after[i], before[i], 1e-6f * (1 + fabsf(before[i])), "weight %zu", i);
    free(before);
    free(after);
    free(p);
    free(n);
    qg__model_free(m);
}

/* A checkpoint's per-layer precision replaces the built one on load. */
Test(bsq_model, checkpoint_precisions_load)
{
    qg_model *m = build("bsq nbits=6");
    qg_bsq_layer *l = layer(m, "layer1.0.conv2");
    /* all codes small: re-quantization + pruning leaves few planes */
    qg_bsq_set *s = &l->set[0];
    float *p = calloc(s->M * 6, sizeof *p), *n = calloc(s->M * 6, sizeof *n);
    for (size_t i = 0; i < s->M; i++)
        p[i * 6 + 4] = (float)(i % 2), n[i * 6 + 3] = (float)(i % 3 == 0);
    QG_EXPECT_OK(qg_tensor_write(s->p->value, p, s->M * 6 * sizeof *p));
    QG_EXPECT_OK(qg_tensor_write(s->n->value, n, s->M * 6 * sizeof *n));
    QG_EXPECT_OK(qg__bsq_layer_requant(m, l, 8, 1, 0.0f));
    cr_assert_eq(qg__bsq_set_bits(s), 2);
    float *want = host_value(s);
    char *path = qg_test_tmp_path("bsq", "prec.safetensors");
    QG_EXPECT_OK(qg__checkpoint_save(m, path, NULL, 0, 0));
    qg_model *m2 = build("bsq nbits=6");
    qg_st_file *f = NULL;
    QG_EXPECT_OK(qg__safetensors_read(path, &f));
    QG_EXPECT_OK(qg__checkpoint_load(m2, f, path, 0));
    qg_bsq_set *s2 = &layer(m2, "layer1.0.conv2")->set[0];
    cr_expect_eq(qg__bsq_set_bits(s2), 2);
    cr_expect_eq(qg__bsq_set_bits(&layer(m2, "layer1.0.conv1")->set[0]), 6);
    float *got = host_value(s2);
    cr_expect(qg_test_allclose("loaded", got, want, s->M, 0, 0));
    qg__safetensors_free(f);
    unlink(path);
    free(p);
    free(n);
    free(want);
    free(got);
    qg__model_free(m);
    qg__model_free(m2);
}

static int has_key(json_t *o, const char *k)
{
    return json_object_get(o, k) != NULL;
}

/* Two epochs, re-quantizing at the start of each and after the last:
 * the checkpoint holds exact 0/1 bits, the metrics compression and
 * average bits, and `eval` reports them. */
Test(bsq_model, training_run_and_eval, .timeout = 600)
{
    qg_train_cfg c;
    qg_test_tiny_train_cfg(&c);
    c.shortcut = 'B';
    c.methods = qg_test_methods("bsq prune_int=1 decay=0.05 nbits=6");
    char *ck = qg_test_tmp_path("bsq", "run.safetensors"),
         *mt = qg_test_tmp_path("bsq", "run.jsonl");
    c.checkpoint_path = ck;
    c.metrics_path = mt;
    QG_EXPECT_OK(qg_train_run(&c));
    qg_st_file *f = NULL;
    QG_EXPECT_OK(qg__safetensors_read(ck, &f));
    const qg_st_tensor *t = qg__safetensors_get(f, "layer1.0.conv1.pweight");
    cr_assert(t);
    int N = (int)t->shape[t->ndim - 1];
    cr_expect(N >= 1 && N <= 6, "N %d", N);
    size_t cnt = 1;
    for (int d = 0; d < t->ndim; d++)
        cnt *= (size_t)t->shape[d];
    const float *v = t->data;
    for (size_t i = 0; i < cnt; i++)
        cr_expect(v[i] == 0.0f || v[i] == 1.0f, "bit %zu is %g", i, v[i]);
    cr_expect_str_eq(qg__safetensors_meta(f, "methods"), "bsq");
    qg__safetensors_free(f);
    FILE *fp = fopen(mt, "r");
    cr_assert(fp);
    char line[1 << 16];
    int lines = 0;
    while (fgets(line, sizeof line, fp)) {
        json_t *o = json_loads(line, 0, NULL);
        cr_assert(o, "bad JSON line");
        cr_expect(has_key(o, "compression") && has_key(o, "avg_bits") &&
                  has_key(o, "bits_weight") && has_key(o, "nonzero_weight_b0"));
        double cp = json_number_value(json_object_get(o, "compression")),
               ab = json_number_value(json_object_get(o, "avg_bits"));
        cr_expect(fabs(cp * ab - 32.0) < 1e-4 && ab <= 6.0, "compression %g avg %g", cp, ab);
        json_decref(o);
        lines++;
    }
    fclose(fp);
    cr_expect_eq(lines, 2);
    qg_eval_result r;
    qg_train_cfg e;
    qg_test_tiny_train_cfg(&e);
    e.data = NULL;
    QG_EXPECT_OK(qg_eval_run(&e, ck, &r));
    int have = 0;
    for (size_t i = 0; i < r.nmetrics; i++)
        have += !r.metrics[i].layer && strcmp(r.metrics[i].key, "compression") == 0;
    cr_expect_eq(have, 1);
    cr_expect(r.acc > 0.0);
    qg_eval_result_free(&r);
    unlink(ck);
    unlink(mt);
}

/* --act-bits: each block activation is followed by Q_a (ReLU6 above 3 bits,
 * PACT with alpha 10 at 3 or fewer). */
Test(bsq_model, activation_quantizer)
{
    qg_model *m = build("bsq act_bits=4");
    int q = 0, at = -1;
    for (int i = 0; i < m->nnodes; i++)
        if (strcmp(m->nodes[i].ops->type, "bsq_qact") == 0 && q++ == 0)
            at = i;
    cr_expect_eq(q, 6, "two per block of resnet8");
    cr_assert(at >= 0);
    QG_EXPECT_OK(qg__model_setup(m, 2));
    float x[2 * 64];
    qg_test_fill(x, 128, -3, 3, 9);
    QG_EXPECT_OK(qg_tensor_write(qg__model_input(m), x, sizeof x));
    QG_EXPECT_OK(qg__model_forward(m, 1));
    qg_node *nd = &m->nodes[at];
    float *in = qg_test_read(qg__act(m, nd->in[0])->value),
          *out = qg_test_read(qg__act(m, nd->out)->value);
    size_t cnt = qg_tensor_numel(qg__act(m, nd->out)->value);
    float S = 0;
    for (size_t i = 0; i < cnt; i++)
        S = fmaxf(S, fminf(fabsf(in[i]), 6.0f));
    cr_assert_gt(S, 0.0f);
    for (size_t i = 0; i < cnt; i++) {
        float v = fminf(in[i], 6.0f);
        float sg = v > 0 ? 1.0f : v < 0 ? -1.0f : 0.0f;
        float want = S * rintf(fabsf(v) * 15.0f / S) / 15.0f * sg;
        cr_expect_float_eq(out[i], want, 1e-6f * (1 + fabsf(want)), "element %zu: %g of %g", i,
                           out[i], in[i]);
    }
    free(in);
    free(out);
    qg__model_free(m);
    /* 2 bits: PACT, alpha 10 */
    m = build("bsq act_bits=2");
    cr_expect(qg__method_on(m->methods, QG_METHOD_PACT));
    qg_param *a = qg__model_find_param(m, "layer1.0.relu.upper_bound");
    cr_assert(a);
    float *av = qg_test_read(a->value);
    cr_expect_float_eq(av[0], 10.0f, 0);
    free(av);
    qg__model_free(m);
}

/* qgate convert FLOAT --bits N / --scheme: the bit representation of a
 * float checkpoint, loadable as a BSQ model's start (--init) without a
 * tensor left over or missing. */
Test(bsq_model, convert_float_checkpoint)
{
    qg_model *fm = NULL;
    QG_EXPECT_OK(qg__model_build(qg_test_ctx(), "resnet8", 'B', 1, 8, 8, 10, 5, NULL, &fm));
    char *fp = qg_test_tmp_path("bsq", "float.safetensors"),
         *bp = qg_test_tmp_path("bsq", "bin.safetensors"),
         *sp = qg_test_tmp_path("bsq", "scheme.safetensors");
    qg_st_meta meta[2] = {{"arch", "resnet8"}, {"shortcut", "B"}};
    QG_EXPECT_OK(qg__checkpoint_save(fm, fp, meta, 2, 0));
    qg_bsq_convert_report r;
    QG_EXPECT_OK(qg__bsq_convert(fp, 5, NULL, bp, &r));
    cr_expect_eq(r.layers, 8);
    cr_expect_eq(r.tensors, 9); /* and the classifier's bias */
    cr_expect(fabs(r.bits / (double)r.values - 5.0) < 1e-12);
    qg_st_file *f = NULL;
    QG_EXPECT_OK(qg__safetensors_read(bp, &f));
    cr_expect_str_eq(qg__safetensors_meta(f, "methods"), "bsq");
    cr_expect_null(qg__safetensors_get(f, "layer2.0.shortcut.0.pweight"));
    const qg_st_tensor *pw = qg__safetensors_get(f, "layer1.0.conv1.pweight"),
                       *nw = qg__safetensors_get(f, "layer1.0.conv1.nweight"),
                       *sc = qg__safetensors_get(f, "layer1.0.conv1.scale"),
                       *w = qg__safetensors_get(f, "layer1.0.conv1.weight");
    cr_assert(pw && nw && sc && w && pw->shape[4] == 5);
    float *orig = qg_test_read(qg__model_find_param(fm, "layer1.0.conv1.weight")->value);
    const float *pv = pw->data, *nv = nw->data, *wv = w->data, s = ((const float *)sc->data)[0];
    size_t M = 16 * 16 * 9;
    float S = 0;
    for (size_t i = 0; i < M; i++)
        S = fmaxf(S, fabsf(orig[i]));
    cr_expect_float_eq(s, S, 0);
    for (size_t i = 0; i < M; i++) {
        float v = qg__bsq_value(pv + i * 5, nv + i * 5, 5) * s;
        cr_expect(v == wv[i], "weight %zu: %g vs %g", i, v, wv[i]);
        /* within half a step of the float weight */
        cr_expect(fabsf(v - orig[i]) <= 0.5f * S / 31.0f * 1.0001f, "weight %zu", i);
    }
    free(orig);
    /* a BSQ model starts from it: every tensor has a place, none is missing */
    qg_model *m = build("bsq nbits=8");
    int loaded, kept;
    char names[256];
    QG_EXPECT_OK(qg__checkpoint_init(m, f, bp, &loaded, &kept, names, sizeof names));
    cr_expect_eq(kept, 0, "kept: %s", names);
    cr_expect_eq(qg__bsq_set_bits(&layer(m, "conv1")->set[0]), 5);
    qg__safetensors_free(f);
    /* --scheme: a layer pruned to 2 bits in a BSQ checkpoint */
    qg_bsq_layer *l = layer(m, "layer1.0.conv2");
    qg_bsq_set *s2 = &l->set[0];
    float *zp = calloc(s2->M * 5, sizeof *zp);
    for (size_t i = 0; i < s2->M; i++)
        zp[i * 5 + 3] = 1.0f;
    QG_EXPECT_OK(qg_tensor_write(s2->p->value, zp, s2->M * 5 * sizeof *zp));
    QG_EXPECT_OK(qg_tensor_write(s2->n->value, zp, s2->M * 5 * sizeof *zp));
    free(zp);
    QG_EXPECT_OK(qg__bsq_layer_requant(m, l, 8, 1, 0.0f));
    cr_assert_eq(qg__bsq_set_bits(s2), 1);
    QG_EXPECT_OK(qg__checkpoint_save(m, sp, meta, 2, 0));
    QG_EXPECT_OK(qg__bsq_convert(fp, 0, sp, bp, &r));
    QG_EXPECT_OK(qg__safetensors_read(bp, &f));
    cr_expect_eq(qg__safetensors_get(f, "layer1.0.conv2.pweight")->shape[4], 1);
    cr_expect_eq(qg__safetensors_get(f, "layer1.0.conv1.pweight")->shape[4], 5);
    qg__safetensors_free(f);
    /* a BSQ checkpoint is not a float one */
    cr_expect_eq(qg__bsq_convert(sp, 8, NULL, bp, &r), QG_ERR_INVALID_ARG);
    cr_expect(strstr(qg_last_error(), "already holds bit planes"), "%s", qg_last_error());
    /* a scheme without the layer names the missing tensor */
    cr_expect_neq(qg__bsq_convert(fp, 0, fp, bp, &r), QG_OK);
    cr_expect(strstr(qg_last_error(), "pweight"), "%s", qg_last_error());
    unlink(fp);
    unlink(bp);
    unlink(sp);
    qg__model_free(fm);
    qg__model_free(m);
}

/* --bsq-finetune from a BSQ checkpoint: the precisions stay, the floats
 * are taken from the planes once, and the checkpoint's planes times the
 * scale equal its float weights (the model in both forms). */
Test(bsq_model, finetune_run, .timeout = 600)
{
    qg_train_cfg c;
    qg_test_tiny_train_cfg(&c);
    c.shortcut = 'B';
    c.epochs = 1;
    c.methods = qg_test_methods("bsq prune_int=1 nbits=5");
    char *b = qg_test_tmp_path("bsq", "ftsrc.safetensors"),
         *ft = qg_test_tmp_path("bsq", "ft.safetensors");
    c.checkpoint_path = b;
    QG_EXPECT_OK(qg_train_run(&c));
    qg_test_tiny_train_cfg(&c);
    c.shortcut = 'B';
    c.epochs = 1;
    c.optim.lr = 0.01f;
    c.methods = qg_test_methods("bsq bsq_finetune");
    c.init_path = b;
    c.checkpoint_path = ft;
    QG_EXPECT_OK(qg_train_run(&c));
    qg_st_file *f0 = NULL, *f = NULL;
    QG_EXPECT_OK(qg__safetensors_read(b, &f0));
    QG_EXPECT_OK(qg__safetensors_read(ft, &f));
    const char *ls[3] = {"conv1", "layer2.0.conv2", "linear"};
    for (int k = 0; k < 3; k++) {
        char n[96];
        snprintf(n, sizeof n, "%s.pweight", ls[k]);
        const qg_st_tensor *p0 = qg__safetensors_get(f0, n), *p = qg__safetensors_get(f, n);
        cr_assert(p0 && p);
        int N = (int)p->shape[p->ndim - 1];
        cr_expect_eq(N, (int)p0->shape[p0->ndim - 1], "%s: precision changed", ls[k]);
        snprintf(n, sizeof n, "%s.nweight", ls[k]);
        const qg_st_tensor *nw = qg__safetensors_get(f, n);
        snprintf(n, sizeof n, "%s.scale", ls[k]);
        float s = ((const float *)qg__safetensors_get(f, n)->data)[0];
        snprintf(n, sizeof n, "%s.weight", ls[k]);
        const qg_st_tensor *w = qg__safetensors_get(f, n);
        snprintf(n, sizeof n, "%s.ft_ready", ls[k]);
        cr_expect_float_eq(((const float *)qg__safetensors_get(f, n)->data)[0], 1.0f, 0);
        size_t M = 1;
        for (int d = 0; d < w->ndim; d++)
            M *= (size_t)w->shape[d];
        const float *pv = p->data, *nv = nw->data, *wv = w->data;
        for (size_t i = 0; i < M; i++) {
            float v = qg__bsq_value(pv + i * N, nv + i * N, N) * s;
            cr_expect_float_eq(v, wv[i], 1e-6f * (1 + fabsf(wv[i])), "%s[%zu]", ls[k], i);
        }
    }
    qg__safetensors_free(f0);
    qg__safetensors_free(f);
    unlink(b);
    unlink(ft);
}
