/* src/interop/convert.c: PyTorch state dict -> qgate checkpoint (see
 * convert.h). */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "interop/convert.h"
#include "model/resnet.h"
#include "train/trainer.h"
#include "tensor/tensor_impl.h"

typedef struct owned {
    char **strs;
    size_t n, cap;
    void **bufs;
    size_t nb, capb;
} owned;

static char *own_str(owned *o, const char *s)
{
    if (o->n == o->cap) {
        size_t cap = o->cap ? o->cap * 2 : 64;
        char **a = realloc(o->strs, cap * sizeof *a);
        if (!a)
            return NULL;
        o->strs = a;
        o->cap = cap;
    }
    char *d = strdup(s);
    if (d)
        o->strs[o->n++] = d;
    return d;
}

static void *own_buf(owned *o, size_t bytes)
{
    if (o->nb == o->capb) {
        size_t cap = o->capb ? o->capb * 2 : 64;
        void **a = realloc(o->bufs, cap * sizeof *a);
        if (!a)
            return NULL;
        o->bufs = a;
        o->capb = cap;
    }
    void *b = malloc(bytes ? bytes : 1);
    if (b)
        o->bufs[o->nb++] = b;
    return b;
}

static int ends_with(const char *s, const char *suf)
{
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcmp(s + a - b, suf) == 0;
}

int qg__convert_map_name(const char *in, char *out, size_t cap)
{
    while (strncmp(in, "module.", 7) == 0)
        in += 7;
    static const char *drop[] = {"num_batches_tracked", ".scale_value", ".wscale_value",
                                 ".bscale_value"};
    for (size_t i = 0; i < sizeof drop / sizeof *drop; i++)
        if (ends_with(in, drop[i]))
            return 0;
    char buf[512];
    if (strncmp(in, "fc.", 3) == 0)
        snprintf(buf, sizeof buf, "linear.%s", in + 3);
    else
        snprintf(buf, sizeof buf, "%s", in);
    /* ".downsample." -> ".shortcut." wherever it occurs */
    size_t k = 0;
    for (const char *p = buf; *p && k + 1 < cap;) {
        if (strncmp(p, ".downsample.", 12) == 0) {
            int w = snprintf(out + k, cap - k, ".shortcut.");
            if (w < 0 || (size_t)w >= cap - k)
                break;
            k += (size_t)w;
            p += 12;
        } else {
            out[k++] = *p++;
        }
    }
    out[k < cap ? k : cap - 1] = 0;
    return 1;
}

const char *qg__convert_meta(const qg_conv_result *r, const char *key)
{
    for (size_t i = r->nmeta; i-- > 0;)
        if (strcmp(r->meta[i].key, key) == 0)
            return r->meta[i].value;
    return NULL;
}

static const qg_st_tensor *find(const qg_conv_result *r, const char *name)
{
    for (size_t i = 0; i < r->n; i++)
        if (strcmp(r->tensors[i].name, name) == 0)
            return &r->tensors[i];
    return NULL;
}

static int add_meta(qg_conv_result *r, owned *o, size_t cap, const char *k, const char *v)
{
    if (r->nmeta >= cap)
        return 0;
    const char *kk = own_str(o, k), *vv = own_str(o, v);
    if (!kk || !vv)
        return 0;
    r->meta[r->nmeta++] = (qg_st_meta){kk, vv};
    return 1;
}

void qg__convert_free(qg_conv_result *r)
{
    if (!r)
        return;
    owned *o = r->priv;
    if (o) {
        for (size_t i = 0; i < o->n; i++)
            free(o->strs[i]);
        for (size_t i = 0; i < o->nb; i++)
            free(o->bufs[i]);
        free(o->strs);
        free(o->bufs);
        free(o);
    }
    free(r->tensors);
    free(r->meta);
    free(r);
}

