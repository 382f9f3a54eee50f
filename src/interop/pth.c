/* src/interop/pth.c: PyTorch checkpoint containers (see pth.h). */
#include "config.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zip.h>

#include "core/error.h"
#include "core/fileio.h"
#include "interop/pth.h"

#define MAX_DEPTH 16            /* nested dicts in a state dict */
#define MAX_TENSORS 100000
#define MAX_ENTRY ((zip_uint64_t)4 << 30)

/* The legacy stream's first pickle: LONG1 0x1950a86a20f9469cfc6c. */
static const unsigned char legacy_magic[10] = {0x6c, 0xfc, 0x9c, 0x46, 0xf9,
                                               0x20, 0x6a, 0xa8, 0x50, 0x19};

typedef struct storage {
    const char *key;
    const unsigned char *data;   /* NULL until loaded (zip) */
    int64_t bytes;               /* bytes actually present (a storage may be named
                                    with more than one dtype: count per use) */
    zip_int64_t zip_index;
    unsigned char *owned;
} storage;

typedef struct ref {
    const char *name;            /* built name (owned by the name arena) */
    const qg_pk_value *v;
} ref;

typedef struct reader {
    const char *what;
    const unsigned char *data;
    size_t len;
    qg_pickle *pk;
    zip_t *za;
    char prefix[256];            /* zip: "<name>/" */
    storage *st;
    size_t nst;
    ref *tensors;
    size_t nt, cap_t;
    ref *metas;
    size_t nm, cap_m;
    char **names;                /* owned name strings */
    size_t nnames, cap_names;
} reader;

int qg__pth_sniff(const unsigned char *d, size_t len)
{
    if (len >= 4 && d[0] == 'P' && d[1] == 'K' && d[2] == 3 && d[3] == 4)
        return 1;
    return len >= 15 && d[0] == 0x80 && d[1] <= 5 && d[2] == 0x8a && d[3] == 10 &&
           memcmp(d + 4, legacy_magic, sizeof legacy_magic) == 0;
}

int qg__pth_sniff_file(const char *path)
{
    unsigned char head[16] = {0};
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    size_t got = fread(head, 1, sizeof head, f);
    fclose(f);
    return qg__pth_sniff(head, got);
}

static qg_status nomem(const reader *r)
{
    return qg__error(NULL, QG_ERR_NOMEM, "%s: out of memory", r->what);
}

static qg_status ferr(const reader *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static qg_status ferr(const reader *r, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return qg__error(NULL, QG_ERR_FORMAT, "%s: %s", r->what, msg);
}

static const char *keep_name(reader *r, const char *prefix, const char *name)
{
    if (r->nnames == r->cap_names) {
        size_t cap = r->cap_names ? r->cap_names * 2 : 64;
        char **n = realloc(r->names, cap * sizeof *n);
        if (!n)
            return NULL;
        r->names = n;
        r->cap_names = cap;
    }
    size_t lp = strlen(prefix), ln = strlen(name);
    char *s = malloc(lp + ln + 1);
    if (!s)
        return NULL;
    memcpy(s, prefix, lp);
    memcpy(s + lp, name, ln + 1);
    r->names[r->nnames++] = s;
    return s;
}

static int add_ref(ref **arr, size_t *n, size_t *cap, const char *name, const qg_pk_value *v)
{
    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 64;
        ref *a = realloc(*arr, c * sizeof *a);
        if (!a)
            return 0;
        *arr = a;
        *cap = c;
    }
    (*arr)[(*n)++] = (ref){name, v};
    return 1;
}

