/* src/interop/ckview.c: checkpoint view and weight-layer table (see
 * ckview.h). */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>

#include "core/error.h"
#include "core/fileio.h"
#include "interop/ckview.h"
#include "interop/convert.h"
#include "interop/pth.h"
#include "model/safetensors.h"

struct qg_ckview {
    qg_ck_tensor *t;
    size_t n;
    char **mk, **mv;         /* metadata, owned */
    size_t nmeta;
    float **owned;           /* converted tensor data */
    char **names;            /* owned tensor names */
    size_t nowned, nnames;
    qg_ck_layer *layers;
    size_t nlayers;
};

void qg__ckview_free(qg_ckview *v)
{
    if (!v)
        return;
    for (size_t i = 0; i < v->nmeta; i++) {
        free(v->mk[i]);
        free(v->mv[i]);
    }
    for (size_t i = 0; i < v->nowned; i++)
        free(v->owned[i]);
    for (size_t i = 0; i < v->nnames; i++)
        free(v->names[i]);
    free(v->mk);
    free(v->mv);
    free(v->owned);
    free(v->names);
    free(v->t);
    free(v->layers);
    free(v);
}

const char *qg__ckview_meta(const qg_ckview *v, const char *key)
{
    for (size_t i = 0; i < v->nmeta; i++)
        if (strcmp(v->mk[i], key) == 0)
            return v->mv[i];
    return NULL;
}

size_t qg__ckview_meta_count(const qg_ckview *v) { return v->nmeta; }

void qg__ckview_meta_at(const qg_ckview *v, size_t i, const char **key, const char **value)
{
    *key = v->mk[i];
    *value = v->mv[i];
}

size_t qg__ckview_count(const qg_ckview *v) { return v->n; }
const qg_ck_tensor *qg__ckview_at(const qg_ckview *v, size_t i) { return &v->t[i]; }

const qg_ck_tensor *qg__ckview_get(const qg_ckview *v, const char *name)
{
    for (size_t i = 0; i < v->n; i++)
        if (strcmp(v->t[i].name, name) == 0)
            return &v->t[i];
    return NULL;
}

static int add_meta(qg_ckview *v, const char *k, const char *val)
{
    char *a = strdup(k), *b = strdup(val);
    if (!a || !b) {
        free(a);
        free(b);
        return 0;
    }
    v->mk[v->nmeta] = a;
    v->mv[v->nmeta++] = b;
    return 1;
}

/* Metadata of a safetensors file, in header order (the safetensors reader
 * answers lookups only). */
static qg_status st_meta(qg_ckview *v, const char *path)
{
    unsigned char *data;
    size_t len;
    qg_status st = qg__file_read(NULL, path, &data, &len);
    if (st != QG_OK)
        return st;
    uint64_t hl = 0;
    for (int i = 7; i >= 0 && len >= 8; i--)
        hl = hl << 8 | data[i];
    json_t *h = len >= 8 && hl <= len - 8 ? json_loadb((const char *)data + 8, hl, 0, NULL) : NULL;
    free(data);
    json_t *m = json_object_get(h, "__metadata__");
    size_t n = json_object_size(m);
    v->mk = calloc(n + 1, sizeof *v->mk);
    v->mv = calloc(n + 1, sizeof *v->mv);
    if (!v->mk || !v->mv) {
        json_decref(h);
        return qg__error(NULL, QG_ERR_NOMEM, "out of memory");
    }
    const char *k;
    json_t *val;
    json_object_foreach(m, k, val) {
        if (json_is_string(val) && !add_meta(v, k, json_string_value(val))) {
            json_decref(h);
            return qg__error(NULL, QG_ERR_NOMEM, "out of memory");
        }
    }
    json_decref(h);
    return QG_OK;
}

static float *own(qg_ckview *v, size_t n)
{
    float *f = malloc((n ? n : 1) * sizeof *f);
    if (f)
        v->owned[v->nowned++] = f;
    return f;
}

static char *own_name(qg_ckview *v, const char *s)
{
    char *d = strdup(s);
    if (d)
        v->names[v->nnames++] = d;
    return d;
}