/* Architecture from the mapped tensors. */
static qg_status infer_arch(const qg_conv_result *r, const qg_convert_opts *o, char *arch,
                            size_t cap, char *shortcut, int *in_c, int *classes)
{
    const qg_st_tensor *c1 = find(r, "conv1.weight"), *fc = find(r, "linear.weight");
    if (!c1 || c1->ndim != 4 || !fc || fc->ndim != 2)
        return qg__error(NULL, QG_ERR_FORMAT, "cannot recognise a CIFAR ResNet: the state "
                         "dict has no 4-d conv1.weight and 2-d fc/linear.weight (qgate reads "
                         "ResNet-6n+2 state dicts)");
    *in_c = (int)c1->shape[1];
    *classes = (int)fc->shape[0];
    int blocks = 0, b_short = 0;
    for (size_t i = 0; i < r->n; i++) {
        int s, b;
        char rest[64];
        if (sscanf(r->tensors[i].name, "layer%d.%d.%63s", &s, &b, rest) == 3 && s >= 1 &&
            s <= 3) {
            if (s == 1 && b + 1 > blocks)
                blocks = b + 1;
            if (strncmp(rest, "shortcut.0.", 11) == 0)
                b_short = 1;
        }
    }
    if (o->arch) {
        snprintf(arch, cap, "%s", o->arch);
    } else {
        if (!blocks)
            return qg__error(NULL, QG_ERR_FORMAT, "cannot infer the depth: no layer1.N.* "
                             "tensors (pass --arch)");
        snprintf(arch, cap, "resnet%d", 6 * blocks + 2);
    }
    *shortcut = o->shortcut ? o->shortcut : (b_short ? 'B' : 'A');
    return QG_OK;
}