/* Collects the tensors of a state dict; nested dicts join with '.'. */
static qg_status collect(reader *r, const qg_pk_value *d, const char *prefix, int depth)
{
    if (depth > MAX_DEPTH)
        return ferr(r, "state dict nests deeper than %d levels", MAX_DEPTH);
    for (size_t i = 0; i + 1 < d->u.seq.n; i += 2) {
        const qg_pk_value *k = d->u.seq.items[i], *v = d->u.seq.items[i + 1];
        if (k->type != QG_PK_STR)
            continue;
        if (strlen(prefix) + k->u.str.len > 200)
            return ferr(r, "state dict key '%.60s...' is longer than 200 bytes", prefix);
        if (memchr(k->u.str.s, 0, k->u.str.len))
            return ferr(r, "state dict key with a NUL byte");
        if (v->type == QG_PK_TENSOR) {
            const char *n = keep_name(r, prefix, k->u.str.s);
            if (!n || r->nt >= MAX_TENSORS || !add_ref(&r->tensors, &r->nt, &r->cap_t, n, v))
                return r->nt >= MAX_TENSORS ? ferr(r, "more than %d tensors", MAX_TENSORS)
                                            : nomem(r);
        } else if (v->type == QG_PK_DICT) {
            char p[256];
            snprintf(p, sizeof p, "%s%s.", prefix, k->u.str.s);
            qg_status st = collect(r, v, p, depth + 1);
            if (st != QG_OK)
                return st;
        }
    }
    return QG_OK;
}

static int has_tensors(const qg_pk_value *d)
{
    if (!d || d->type != QG_PK_DICT)
        return 0;
    for (size_t i = 1; i < d->u.seq.n; i += 2)
        if (d->u.seq.items[i]->type == QG_PK_TENSOR)
            return 1;
    return 0;
}

static qg_status split_object(reader *r, const qg_pk_value *root, qg_pth *p)
{
    if (root->type != QG_PK_DICT)
        return ferr(r, "the pickled object is not a dict (a whole pickled model cannot be "
                    "read safely; save model.state_dict() instead)");
    static const char *keys[] = {"state_dict", "model_state_dict", "model", "net"};
    const qg_pk_value *sd = NULL;
    for (size_t i = 0; i < sizeof keys / sizeof *keys && !sd; i++) {
        const qg_pk_value *v = qg__pk_dict_get(root, keys[i]);
        if (v && v->type == QG_PK_DICT) {
            sd = v;
            snprintf(p->state_key, sizeof p->state_key, "%s", keys[i]);
        }
    }
    if (!sd) {
        if (!has_tensors(root) && root->u.seq.n)
            return ferr(r, "no state dict: the top-level dict has no tensors and no "
                        "'state_dict' entry");
        return collect(r, root, "", 0);
    }
    qg_status st = collect(r, sd, "", 0);
    if (st != QG_OK)
        return st;
    for (size_t i = 0; i + 1 < root->u.seq.n; i += 2) {
        const qg_pk_value *k = root->u.seq.items[i], *v = root->u.seq.items[i + 1];
        if (k->type != QG_PK_STR || v == sd)
            continue;
        /* training state in PyTorch's own layout: of no use to qgate */
        if (strcmp(k->u.str.s, "optimizer") == 0 || strcmp(k->u.str.s, "scheduler") == 0 ||
            k->u.str.len > 64) {
            size_t l = strlen(p->skipped);
            snprintf(p->skipped + l, sizeof p->skipped - l, "%s%.64s", l ? ", " : "",
                     k->u.str.s);
            continue;
        }
        if (!add_ref(&r->metas, &r->nm, &r->cap_m, k->u.str.s, v))
            return nomem(r);
    }
    return QG_OK;
}

/* ---- storages ---- */

static int cmp_storage(const void *a, const void *b)
{
    return strcmp(((const storage *)a)->key, ((const storage *)b)->key);
}

static storage *find_storage(reader *r, const char *key)
{
    storage k = {.key = key};
    return r->nst ? bsearch(&k, r->st, r->nst, sizeof *r->st, cmp_storage) : NULL;
}

