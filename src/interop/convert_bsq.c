/* src/interop/convert_bsq.c: a float qgate checkpoint to BSQ's bit
 * representation (`qgate convert FLOAT.safetensors --bits N`; see
 * convert_bsq.h and docs/methods.md §7). */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "interop/convert_bsq.h"
#include "quant/bsq.h"

static int ends_with(const char *s, const char *suf)
{
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcmp(s + a - b, suf) == 0;
}

int qg__bsq_convert_quantizes(const qg_st_file *f, const char *name)
{
    const qg_st_tensor *t = qg__safetensors_get(f, name);
    if (!t || t->dtype != QG_DTYPE_F32 || strstr(name, "shortcut") || strstr(name, "downsample"))
        return 0;
    if (ends_with(name, ".weight"))
        return t->ndim == 4 || t->ndim == 2;
    if (ends_with(name, ".bias")) {
        char w[256];
        snprintf(w, sizeof w, "%.*s.weight", (int)(strlen(name) - 5), name);
        return qg__bsq_convert_quantizes(f, w);
    }
    return 0;
}

typedef struct out_list {
    qg_st_tensor *t;
    void **owned;
    char **names;
    size_t n, cap;
} out_list;

static qg_status push(out_list *o, const char *name, qg_dtype dt, int ndim, const int64_t *shape,
                      const void *data, void *owned)
{
    if (o->n == o->cap) {
        size_t nc = o->cap ? 2 * o->cap : 64;
        qg_st_tensor *t = realloc(o->t, nc * sizeof *t);
        if (t)
            o->t = t;
        void **w = realloc(o->owned, nc * sizeof *w);
        if (w)
            o->owned = w;
        char **s = realloc(o->names, nc * sizeof *s);
        if (s)
            o->names = s;
        if (!t || !w || !s) {
            free(owned);
            return qg__error(NULL, QG_ERR_NOMEM, "out of memory");
        }
        o->cap = nc;
    }
    char *nm = strdup(name);
    if (!nm) {
        free(owned);
        return qg__error(NULL, QG_ERR_NOMEM, "out of memory");
    }
    o->names[o->n] = nm;
    o->owned[o->n] = owned;
    o->t[o->n] = (qg_st_tensor){.name = nm, .dtype = dt, .ndim = ndim, .data = data};
    memcpy(o->t[o->n].shape, shape, sizeof(int64_t) * (size_t)ndim);
    o->n++;
    return QG_OK;
}

static void out_free(out_list *o)
{
    for (size_t i = 0; i < o->n; i++) {
        free(o->owned[i]);
        free(o->names[i]);
    }
    free(o->t);
    free(o->owned);
    free(o->names);
}

/* The precision `scheme` gives tensor `name` (X.weight -> X.pweight's last
 * axis, X.bias -> X.pbias's). */
static qg_status scheme_bits(const qg_st_file *sf, const char *spath, const char *name, int *N)
{
    char key[256];
    int bias = ends_with(name, ".bias");
    size_t base = strlen(name) - (bias ? 5 : 7);
    snprintf(key, sizeof key, "%.*s.%s", (int)base, name, bias ? "pbias" : "pweight");
    const qg_st_tensor *t = qg__safetensors_get(sf, key);
    if (!t || t->ndim < 1)
        return qg__error(NULL, QG_ERR_FORMAT, "--scheme '%s' has no '%s' (the precision of "
                         "'%s'); is it a BSQ checkpoint of the same architecture?", spath,
                         key, name);
    *N = (int)t->shape[t->ndim - 1];
    if (*N < 1 || *N > QG_BSQ_MAX_BITS)
        return qg__error(NULL, QG_ERR_FORMAT, "--scheme '%s': '%s' has %d bit planes; 1..%d "
                         "allowed", spath, key, *N, QG_BSQ_MAX_BITS);
    return QG_OK;
}