qg_status qg__convert_pth(const qg_pth *p, const qg_convert_opts *o, qg_conv_result **out)
{
    qg_status st = QG_OK;
    *out = NULL;
    qg_conv_result *r = calloc(1, sizeof *r);
    owned *ow = calloc(1, sizeof *ow);
    size_t mcap = 48 + p->nmeta + o->nextra;
    if (!r || !ow) {
        free(r);
        free(ow);
        return qg__error(NULL, QG_ERR_NOMEM, "out of memory converting");
    }
    r->priv = ow;
    r->tensors = calloc(p->ntensors ? p->ntensors : 1, sizeof *r->tensors);
    r->meta = calloc(mcap, sizeof *r->meta);
    if (!r->tensors || !r->meta)
        goto nomem;
    int pg = 0, cg = 0, pact = 0;
    for (size_t i = 0; i < p->ntensors; i++) {
        const qg_pth_tensor *t = &p->tensors[i];
        char name[256];
        if (!qg__convert_map_name(t->name, name, sizeof name)) {
            size_t l = strlen(r->dropped_names);
            if (r->dropped < 4 || l == 0)
                snprintf(r->dropped_names + l, sizeof r->dropped_names - l, "%s%s",
                         l ? ", " : "", t->name);
            r->dropped++;
            continue;
        }
        if (strcmp(name, t->name) != 0)
            r->renamed++;
        if (find(r, name))
            st = qg__error(NULL, QG_ERR_FORMAT, "two tensors map to '%s' (the second is "
                           "'%s')", name, t->name);
        if (st != QG_OK)
            goto fail;
        qg_st_tensor *d = &r->tensors[r->n];
        d->name = own_str(ow, name);
        d->ndim = t->ndim;
        memcpy(d->shape, t->shape, sizeof(int64_t) * (size_t)(t->ndim < QG_MAX_DIMS ? t->ndim : QG_MAX_DIMS));
        if (t->ndim > QG_MAX_DIMS) {
            st = qg__error(NULL, QG_ERR_SHAPE, "tensor '%s' has %d dimensions (qgate keeps at "
                           "most %d)", t->name, t->ndim, QG_MAX_DIMS);
            goto fail;
        }
        float *f = own_buf(ow, t->numel * sizeof(float));
        if (!d->name || !f)
            goto nomem;
        qg__pth_to_f32(t, f);
        d->dtype = QG_DTYPE_F32;
        if (t->dtype == QG_PKD_I64 || t->dtype == QG_PKD_I32 || t->dtype == QG_PKD_I16 ||
            t->dtype == QG_PKD_I8) {
            /* integer buffers stay integers where they fit 32 bits */
            int32_t *q = (int32_t *)f;
            size_t k = 0;
            for (; k < t->numel; k++) {
                int64_t v = 0;
                const unsigned char *s = t->data;
                size_t es = qg__pk_dtype_size(t->dtype);
                if (es == 8) { memcpy(&v, s + 8 * k, 8); }
                else if (es == 4) { int32_t x; memcpy(&x, s + 4 * k, 4); v = x; }
                else if (es == 2) { int16_t x; memcpy(&x, s + 2 * k, 2); v = x; }
                else { v = (int8_t)s[k]; }
                if (v < INT32_MIN || v > INT32_MAX)
                    break;
                q[k] = (int32_t)v;
            }
            d->dtype = QG_DTYPE_I32;
            if (k < t->numel) {
                /* int64 values beyond int32: no qgate tensor holds them */
                size_t l = strlen(r->dropped_names);
                snprintf(r->dropped_names + l, sizeof r->dropped_names - l, "%s%s (int64)",
                         l ? ", " : "", t->name);
                r->dropped++;
                continue;
            }
        }
        d->data = f;
        r->n++;
        if (ends_with(name, ".threshold"))
            pg = 1;
        if (ends_with(name, ".mask"))
            cg = 1;
        if (ends_with(name, "relu.upper_bound"))
            pact = 1;
    }
    if (cg)
        pg = 0;
    char arch[64], shortcut = 'A';
    int in_c = 0, classes = 0;
    QG_TRY(infer_arch(r, o, arch, sizeof arch, &shortcut, &in_c, &classes));
    if (o->in_c && o->in_c != in_c) {
        st = qg__error(NULL, QG_ERR_SHAPE, "--input has %d channels, conv1.weight takes %d",
                       o->in_c, in_c);
        goto fail;
    }
    int h = o->in_h ? o->in_h : (in_c == 1 ? 28 : 32), w = o->in_w ? o->in_w : h;
    const char *dataset = o->dataset;
    if (!dataset)
        dataset = in_c == 1 && classes == 10 ? "fashion-mnist"
                  : in_c == 3 && classes == 10 ? "cifar10"
                  : in_c == 3 && classes == 100 ? "cifar100" : NULL;
    int wbits = o->wbits ? o->wbits : 32, abits = o->abits ? o->abits : 32;
    if (pg && (!o->wbits || !o->abits || !o->pred_bits)) {
        st = qg__error(NULL, QG_ERR_INVALID_ARG, "the state dict has precision-gating "
                       "thresholds: pass its bit widths (--wbits, --abits, --pred-bits)");
        goto fail;
    }
    char v[8][32];
    snprintf(v[0], 32, "%c", shortcut);
    snprintf(v[1], 32, "%d", in_c);
    snprintf(v[2], 32, "%d", h);
    snprintf(v[3], 32, "%d", w);
    snprintf(v[4], 32, "%d", classes);
    snprintf(v[5], 32, "%d", wbits);
    snprintf(v[6], 32, "%d", abits);
    snprintf(v[7], 32, "%d", pg ? o->pred_bits : 0);
    int ok = add_meta(r, ow, mcap, "format", "qgate-checkpoint-1") &&
             add_meta(r, ow, mcap, "arch", arch) && add_meta(r, ow, mcap, "shortcut", v[0]) &&
             add_meta(r, ow, mcap, "in_channels", v[1]) &&
             add_meta(r, ow, mcap, "in_height", v[2]) && add_meta(r, ow, mcap, "in_width", v[3]) &&
             add_meta(r, ow, mcap, "classes", v[4]) && add_meta(r, ow, mcap, "wbits", v[5]) &&
             add_meta(r, ow, mcap, "abits", v[6]) && add_meta(r, ow, mcap, "pred_bits", v[7]) &&
             add_meta(r, ow, mcap, "pg", pg ? "1" : "0") &&
             add_meta(r, ow, mcap, "pact", pact ? "1" : "0") &&
             add_meta(r, ow, mcap, "cg", cg ? "1" : "0") &&
             add_meta(r, ow, mcap, "converted_from",
                      p->format == QG_PTH_ZIP ? "pytorch-zip" : "pytorch-legacy");
    if (ok && dataset)
        ok = add_meta(r, ow, mcap, "dataset", dataset);
    if (ok && o->source)
        ok = add_meta(r, ow, mcap, "source_file", o->source);
    const qg_pth_meta *ep = qg__pth_meta_get(p, "epoch");
    if (ok && ep)
        ok = add_meta(r, ow, mcap, "epoch", ep->value);
    for (size_t i = 0; ok && i < p->nmeta; i++) {
        char k[96];
        snprintf(k, sizeof k, "pth.%s", p->meta[i].key);
        ok = add_meta(r, ow, mcap, k, p->meta[i].value);
    }
    for (size_t i = 0; ok && i < o->nextra; i++) {
        const char *eq = strchr(o->extra_meta[i], '=');
        if (!eq || eq == o->extra_meta[i]) {
            st = qg__error(NULL, QG_ERR_INVALID_ARG, "--meta '%s' is not KEY=VALUE",
                           o->extra_meta[i]);
            goto fail;
        }
        char k[96];
        snprintf(k, sizeof k, "%.*s", (int)(eq - o->extra_meta[i]), o->extra_meta[i]);
        ok = add_meta(r, ow, mcap, k, eq + 1);
    }
    if (!ok)
        goto nomem;
    *out = r;
    return QG_OK;
nomem:
    st = qg__error(NULL, QG_ERR_NOMEM, "out of memory converting");
fail:
    qg__convert_free(r);
    return st;
}