static qg_status load_zip_storage(reader *r, storage *s)
{
    zip_stat_t sb;
    if (zip_stat_index(r->za, (zip_uint64_t)s->zip_index, 0, &sb) != 0 ||
        !(sb.valid & ZIP_STAT_SIZE))
        return ferr(r, "cannot stat storage '%s' in the zip", s->key);
    if (sb.size > MAX_ENTRY)
        return ferr(r, "storage '%s' is larger than 4 GiB", s->key);
    /* the sizes in a zip directory are claims: bound them by the file (and
     * deflate's best ratio, about 1032:1) before allocating */
    if (!(sb.valid & ZIP_STAT_COMP_SIZE) || sb.comp_size > r->len ||
        sb.size / 1032 > sb.comp_size + 1)
        return ferr(r, "storage '%s' claims %llu bytes from %llu compressed bytes in a file of "
                    "%zu: the zip directory is corrupt", s->key, (unsigned long long)sb.size,
                    (unsigned long long)sb.comp_size, r->len);
    s->owned = malloc(sb.size ? sb.size : 1);
    if (!s->owned)
        return nomem(r);
    zip_file_t *zf = zip_fopen_index(r->za, (zip_uint64_t)s->zip_index, 0);
    if (!zf)
        return ferr(r, "cannot open storage '%s': %s", s->key, zip_strerror(r->za));
    zip_int64_t got = zip_fread(zf, s->owned, sb.size);
    const char *why = got < 0 ? zip_file_strerror(zf) : "short read";
    char msg[256];
    snprintf(msg, sizeof msg, "%s", why);
    zip_fclose(zf);
    if (got < 0 || (zip_uint64_t)got != sb.size)
        return ferr(r, "reading storage '%s' failed: %s", s->key, msg);
    s->data = s->owned;
    s->bytes = (int64_t)sb.size;
    return QG_OK;
}

/* The bytes of a storage value (a view resolves to its root). */
static qg_status storage_bytes(reader *r, const qg_pk_value *sv, const unsigned char **data,
                               int64_t *numel)
{
    size_t esz = qg__pk_dtype_size(sv->u.storage.dtype);
    storage *s = find_storage(r, sv->u.storage.root_key);
    if (!s)
        return ferr(r, "storage '%s' is named in the pickle but missing from the file",
                    sv->u.storage.root_key);
    if (!s->data && r->za) {
        qg_status st = load_zip_storage(r, s);
        if (st != QG_OK)
            return st;
    }
    int64_t off = sv->u.storage.root_offset, n = sv->u.storage.numel;
    int64_t have = s->bytes / (int64_t)esz;
    if (off < 0 || n < 0 || off > have || n > have - off)
        return ferr(r, "storage '%s' holds %lld elements, the pickle needs %lld (truncated "
                    "file?)", s->key, (long long)have, (long long)(off + n));
    *data = s->data + (size_t)off * esz;
    *numel = n;
    return QG_OK;
}

static qg_status materialize(reader *r, const ref *t, qg_pth_tensor *out)
{
    const qg_pk_value *v = t->v;
    const qg_pk_value *sv = v->u.tensor.storage;
    size_t esz = qg__pk_dtype_size(sv->u.storage.dtype);
    const unsigned char *base = NULL;
    int64_t avail = 0;
    qg_status st = storage_bytes(r, sv, &base, &avail);
    if (st != QG_OK)
        return st;
    int nd = v->u.tensor.ndim;
    size_t numel = 1;
    int64_t last = 0;
    for (int d = 0; d < nd; d++) {
        int64_t sz = v->u.tensor.size[d];
        if (__builtin_mul_overflow(numel, (size_t)sz, &numel) || numel > ((size_t)1 << 31))
            return ferr(r, "tensor '%s' is too large", t->name);
        /* PyTorch strides are never negative; a negative one would let the
         * spans of the dimensions cancel in the bound below */
        if (v->u.tensor.stride[d] < 0)
            return ferr(r, "tensor '%s' has a negative stride", t->name);
        if (sz > 0) {
            int64_t span;
            if (__builtin_mul_overflow(sz - 1, v->u.tensor.stride[d], &span) ||
                __builtin_add_overflow(last, span, &last))
                return ferr(r, "tensor '%s' has impossible strides", t->name);
        }
    }
    if (numel && (v->u.tensor.offset < 0 || v->u.tensor.offset > avail - 1 ||
                  last > avail - 1 - v->u.tensor.offset))
        return ferr(r, "tensor '%s' (offset %lld, last element %lld) lies outside its "
                    "storage of %lld elements", t->name, (long long)v->u.tensor.offset,
                    (long long)(v->u.tensor.offset + last), (long long)avail);
    out->name = strdup(t->name);
    out->dtype = sv->u.storage.dtype;
    out->ndim = nd;
    memcpy(out->shape, v->u.tensor.size, sizeof out->shape);
    out->numel = numel;
    out->data = malloc(numel ? numel * esz : 1);
    if (!out->name || !out->data)
        return nomem(r);
    /* gather in C order (handles transposed and strided views) */
    int64_t idx[QG_PK_MAX_DIMS] = {0};
    unsigned char *dst = out->data;
    for (size_t i = 0; i < numel; i++) {
        int64_t off = v->u.tensor.offset;
        for (int d = 0; d < nd; d++)
            off += idx[d] * v->u.tensor.stride[d];
        memcpy(dst + i * esz, base + (size_t)off * esz, esz);
        for (int d = nd - 1; d >= 0; d--) {
            if (++idx[d] < v->u.tensor.size[d])
                break;
            idx[d] = 0;
        }
    }
    return QG_OK;
}