qg_status qg__bsq_convert(const char *in, int bits, const char *scheme, const char *out,
                          qg_bsq_convert_report *r)
{
    qg_status st = QG_OK;
    qg_st_file *f = NULL, *sf = NULL;
    out_list o = {0};
    qg_st_meta *meta = NULL;
    char nbits_s[16];
    memset(r, 0, sizeof *r);
    if (!scheme && (bits < 1 || bits > QG_BSQ_MAX_BITS))
        return qg__error(NULL, QG_ERR_INVALID_ARG, "--bits %d: BSQ takes 1..%d", bits,
                         QG_BSQ_MAX_BITS);
    QG_TRY(qg__safetensors_read(in, &f));
    if (scheme)
        QG_TRY(qg__safetensors_read(scheme, &sf));
    int maxN = 0;
    for (size_t i = 0; i < qg__safetensors_count(f); i++) {
        const qg_st_tensor *t = qg__safetensors_at(f, i);
        char nm[256];
        if (strncmp(t->name, "optimizer.", 10) == 0)
            continue; /* weights only */
        if (ends_with(t->name, ".pweight") || ends_with(t->name, ".pbias")) {
            st = qg__error(NULL, QG_ERR_INVALID_ARG, "'%s' already holds bit planes ('%s'); "
                           "convert the float checkpoint", in, t->name);
            goto fail;
        }
        if (!qg__bsq_convert_quantizes(f, t->name)) {
            QG_TRY(push(&o, t->name, t->dtype, t->ndim, t->shape, t->data, NULL));
            continue;
        }
        int N = bits;
        if (sf)
            QG_TRY(scheme_bits(sf, scheme, t->name, &N));
        maxN = N > maxN ? N : maxN;
        int bias = ends_with(t->name, ".bias");
        size_t base = strlen(t->name) - (bias ? 5 : 7);
        size_t M = 1;
        for (int d = 0; d < t->ndim; d++)
            M *= (size_t)t->shape[d];
        const float *w = t->data;
        float S = 0.0f;
        for (size_t k = 0; k < M; k++)
            S = fmaxf(S, fabsf(w[k]));
        float *p = malloc(M * (size_t)N * sizeof *p + 1);
        float *n = malloc(M * (size_t)N * sizeof *n + 1);
        float *v = malloc(M * sizeof *v + 1), *s = malloc(sizeof *s);
        if (!p || !n || !v || !s) {
            free(p);
            free(n);
            free(v);
            free(s);
            st = qg__error(NULL, QG_ERR_NOMEM, "out of memory converting '%s'", t->name);
            goto fail;
        }
        qg__bsq_from_float(w, M, N, S, p, n);
        for (size_t k = 0; k < M; k++)
            v[k] = qg__bsq_value(p + k * (size_t)N, n + k * (size_t)N, N) * S;
        *s = S;
        int64_t shape[QG_MAX_DIMS], one[1] = {1};
        memcpy(shape, t->shape, sizeof(int64_t) * (size_t)t->ndim);
        shape[t->ndim] = N;
        /* the float tensor becomes the value of its bits */
        QG_TRY(push(&o, t->name, QG_DTYPE_F32, t->ndim, t->shape, v, v));
        snprintf(nm, sizeof nm, "%.*s.%s", (int)base, t->name, bias ? "pbias" : "pweight");
        QG_TRY(push(&o, nm, QG_DTYPE_F32, t->ndim + 1, shape, p, p));
        snprintf(nm, sizeof nm, "%.*s.%s", (int)base, t->name, bias ? "nbias" : "nweight");
        QG_TRY(push(&o, nm, QG_DTYPE_F32, t->ndim + 1, shape, n, n));
        snprintf(nm, sizeof nm, "%.*s.%s", (int)base, t->name, bias ? "biasscale" : "scale");
        QG_TRY(push(&o, nm, QG_DTYPE_F32, 1, one, s, s));
        r->tensors++;
        r->layers += !bias;
        r->values += M;
        r->bits += (double)M * N;
    }
    if (!r->tensors) {
        st = qg__error(NULL, QG_ERR_FORMAT, "'%s' holds no conv or linear weights to convert",
                       in);
        goto fail;
    }
    /* metadata: the file's, with BSQ switched on */
    const char *keys[] = {"methods", "bsq", "nbits"};
    size_t nmeta = 0, cap = 64;
    meta = calloc(cap + 3, sizeof *meta);
    if (!meta) {
        st = qg__error(NULL, QG_ERR_NOMEM, "out of memory");
        goto fail;
    }
    snprintf(nbits_s, sizeof nbits_s, "%d", sf ? maxN : bits);
    const char *vals[] = {"bsq", "1", nbits_s};
    for (int k = 0; k < 3; k++)
        meta[nmeta++] = (qg_st_meta){keys[k], vals[k]};
    static const char *const known[] = {"arch", "shortcut", "in_channels", "in_height",
                                        "in_width", "classes", "dataset", "seed"};
    for (size_t k = 0; k < sizeof known / sizeof *known; k++) {
        const char *v = qg__safetensors_meta(f, known[k]);
        if (v)
            meta[nmeta++] = (qg_st_meta){known[k], v};
    }
    meta[nmeta++] = (qg_st_meta){"bsq_converted_from", in};
    st = qg__safetensors_write(out, o.t, o.n, meta, nmeta);
fail:
    free(meta);
    out_free(&o);
    qg__safetensors_free(f);
    qg__safetensors_free(sf);
    return st;
}