static qg_status open_safetensors(qg_ckview *v, const char *path)
{
    qg_st_file *f;
    qg_status st = qg__safetensors_read(path, &f);
    if (st != QG_OK)
        return st;
    size_t n = qg__safetensors_count(f);
    v->t = calloc(n + 1, sizeof *v->t);
    v->owned = calloc(2 * n + 2, sizeof *v->owned);   /* tensors + BSQ weights */
    v->names = calloc(n + 1, sizeof *v->names);
    if (!v->t || !v->owned || !v->names) {
        st = qg__error(NULL, QG_ERR_NOMEM, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        const qg_st_tensor *s = qg__safetensors_at(f, i);
        size_t len = strlen(s->name);
        /* optimizer state, and the batch-norm step counters written for
         * PyTorch's strict loads (src/train/checkpoint.c) */
        if (strncmp(s->name, "optimizer.", 10) == 0 ||
            (len > 20 && strcmp(s->name + len - 20, ".num_batches_tracked") == 0))
            continue;
        qg_ck_tensor *t = &v->t[v->n];
        t->name = own_name(v, s->name);
        t->ndim = s->ndim;
        t->numel = 1;
        for (int d = 0; d < s->ndim; d++) {
            t->shape[d] = s->shape[d];
            t->numel *= (size_t)s->shape[d];
        }
        float *x = own(v, t->numel);
        if (!t->name || !x) {
            st = qg__error(NULL, QG_ERR_NOMEM, "out of memory");
            goto fail;
        }
        for (size_t k = 0; k < t->numel; k++)
            x[k] = s->dtype == QG_DTYPE_F32 ? ((const float *)s->data)[k]
                   : s->dtype == QG_DTYPE_I32 ? (float)((const int32_t *)s->data)[k]
                                              : (float)((const uint8_t *)s->data)[k];
        t->data = x;
        v->n++;
    }
    st = st_meta(v, path);
fail:
    qg__safetensors_free(f);
    return st;
}

/* A .pth: names mapped as `qgate convert` maps them, any state dict (no
 * architecture needed), its scalars as pth.<key> metadata. */
static qg_status open_pth(qg_ckview *v, const char *path)
{
    qg_pth *p;
    qg_status st = qg__pth_read(path, &p);
    if (st != QG_OK)
        return st;
    v->t = calloc(p->ntensors + 1, sizeof *v->t);
    v->owned = calloc(2 * p->ntensors + 2, sizeof *v->owned);
    v->names = calloc(p->ntensors + 1, sizeof *v->names);
    v->mk = calloc(p->nmeta + 2, sizeof *v->mk);
    v->mv = calloc(p->nmeta + 2, sizeof *v->mv);
    if (!v->t || !v->owned || !v->names || !v->mk || !v->mv)
        goto nomem;
    for (size_t i = 0; i < p->ntensors; i++) {
        const qg_pth_tensor *s = &p->tensors[i];
        char name[256];
        if (!qg__convert_map_name(s->name, name, sizeof name))
            continue;
        qg_ck_tensor *t = &v->t[v->n];
        t->name = own_name(v, name);
        t->ndim = s->ndim;
        memcpy(t->shape, s->shape, sizeof(int64_t) * (size_t)s->ndim);
        t->numel = s->numel;
        float *x = own(v, s->numel);
        if (!t->name || !x)
            goto nomem;
        qg__pth_to_f32(s, x);
        t->data = x;
        v->n++;
    }
    /* the architecture as qgate convert would infer it, when it can */
    qg_conv_result *r = NULL;
    qg_convert_opts co = {0};
    if (qg__convert_pth(p, &co, &r) == QG_OK) {
        char **mk = realloc(v->mk, (p->nmeta + 2 + r->nmeta) * sizeof *mk);
        char **mv = realloc(v->mv, (p->nmeta + 2 + r->nmeta) * sizeof *mv);
        if (mk)
            v->mk = mk;
        if (mv)
            v->mv = mv;
        for (size_t i = 0; mk && mv && i < r->nmeta; i++)
            if (strncmp(r->meta[i].key, "pth.", 4) != 0 && strcmp(r->meta[i].key, "epoch") != 0 &&
                !add_meta(v, r->meta[i].key, r->meta[i].value))
                break;
        qg__convert_free(r);
        if (!mk || !mv)
            goto nomem;
    } else if (!add_meta(v, "converted_from", p->format == QG_PTH_ZIP ? "pytorch-zip"
                                                                      : "pytorch-legacy")) {
        goto nomem;
    }
    for (size_t i = 0; i < p->nmeta; i++) {
        char k[96];
        snprintf(k, sizeof k, "%s%s", strcmp(p->meta[i].key, "epoch") ? "pth." : "",
                 p->meta[i].key);
        if (!add_meta(v, k, p->meta[i].value))
            goto nomem;
    }
    qg__pth_free(p);
    return QG_OK;
nomem:
    qg__pth_free(p);
    return qg__error(NULL, QG_ERR_NOMEM, "out of memory");
}

void qg__ck_bitplanes(const float *w, size_t n, int bits, double *density)
{
    float m = 0.0f;
    for (size_t i = 0; i < n; i++)
        m = fmaxf(m, fabsf(w[i]));
    float s = m + 1e-7f, L = (float)((1L << bits) - 1);
    long long cnt[QG_CK_MAX_BITS] = {0};
    for (size_t i = 0; i < n; i++) {
        float a = fminf(fabsf(w[i]) / s, 1.0f);
        long q = (long)rintf(a * L);
        for (int b = 0; b < bits; b++)
            cnt[b] += (q >> (bits - 1 - b)) & 1;
    }
    for (int b = 0; b < bits; b++)
        density[b] = n ? (double)cnt[b] / (double)n : 0.0;
}

static int is_block_conv(const char *name)
{
    int s, b;
    char c[16];
    return sscanf(name, "layer%d.%d.%15s", &s, &b, c) == 3 &&
           (strcmp(c, "conv1") == 0 || strcmp(c, "conv2") == 0);
}

/* BSQ bit planes of `layer`: fills w, bits and densities. */
static int bsq_layer(qg_ckview *v, qg_ck_layer *l)
{
    char n[128];
    snprintf(n, sizeof n, "%s.pweight", l->name);
    const qg_ck_tensor *p = qg__ckview_get(v, n);
    snprintf(n, sizeof n, "%s.nweight", l->name);
    const qg_ck_tensor *q = qg__ckview_get(v, n);
    snprintf(n, sizeof n, "%s.scale", l->name);
    const qg_ck_tensor *s = qg__ckview_get(v, n);
    if (!p || !q || p->numel != q->numel || p->ndim < 2 || p->ndim > 5)
        return 0;
    int N = (int)p->shape[p->ndim - 1];
    if (N < 1 || N > QG_CK_MAX_BITS)
        return 0;
    size_t cnt = p->numel / (size_t)N;
    float *w = own(v, cnt);
    if (!w)
        return 0;
    float sc = s && s->numel ? s->data[0] : 1.0f;
    long long nz[QG_CK_MAX_BITS] = {0};
    for (size_t i = 0; i < cnt; i++) {
        double acc = 0;
        for (int b = 0; b < N; b++) {
            float d = p->data[i * (size_t)N + (size_t)b] - q->data[i * (size_t)N + (size_t)b];
            acc += d * ldexp(1.0, N - 1 - b) / (ldexp(1.0, N) - 1);
            nz[b] += d != 0.0f;
        }
        w[i] = (float)(acc * sc);
    }
    l->bsq = 1;
    l->bits = N;
    l->w = w;
    l->ndim = p->ndim - 1;
    l->params = cnt;
    memcpy(l->shape, p->shape, sizeof(int64_t) * (size_t)l->ndim);
    l->conv = l->ndim == 4;
    l->nplanes = N;
    for (int b = 0; b < N; b++)
        l->density[b] = cnt ? (double)nz[b] / (double)cnt : 0;
    return 1;
}

static qg_status build_layers(qg_ckview *v)
{
    v->layers = calloc(v->n + 1, sizeof *v->layers);
    if (!v->layers)
        return qg__error(NULL, QG_ERR_NOMEM, "out of memory");
    const char *wb = qg__ckview_meta(v, "wbits");
    int wbits = wb ? atoi(wb) : 32;
    const char *lb = qg__ckview_meta(v, "layer_bits");
    json_t *lbits = lb ? json_loads(lb, 0, NULL) : NULL;
    for (size_t i = 0; i < v->n; i++) {
        const qg_ck_tensor *t = &v->t[i];
        size_t len = strlen(t->name);
        const char *suffix = NULL;
        if (len > 7 && strcmp(t->name + len - 7, ".weight") == 0 && (t->ndim == 4 || t->ndim == 2))
            suffix = ".weight";
        else if (len > 8 && strcmp(t->name + len - 8, ".pweight") == 0)
            suffix = ".pweight";
        if (!suffix || len - strlen(suffix) >= sizeof v->layers->name)
            continue;
        qg_ck_layer *l = &v->layers[v->nlayers];
        memset(l, 0, sizeof *l);
        snprintf(l->name, sizeof l->name, "%.*s", (int)(len - strlen(suffix)), t->name);
        /* a BN's weight is 1-d and skipped above; a layer with both forms
         * (BSQ keeps no .weight) is counted once */
        char pw[160];
        snprintf(pw, sizeof pw, "%s.pweight", l->name);
        if (strcmp(suffix, ".pweight") == 0) {
            if (!bsq_layer(v, l))
                continue;
        } else if (qg__ckview_get(v, pw)) {
            continue; /* a BSQ layer's float value: its planes describe it */
        } else {
            l->conv = t->ndim == 4;
            l->ndim = t->ndim;
            memcpy(l->shape, t->shape, sizeof(int64_t) * (size_t)t->ndim);
            l->params = t->numel;
            l->w = t->data;
            json_t *b = json_object_get(lbits, l->name);
            char kn[160];
            snprintf(kn, sizeof kn, "%s.kbits", l->name);
            const qg_ck_tensor *kb = qg__ckview_get(v, kn); /* ProQHA's per-layer bits */
            l->bits = kb && kb->numel == 1 ? (int)kb->data[0]
                      : json_is_integer(b) ? (int)json_integer_value(b)
                      : wbits < 32 && is_block_conv(l->name) ? wbits : 32;
            if (l->bits < 1 || l->bits > 32)
                l->bits = 32;
            if (l->bits <= QG_CK_MAX_BITS) {
                l->nplanes = l->bits;
                qg__ck_bitplanes(l->w, l->params, l->bits, l->density);
            }
        }
        char n[160];
        snprintf(n, sizeof n, "%s.threshold", l->name);
        const qg_ck_tensor *th = qg__ckview_get(v, n);
        if (th && th->numel) {
            l->has_thr = 1;
            l->thr_n = th->numel;
            l->thr_min = l->thr_max = th->data[0];
            double s = 0;
            for (size_t k = 0; k < th->numel; k++) {
                s += th->data[k];
                l->thr_min = fmin(l->thr_min, th->data[k]);
                l->thr_max = fmax(l->thr_max, th->data[k]);
            }
            l->thr_mean = s / (double)th->numel;
        }
        /* PACT: the block's alpha ("layer1.0.conv1" -> "layer1.0"), the stem's */
        char blk[96];
        snprintf(blk, sizeof blk, "%s", l->name);
        char *dot = strrchr(blk, '.');
        if (dot)
            *dot = 0;
        snprintf(n, sizeof n, "%s%srelu.upper_bound", dot ? blk : "", dot ? "." : "");
        const qg_ck_tensor *al = qg__ckview_get(v, n);
        if (al && al->numel && (dot || strcmp(l->name, "conv1") == 0)) {
            l->has_alpha = 1;
            l->alpha = al->data[0];
        }
        v->nlayers++;
    }
    json_decref(lbits);
    return QG_OK;
}

qg_status qg__ckview_open(const char *path, qg_ckview **out)
{
    *out = NULL;
    qg_ckview *v = calloc(1, sizeof *v);
    if (!v)
        return qg__error(NULL, QG_ERR_NOMEM, "out of memory");
    int pth = qg__pth_sniff_file(path);
    qg_status st = pth < 0 ? qg__error(NULL, QG_ERR_IO, "cannot open '%s'", path)
                   : pth   ? open_pth(v, path)
                           : open_safetensors(v, path);
    if (st == QG_OK)
        st = build_layers(v);
    if (st != QG_OK) {
        qg__ckview_free(v);
        return st;
    }
    *out = v;
    return QG_OK;
}

size_t qg__ckview_layers(const qg_ckview *v, const qg_ck_layer **layers)
{
    *layers = v->layers;
    return v->nlayers;
}