/* ---- metadata ---- */

typedef struct sbuf {
    char *s;
    size_t n, cap;
    int full;
} sbuf;

static void sb_put(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_put(sbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(b->s + b->n, b->cap - b->n, fmt, ap);
    va_end(ap);
    if (k < 0 || (size_t)k >= b->cap - b->n)
        b->full = 1;
    else
        b->n += (size_t)k;
}

/* Scalars and small containers of them as JSON; 0 when not representable. */
static int to_json(reader *r, const qg_pk_value *v, sbuf *b, int depth)
{
    if (b->full || depth > 4)
        return 0;
    switch (v->type) {
    case QG_PK_NONE: sb_put(b, "null"); return 1;
    case QG_PK_BOOL: sb_put(b, v->u.i ? "true" : "false"); return 1;
    case QG_PK_INT: sb_put(b, "%lld", (long long)v->u.i); return 1;
    case QG_PK_FLOAT:
        if (!isfinite(v->u.f))
            sb_put(b, "null");
        else
            sb_put(b, "%.17g", v->u.f);
        return 1;
    case QG_PK_STR:
        sb_put(b, "\"");
        for (size_t i = 0; i < v->u.str.len && !b->full; i++) {
            unsigned char c = (unsigned char)v->u.str.s[i];
            if (c == '"' || c == '\\')
                sb_put(b, "\\%c", c);
            else if (c < 0x20)
                sb_put(b, "\\u%04x", c);
            else
                sb_put(b, "%c", c);
        }
        sb_put(b, "\"");
        return 1;
    case QG_PK_TUPLE:
    case QG_PK_LIST:
        sb_put(b, "[");
        for (size_t i = 0; i < v->u.seq.n; i++) {
            if (i)
                sb_put(b, ", ");
            if (!to_json(r, v->u.seq.items[i], b, depth + 1))
                return 0;
        }
        sb_put(b, "]");
        return !b->full;
    case QG_PK_DICT:
        sb_put(b, "{");
        for (size_t i = 0; i + 1 < v->u.seq.n; i += 2) {
            const qg_pk_value *k = v->u.seq.items[i];
            if (i)
                sb_put(b, ", ");
            if (k->type == QG_PK_STR) {
                if (!to_json(r, k, b, depth + 1))
                    return 0;
            } else if (k->type == QG_PK_INT) {
                sb_put(b, "\"%lld\"", (long long)k->u.i);
            } else {
                return 0;
            }
            sb_put(b, ": ");
            if (!to_json(r, v->u.seq.items[i + 1], b, depth + 1))
                return 0;
        }
        sb_put(b, "}");
        return !b->full;
    case QG_PK_TENSOR: {
        /* a one-element tensor (acc = torch.tensor(92.5)) as its number */
        ref t = {"(metadata)", v};
        qg_pth_tensor x = {0};
        size_t n = 1;
        for (int d = 0; d < v->u.tensor.ndim; d++)
            n *= (size_t)v->u.tensor.size[d];
        if (n != 1 || materialize(r, &t, &x) != QG_OK) {
            free(x.name);
            free(x.data);
            return 0;
        }
        float f;
        qg__pth_to_f32(&x, &f);
        free(x.name);
        free(x.data);
        sb_put(b, "%.9g", f);
        return 1;
    }
    default:
        return 0;
    }
}

static qg_status build_meta(reader *r, qg_pth *p)
{
    p->meta = calloc(r->nm ? r->nm : 1, sizeof *p->meta);
    if (!p->meta)
        return nomem(r);
    char buf[4096];
    for (size_t i = 0; i < r->nm; i++) {
        sbuf b = {buf, 0, sizeof buf, 0};
        const qg_pk_value *v = r->metas[i].v;
        int ok;
        if (v->type == QG_PK_STR)   /* plain text, not quoted */
            ok = (sb_put(&b, "%.*s", (int)v->u.str.len, v->u.str.s), !b.full);
        else
            ok = to_json(r, v, &b, 0) && !b.full;
        if (!ok) {
            size_t l = strlen(p->skipped);
            snprintf(p->skipped + l, sizeof p->skipped - l, "%s%s", l ? ", " : "",
                     r->metas[i].name);
            continue;
        }
        qg_pth_meta *m = &p->meta[p->nmeta++];
        m->key = strdup(r->metas[i].name);
        m->value = strdup(buf);
        if (!m->key || !m->value)
            return nomem(r);
    }
    return QG_OK;
}

static int cmp_tensor_name(const void *a, const void *b)
{
    return strcmp(((const qg_pth_tensor *)a)->name, ((const qg_pth_tensor *)b)->name);
}

static qg_status finish(reader *r, const qg_pk_value *root, qg_pth *p)
{
    qg_status st = split_object(r, root, p);
    if (st != QG_OK)
        return st;
    qsort(r->st, r->nst, sizeof *r->st, cmp_storage);
    /* a tensor may repeat storage elements (stride 0), but a state dict
     * never holds much more than its file: cap the total so a hostile
     * size tuple cannot ask for gigabytes */
    size_t total = 0, cap = 4 * r->len + ((size_t)16 << 20);
    for (size_t i = 0; i < r->nt; i++) {
        const qg_pk_value *v = r->tensors[i].v;
        size_t n = qg__pk_dtype_size(v->u.tensor.storage->u.storage.dtype);
        for (int d = 0; d < v->u.tensor.ndim && n <= cap; d++)
            if (__builtin_mul_overflow(n, (size_t)v->u.tensor.size[d], &n))
                n = SIZE_MAX;
        if (n > cap || (total += n) > cap)
            return ferr(r, "tensor '%s' and those before it need more than %zu bytes, far "
                        "more than the file holds", r->tensors[i].name, cap);
    }
    p->tensors = calloc(r->nt ? r->nt : 1, sizeof *p->tensors);
    if (!p->tensors)
        return nomem(r);
    for (size_t i = 0; i < r->nt; i++) {
        st = materialize(r, &r->tensors[i], &p->tensors[i]);
        p->ntensors = i + 1;
        if (st != QG_OK)
            return st;
    }
    /* a key twice (a hand-made stream) would make "which one?" ambiguous */
    qg_pth_tensor *sorted = malloc((r->nt ? r->nt : 1) * sizeof *sorted);
    if (!sorted)
        return nomem(r);
    memcpy(sorted, p->tensors, r->nt * sizeof *sorted);
    qsort(sorted, r->nt, sizeof *sorted, cmp_tensor_name);
    for (size_t i = 1; i < r->nt; i++)
        if (strcmp(sorted[i - 1].name, sorted[i].name) == 0) {
            st = ferr(r, "tensor '%s' appears twice", sorted[i].name);
            break;
        }
    free(sorted);
    return st == QG_OK ? build_meta(r, p) : st;
}

/* ---- legacy stream ---- */

static int cmp_storage_value(const void *a, const void *b)
{
    return strcmp((*(const qg_pk_value *const *)a)->u.storage.root_key,
                  (*(const qg_pk_value *const *)b)->u.storage.root_key);
}

#define LFAIL(...)                      \
    do {                                \
        st = ferr(r, __VA_ARGS__);      \
        goto fail;                      \
    } while (0)

static qg_status read_legacy(reader *r, qg_pth *p)
{
    qg_status st;
    const qg_pk_value **all = NULL;
    size_t pos = 0;
    qg_pk_value *v, *root, *keys;
    char what[600];
    snprintf(what, sizeof what, "%s (legacy torch.save stream)", r->what);
    QG_TRY(qg__pickle_load(r->pk, r->data, r->len, &pos, what, 0, &v));
    if (v->type != QG_PK_BIGINT || v->u.str.len != sizeof legacy_magic ||
        memcmp(v->u.str.s, legacy_magic, sizeof legacy_magic) != 0)
        LFAIL("not a PyTorch file: wrong magic number");
    QG_TRY(qg__pickle_load(r->pk, r->data, r->len, &pos, what, 0, &v));
    if (v->type != QG_PK_INT || v->u.i != 1001)
        LFAIL("unsupported legacy protocol version (expected 1001)");
    QG_TRY(qg__pickle_load(r->pk, r->data, r->len, &pos, what, 0, &v));
    const qg_pk_value *le = qg__pk_dict_get(v, "little_endian");
    if (!le || le->type != QG_PK_BOOL || !le->u.i)
        LFAIL("the file was written on a big-endian machine (not supported)");
    QG_TRY(qg__pickle_load(r->pk, r->data, r->len, &pos, what, 1, &root));
    QG_TRY(qg__pickle_load(r->pk, r->data, r->len, &pos, what, 0, &keys));
    if (keys->type != QG_PK_LIST)
        LFAIL("the storage key list is not a list");
    /* each storage: int64 element count, then its bytes; the element size
     * comes from the storage type the pickle gave that key */
    const qg_pk_value *const *all0;
    size_t nall = qg__pickle_storages(r->pk, &all0);
    r->st = calloc(keys->u.seq.n ? keys->u.seq.n : 1, sizeof *r->st);
    all = malloc((nall ? nall : 1) * sizeof *all);
    if (!r->st || !all) {
        st = nomem(r);
        goto fail;
    }
    if (nall) { /* all0 is NULL when the pickle names no storage */
        memcpy(all, all0, nall * sizeof *all);
        qsort(all, nall, sizeof *all, cmp_storage_value);
    }
    for (size_t i = 0; i < keys->u.seq.n; i++) {
        const qg_pk_value *k = keys->u.seq.items[i];
        if (k->type != QG_PK_STR)
            LFAIL("storage key %zu is not a string", i);
        qg_pk_value kv = {.type = QG_PK_STORAGE, .u.storage.root_key = k->u.str.s};
        const qg_pk_value *kp = &kv;
        const qg_pk_value **hit =
            nall ? bsearch(&kp, all, nall, sizeof *all, cmp_storage_value) : NULL;
        if (!hit)
            LFAIL("storage '%s' is listed but the pickle never names it", k->u.str.s);
        size_t esz = qg__pk_dtype_size((*hit)->u.storage.dtype);
        if (r->len - pos < 8)
            LFAIL("storage '%s' is cut off (truncated file: %zu bytes)", k->u.str.s, r->len);
        uint64_t n = 0;
        for (int b = 7; b >= 0; b--)
            n = n << 8 | r->data[pos + (size_t)b];
        pos += 8;
        if (n > (r->len - pos) / esz)
            LFAIL("storage '%s' needs %llu bytes, %zu remain (truncated file?)", k->u.str.s,
                  (unsigned long long)n * esz, r->len - pos);
        r->st[r->nst++] = (storage){.key = k->u.str.s, .data = r->data + pos,
                                    .bytes = (int64_t)(n * esz)};
        pos += (size_t)n * esz;
    }
    st = finish(r, root, p);
fail:
    free(all);
    return st;
}
#undef LFAIL

/* ---- zip container ---- */

static qg_status read_zip(reader *r, qg_pth *p)
{
    qg_status st = QG_OK;
    zip_error_t ze;
    zip_error_init(&ze);
    zip_source_t *src = zip_source_buffer_create(r->data, r->len, 0, &ze);
    if (!src) {
        st = ferr(r, "zip: %s", zip_error_strerror(&ze));
        zip_error_fini(&ze);
        return st;
    }
    r->za = zip_open_from_source(src, ZIP_RDONLY | ZIP_CHECKCONS, &ze);
    if (!r->za) {
        zip_source_free(src);
        st = ferr(r, "not a readable zip archive (%s; truncated file?)", zip_error_strerror(&ze));
        zip_error_fini(&ze);
        return st;
    }
    zip_error_fini(&ze);
    zip_int64_t n = zip_get_num_entries(r->za, 0);
    zip_int64_t pkl = -1;
    for (zip_int64_t i = 0; i < n; i++) {
        const char *name = zip_get_name(r->za, (zip_uint64_t)i, 0);
        const char *slash = name ? strchr(name, '/') : NULL;
        if (slash && strcmp(slash, "/data.pkl") == 0 && (size_t)(slash - name) < 200) {
            if (pkl >= 0)
                return ferr(r, "the zip holds more than one data.pkl");
            pkl = i;
            snprintf(r->prefix, sizeof r->prefix, "%.*s/", (int)(slash - name), name);
        }
    }
    if (pkl < 0)
        return ferr(r, "the zip has no <name>/data.pkl: not a torch.save file");
    /* index the storages <prefix>data/<key> */
    r->st = calloc((size_t)n, sizeof *r->st);
    if (!r->st)
        return nomem(r);
    size_t plen = strlen(r->prefix);
    for (zip_int64_t i = 0; i < n; i++) {
        const char *name = zip_get_name(r->za, (zip_uint64_t)i, 0);
        if (name && strncmp(name, r->prefix, plen) == 0 && strncmp(name + plen, "data/", 5) == 0 &&
            name[plen + 5])
            r->st[r->nst++] = (storage){.key = name + plen + 5, .zip_index = i};
    }
    zip_stat_t sb;
    if (zip_stat_index(r->za, (zip_uint64_t)pkl, 0, &sb) != 0 || sb.size > ((zip_uint64_t)256 << 20))
        return ferr(r, "data.pkl is unreadable or larger than 256 MiB");
    unsigned char *buf = malloc(sb.size ? sb.size : 1);
    if (!buf)
        return nomem(r);
    zip_file_t *zf = zip_fopen_index(r->za, (zip_uint64_t)pkl, 0);
    zip_int64_t got = zf ? zip_fread(zf, buf, sb.size) : -1;
    if (zf)
        zip_fclose(zf);
    if (got < 0 || (zip_uint64_t)got != sb.size) {
        free(buf);
        return ferr(r, "cannot read data.pkl from the zip (corrupt archive?)");
    }
    size_t pos = 0;
    qg_pk_value *root;
    char what[600];
    snprintf(what, sizeof what, "%s (%sdata.pkl)", r->what, r->prefix);
    st = qg__pickle_load(r->pk, buf, (size_t)sb.size, &pos, what, 1, &root);
    /* the values copy every string they keep, so the bytes can go */
    free(buf);
    if (st != QG_OK)
        return st;
    return finish(r, root, p);
}

void qg__pth_free(qg_pth *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->ntensors; i++) {
        free(p->tensors[i].name);
        free(p->tensors[i].data);
    }
    for (size_t i = 0; i < p->nmeta; i++) {
        free(p->meta[i].key);
        free(p->meta[i].value);
    }
    free(p->tensors);
    free(p->meta);
    free(p);
}