void qg__convert_filter(qg_conv_result *r, int (*keep)(const char *name, void *arg), void *arg)
{
    size_t k = 0;
    for (size_t i = 0; i < r->n; i++)
        if (keep(r->tensors[i].name, arg))
            r->tensors[k++] = r->tensors[i];
    r->n = k;
}

qg_status qg__convert_write(const qg_conv_result *r, const char *path)
{
    return qg__safetensors_write(path, r->tensors, r->n, r->meta, r->nmeta);
}

/* ---- model from metadata ---- */

qg_status qg__interop_model_from_meta(qg_ctx *ctx, const qg_st_file *f, const char *path,
                                      qg_model **out)
{
    /* the one reader of checkpoint metadata (src/train/trainer.c), with
     * CIFAR's shape where the file names none */
    return qg__model_from_meta(ctx, f, path, 3, 32, 32, 10, out);
}

qg_status qg__convert_check_logits(qg_model *m, const char *check, double *max_abs,
                                   double *max_ref)
{
    qg_status st = QG_OK;
    qg_st_file *f = NULL;
    float *got = NULL;
    QG_TRY(qg__safetensors_read(check, &f));
    const qg_st_tensor *x = qg__safetensors_get(f, "input"), *y = qg__safetensors_get(f, "logits");
    if (!x || !y || x->dtype != QG_DTYPE_F32 || y->dtype != QG_DTYPE_F32 || x->ndim != 4 ||
        y->ndim != 2 || x->shape[0] != y->shape[0] || x->shape[0] < 1) {
        st = qg__error(m->ctx, QG_ERR_FORMAT, "'%s' needs F32 tensors input [N,C,H,W] and "
                       "logits [N,K]", check);
        goto fail;
    }
    if (x->shape[1] != m->in_c || x->shape[2] != m->in_h || x->shape[3] != m->in_w ||
        y->shape[1] != m->classes) {
        st = qg__error(m->ctx, QG_ERR_SHAPE, "'%s': input %lldx%lldx%lld and %lld logits, the "
                       "model takes %dx%dx%d and has %d classes", check,
                       (long long)x->shape[1], (long long)x->shape[2], (long long)x->shape[3],
                       (long long)y->shape[1], m->in_c, m->in_h, m->in_w, m->classes);
        goto fail;
    }
    int n = (int)x->shape[0];
    QG_TRY(qg__model_setup(m, n));
    QG_TRY(qg_tensor_write(qg__model_input(m), x->data,
                           (size_t)n * (size_t)m->in_c * (size_t)m->in_h * (size_t)m->in_w * 4));
    m->active = n;
    QG_TRY(qg__model_forward(m, 0));
    size_t k = (size_t)n * (size_t)m->classes;
    got = malloc(k * sizeof *got);
    if (!got) {
        st = qg__error(m->ctx, QG_ERR_NOMEM, "out of memory");
        goto fail;
    }
    QG_TRY(qg_tensor_read(qg__model_logits(m), got, k * sizeof *got));
    const float *want = y->data;
    *max_abs = 0;
    *max_ref = 0;
    for (size_t i = 0; i < k; i++) {
        double d = got[i] - want[i];
        if (d < 0)
            d = -d;
        if (!(d <= *max_abs))
            *max_abs = d;
        double a = want[i] < 0 ? -want[i] : want[i];
        if (a > *max_ref)
            *max_ref = a;
    }
fail:
    free(got);
    qg__safetensors_free(f);
    return st;
}