qg_status qg__pth_read_mem(const unsigned char *data, size_t len, const char *what,
                           qg_pth **out)
{
    qg_status st;
    *out = NULL;
    reader r = {.what = what, .data = data, .len = len};
    qg_pth *p = calloc(1, sizeof *p);
    r.pk = qg__pickle_new(NULL);
    if (!p || !r.pk) {
        st = nomem(&r);
        goto done;
    }
    if (len >= 4 && data[0] == 'P' && data[1] == 'K') {
        p->format = QG_PTH_ZIP;
        st = read_zip(&r, p);
    } else if (len >= 2 && data[0] == 0x80) {
        p->format = QG_PTH_LEGACY;
        st = read_legacy(&r, p);
    } else if (len > 262 && memcmp(data + 257, "ustar", 5) == 0) {
        st = ferr(&r, "a tar-format checkpoint (torch < 0.4) is not supported; load and "
                  "re-save it with a newer torch");
    } else {
        st = ferr(&r, "not a PyTorch checkpoint (neither a zip archive nor a pickle stream)");
    }
done:
    for (size_t i = 0; i < r.nst; i++)
        free(r.st[i].owned);
    free(r.st);
    for (size_t i = 0; i < r.nnames; i++)
        free(r.names[i]);
    free(r.names);
    free(r.tensors);
    free(r.metas);
    if (r.za)
        zip_discard(r.za);
    qg__pickle_free(r.pk);
    if (st != QG_OK) {
        qg__pth_free(p);
        return st;
    }
    *out = p;
    return QG_OK;
}

qg_status qg__pth_read(const char *path, qg_pth **out)
{
    unsigned char *data;
    size_t len;
    *out = NULL;
    qg_status st = qg__file_read(NULL, path, &data, &len);
    if (st != QG_OK)
        return st;
    st = qg__pth_read_mem(data, len, path, out);
    free(data);
    return st;
}

static float half_to_f32(uint16_t h)
{
    uint32_t s = (uint32_t)(h >> 15) << 31, e = (h >> 10) & 0x1f, m = h & 0x3ff, bits;
    if (e == 0) {
        if (m == 0) {
            bits = s;
        } else { /* subnormal: renormalise */
            int sh = 0;
            while (!(m & 0x400)) {
                m <<= 1;
                sh++;
            }
            bits = s | (uint32_t)(127 - 15 - sh + 1) << 23 | (m & 0x3ff) << 13;
        }
    } else if (e == 31) {
        bits = s | 0x7f800000u | m << 13;
    } else {
        bits = s | (e + 127 - 15) << 23 | m << 13;
    }
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

void qg__pth_to_f32(const qg_pth_tensor *t, float *out)
{
    const unsigned char *d = t->data;
    for (size_t i = 0; i < t->numel; i++) {
        switch (t->dtype) {
        case QG_PKD_F32: memcpy(&out[i], d + 4 * i, 4); break;
        case QG_PKD_F64: { double x; memcpy(&x, d + 8 * i, 8); out[i] = (float)x; break; }
        case QG_PKD_F16: { uint16_t h; memcpy(&h, d + 2 * i, 2); out[i] = half_to_f32(h); break; }
        case QG_PKD_BF16: {
            uint16_t h;
            memcpy(&h, d + 2 * i, 2);
            uint32_t bits = (uint32_t)h << 16;
            memcpy(&out[i], &bits, 4);
            break;
        }
        case QG_PKD_I64: { int64_t x; memcpy(&x, d + 8 * i, 8); out[i] = (float)x; break; }
        case QG_PKD_I32: { int32_t x; memcpy(&x, d + 4 * i, 4); out[i] = (float)x; break; }
        case QG_PKD_I16: { int16_t x; memcpy(&x, d + 2 * i, 2); out[i] = (float)x; break; }
        case QG_PKD_I8: out[i] = (float)(int8_t)d[i]; break;
        case QG_PKD_U8: case QG_PKD_BOOL: out[i] = (float)d[i]; break;
        }
    }
}

const qg_pth_meta *qg__pth_meta_get(const qg_pth *p, const char *key)
{
    for (size_t i = 0; i < p->nmeta; i++)
        if (strcmp(p->meta[i].key, key) == 0)
            return &p->meta[i];
    return NULL;
}
