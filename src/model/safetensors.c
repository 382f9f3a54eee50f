/* src/model/safetensors.c: reading and writing safetensors files.
 *
 * Layout (huggingface safetensors format): u64 little-endian N, then N
 * bytes of UTF-8 JSON, padded with spaces so the data starts 8-aligned,
 * then the byte buffer. The header maps each tensor name to {"dtype",
 * "shape", "data_offsets": [begin, end]} (offsets relative to the buffer)
 * plus an optional "__metadata__" object of string values. The buffer
 * must be covered exactly: no overlaps, no holes, nothing after the last
 * tensor. We write "__metadata__" first and the tensors contiguously in
 * the caller's order, compact JSON, through temp file + fsync + rename.
 * Twins: train/checkpoint.c (model <-> file), tests/test_safetensors.c,
 * tests/tools/check_safetensors_torch.py (the same parse in Python). */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <jansson.h>

#include "core/error.h"
#include "core/fileio.h"
#include "model/safetensors.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
               "safetensors data is little-endian; this code copies host bytes as they are");

/* Headers above this are refused as corrupt (the reference reader's limit). */
#define MAX_HEADER (100u << 20)

struct qg_st_file {
    unsigned char *buf;       /* the data area (after the header) */
    size_t n;
    qg_st_tensor *tensors;    /* sorted by data offset */
    void **copies;            /* aligned copies of misaligned tensors, else NULL */
    size_t nmeta;
    qg_st_meta *meta;
};

static const struct {
    const char *name;
    qg_dtype dt;
} dtypes[] = {{"F32", QG_DTYPE_F32}, {"I32", QG_DTYPE_I32}, {"U8", QG_DTYPE_U8},
              {"F16", QG_DTYPE_F16}};

/* Valid in the format but with no qg_dtype. */
static const char *const foreign_dtypes[] = {"BOOL", "I8", "I16", "U16", "U32", "I64", "U64",
                                             "F64", "BF16", "F8_E4M3", "F8_E5M2"};

static const char *dtype_str(qg_dtype dt)
{
    for (size_t i = 0; i < sizeof dtypes / sizeof *dtypes; i++)
        if (dtypes[i].dt == dt)
            return dtypes[i].name;
    return NULL;
}

/* numel * elem_size, or 0 with *ovf set on overflow. */
static uint64_t nbytes_of(int ndim, const int64_t *shape, size_t elem, int *ovf)
{
    uint64_t n = elem;
    *ovf = 0;
    for (int d = 0; d < ndim; d++) {
        uint64_t s = (uint64_t)shape[d];
        if (s && n > UINT64_MAX / s) {
            *ovf = 1;
            return 0;
        }
        n *= s;
    }
    return n;
}

static qg_status build_header(const char *path, const qg_st_tensor *t, size_t n,
                              const qg_st_meta *meta, size_t nmeta, char **out)
{
    qg_status st = QG_OK;
    json_t *root = json_object(), *jm = NULL;
    *out = NULL;
    if (!root)
        return qg__error(NULL, QG_ERR_NOMEM, "out of memory writing '%s'", path);
    if (nmeta) {
        jm = json_object();
        if (!jm || json_object_set_new(root, "__metadata__", jm) != 0)
            goto nomem;
        for (size_t i = 0; i < nmeta; i++) {
            if (!meta[i].key || !meta[i].value) {
                st = qg__error(NULL, QG_ERR_INVALID_ARG, "writing '%s': metadata entry %zu has "
                               "a NULL key or value", path, i);
                goto fail;
            }
            if (json_object_get(jm, meta[i].key)) {
                st = qg__error(NULL, QG_ERR_INVALID_ARG, "writing '%s': metadata key '%s' "
                               "given twice", path, meta[i].key);
                goto fail;
            }
            json_t *v = json_string(meta[i].value);
            if (!v || json_object_set_new(jm, meta[i].key, v) != 0) {
                st = qg__error(NULL, QG_ERR_INVALID_ARG, "writing '%s': metadata '%s' is not "
                               "valid UTF-8", path, meta[i].key);
                goto fail;
            }
        }
    }
    uint64_t off = 0;
    for (size_t i = 0; i < n; i++) {
        const char *dt = dtype_str(t[i].dtype);
        if (!t[i].name || !dt || t[i].ndim < 0 || t[i].ndim > QG_MAX_DIMS) {
            st = qg__error(NULL, QG_ERR_INVALID_ARG, "writing '%s': tensor %zu ('%s') has no "
                           "name, an unknown dtype or %d dimensions", path, i,
                           t[i].name ? t[i].name : "(null)", t[i].ndim);
            goto fail;
        }
        int reserved = strcmp(t[i].name, "__metadata__") == 0;
        if (reserved || json_object_get(root, t[i].name)) {
            st = qg__error(NULL, QG_ERR_INVALID_ARG, "writing '%s': tensor name '%s' is %s",
                           path, t[i].name, reserved ? "reserved" : "used twice");
            goto fail;
        }
        json_t *shape = json_array();
        json_t *e = json_object();
        if (!shape || !e) {
            json_decref(shape);
            json_decref(e);
            goto nomem;
        }
        for (int d = 0; d < t[i].ndim; d++) {
            if (t[i].shape[d] < 0) {
                json_decref(shape);
                json_decref(e);
                st = qg__error(NULL, QG_ERR_INVALID_ARG, "writing '%s': tensor '%s' has "
                               "negative dimension %lld", path, t[i].name,
                               (long long)t[i].shape[d]);
                goto fail;
            }
            json_array_append_new(shape, json_integer((json_int_t)t[i].shape[d]));
        }
        int ovf;
        uint64_t bytes = nbytes_of(t[i].ndim, t[i].shape, qg_dtype_size(t[i].dtype), &ovf);
        if (ovf || (bytes && !t[i].data) || off + bytes < off) {
            json_decref(shape);
            json_decref(e);
            st = qg__error(NULL, QG_ERR_INVALID_ARG, "writing '%s': tensor '%s' is too large "
                           "or has no data", path, t[i].name);
            goto fail;
        }
        json_t *offs = json_pack("[II]", (json_int_t)off, (json_int_t)(off + bytes));
        json_object_set_new(e, "dtype", json_string(dt));
        json_object_set_new(e, "shape", shape);
        json_object_set_new(e, "data_offsets", offs);
        if (!offs || json_object_size(e) != 3) {
            json_decref(e);
            goto nomem;
        }
        if (json_object_set_new(root, t[i].name, e) != 0) {
            st = qg__error(NULL, QG_ERR_INVALID_ARG, "writing '%s': tensor name '%s' is not "
                           "valid UTF-8", path, t[i].name);
            goto fail;
        }
        off += bytes;
    }
    *out = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!*out)
        goto nomem;
    json_decref(root);
    return QG_OK;
nomem:
    st = qg__error(NULL, QG_ERR_NOMEM, "out of memory writing '%s'", path);
fail:
    json_decref(root);
    return st;
}

qg_status qg__safetensors_write(const char *path, const qg_st_tensor *tensors, size_t n,
                                const qg_st_meta *meta, size_t nmeta)
{
    char *json = NULL;
    qg_status st = build_header(path, tensors, n, meta, nmeta, &json);
    if (st != QG_OK)
        return st;
    size_t jlen = strlen(json), hlen = (jlen + 7) / 8 * 8;
    unsigned char *head = malloc(8 + hlen);
    if (!head) {
        free(json);
        return qg__error(NULL, QG_ERR_NOMEM, "out of memory writing '%s'", path);
    }
    for (int i = 0; i < 8; i++)
        head[i] = (unsigned char)((uint64_t)hlen >> (8 * i));
    memcpy(head + 8, json, jlen);
    memset(head + 8 + jlen, ' ', hlen - jlen);
    free(json);

    qg_atomic_file af;
    st = qg__atomic_open(NULL, path, &af);
    if (st == QG_OK)
        st = qg__atomic_write(NULL, &af, head, 8 + hlen);
    for (size_t i = 0; i < n && st == QG_OK; i++) {
        int ovf;
        size_t bytes = (size_t)nbytes_of(tensors[i].ndim, tensors[i].shape,
                                         qg_dtype_size(tensors[i].dtype), &ovf);
        if (bytes)
            st = qg__atomic_write(NULL, &af, tensors[i].data, bytes);
    }
    free(head);
    if (st != QG_OK) {
        if (af.fd >= 0)
            qg__atomic_abort(&af);
        qg__error_append(NULL, "saving '%s' (the previous file, if any, is unchanged)", path);
        return st;
    }
    st = qg__atomic_commit(NULL, &af);
    if (st != QG_OK)
        qg__error_append(NULL, "saving '%s'", path);
    return st;
}

void qg__safetensors_free(qg_st_file *f)
{
    if (!f)
        return;
    for (size_t i = 0; f->tensors && i < f->n; i++) {
        free((char *)f->tensors[i].name);
        if (f->copies)
            free(f->copies[i]);
    }
    for (size_t i = 0; f->meta && i < f->nmeta; i++) {
        free((char *)f->meta[i].key);
        free((char *)f->meta[i].value);
    }
    free(f->tensors);
    free(f->copies);
    free(f->meta);
    free(f->buf);
    free(f);
}

/* A JSON integer that is not negative (offsets and dims). */
static int get_u64(json_t *v, uint64_t *out)
{
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return 0;
    *out = (uint64_t)json_integer_value(v);
    return 1;
}

typedef struct span {
    uint64_t begin, end;
} span;

static qg_status parse_tensor(const char *path, const char *name, json_t *e, qg_st_tensor *t,
                              span *sp)
{
#define BAD(...) return qg__error(NULL, QG_ERR_FORMAT, __VA_ARGS__)
    if (!json_is_object(e))
        BAD("'%s': header entry '%s' is not an object", path, name);
    json_t *jd = json_object_get(e, "dtype"), *js = json_object_get(e, "shape"),
           *jo = json_object_get(e, "data_offsets");
    if (!json_is_string(jd) || !json_is_array(js) || !json_is_array(jo))
        BAD("'%s': tensor '%s' needs a string \"dtype\" and arrays \"shape\" and "
            "\"data_offsets\"", path, name);
    const char *ds = json_string_value(jd);
    int known = 0;
    for (size_t i = 0; i < sizeof dtypes / sizeof *dtypes; i++)
        if (strcmp(ds, dtypes[i].name) == 0) {
            t->dtype = dtypes[i].dt;
            known = 1;
        }
    if (!known) {
        for (size_t i = 0; i < sizeof foreign_dtypes / sizeof *foreign_dtypes; i++)
            if (strcmp(ds, foreign_dtypes[i]) == 0)
                return qg__error(NULL, QG_ERR_UNSUPPORTED, "'%s': tensor '%s' has dtype %s, "
                                 "which qgate does not load (F32, I32, U8, F16)", path, name,
                                 ds);
        BAD("'%s': tensor '%s' has unknown dtype \"%s\"", path, name, ds);
    }
    size_t nd = json_array_size(js);
    if (nd > QG_MAX_DIMS)
        return qg__error(NULL, QG_ERR_UNSUPPORTED, "'%s': tensor '%s' has %zu dimensions; "
                         "qgate handles at most %d", path, name, nd, QG_MAX_DIMS);
    t->ndim = (int)nd;
    for (size_t d = 0; d < nd; d++) {
        uint64_t v;
        if (!get_u64(json_array_get(js, d), &v) || v > INT64_MAX)
            BAD("'%s': tensor '%s': shape[%zu] is not a non-negative integer", path, name, d);
        t->shape[d] = (int64_t)v;
    }
    if (json_array_size(jo) != 2 || !get_u64(json_array_get(jo, 0), &sp->begin) ||
        !get_u64(json_array_get(jo, 1), &sp->end) || sp->end < sp->begin)
        BAD("'%s': tensor '%s': data_offsets must be [begin, end] with 0 <= begin <= end",
            path, name);
    int ovf;
    uint64_t bytes = nbytes_of(t->ndim, t->shape, qg_dtype_size(t->dtype), &ovf);
    if (ovf || bytes != sp->end - sp->begin)
        BAD("'%s': tensor '%s': %s shape needs %llu bytes but data_offsets [%llu, %llu] span "
            "%llu", path, name, ds, ovf ? 0ULL : (unsigned long long)bytes,
            (unsigned long long)sp->begin, (unsigned long long)sp->end,
            (unsigned long long)(sp->end - sp->begin));
    return QG_OK;
#undef BAD
}

static qg_status parse_meta(const char *path, json_t *jm, qg_st_file *f)
{
    if (!json_is_object(jm))
        return qg__error(NULL, QG_ERR_FORMAT, "'%s': \"__metadata__\" is not an object", path);
    f->meta = calloc(json_object_size(jm) + 1, sizeof *f->meta);
    if (!f->meta)
        return qg__error(NULL, QG_ERR_NOMEM, "out of memory reading '%s'", path);
    const char *k;
    json_t *v;
    json_object_foreach(jm, k, v) {
        if (!json_is_string(v))
            return qg__error(NULL, QG_ERR_FORMAT, "'%s': metadata '%s' is not a string", path,
                             k);
        qg_st_meta *m = &f->meta[f->nmeta++];
        m->key = strdup(k);
        m->value = strdup(json_string_value(v));
        if (!m->key || !m->value)
            return qg__error(NULL, QG_ERR_NOMEM, "out of memory reading '%s'", path);
    }
    return QG_OK;
}

/* A tensor's span with its position in the header, for sorting. */
typedef struct placed {
    uint64_t begin, end;
    size_t idx;
} placed;

static int cmp_placed(const void *a, const void *b)
{
    const placed *x = a, *y = b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end)
        return x->end < y->end ? -1 : 1;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* Which tensor a layout error is about. Writers (ours, the reference
 * one) store the tensors back to back in header order, so one tensor with
 * wrong data_offsets disagrees with both its header neighbours while each
 * neighbour disagrees on one side only. When exactly one tensor disagrees
 * on both sides it is the one to name; otherwise (ambiguous, or a foreign
 * header order) the tensor where the sorted scan stopped. */
static size_t misplaced_tensor(const span *spans, size_t n, uint64_t data_len, size_t fallback)
{
    size_t found = fallback, count = 0;
    for (size_t i = 0; i < n; i++) {
        int bad = (spans[i].begin != (i ? spans[i - 1].end : 0)) +
                  (spans[i].end != (i + 1 < n ? spans[i + 1].begin : data_len));
        if (bad == 2) {
            found = i;
            count++;
        }
    }
    return count == 1 ? found : fallback;
}

/* The bytes of a safetensors file: an open regular file (fd, read with
 * pread) or a caller's buffer. */
typedef struct st_src {
    const char *path;
    int fd;
    const unsigned char *mem;
    uint64_t size;
} st_src;

/* Exactly len bytes at off (off + len <= size was checked by the caller);
 * a file that shrank since fstat is a format error. */
static qg_status src_read(const st_src *s, uint64_t off, void *buf, size_t len)
{
    if (s->mem) {
        memcpy(buf, s->mem + off, len);
        return QG_OK;
    }
    size_t got;
    qg_status st = qg__file_read_at(NULL, s->fd, s->path, off, buf, len, &got);
    if (st == QG_OK && got < len)
        st = qg__error(NULL, QG_ERR_FORMAT, "'%s' shrank while being read: it ends at byte "
                       "offset %llu", s->path, (unsigned long long)(off + got));
    return st;
}

/* Parses and checks everything before any tensor data is read: the
 * length prefix and header against the file size, then every span
 * against the data area the file size leaves. Only then is the data
 * area, exactly as large as the header implies, read. */
static qg_status read_source(const st_src *src, qg_st_file **out)
{
    const char *path = src->path;
    qg_status st = QG_OK;
    qg_st_file *f = calloc(1, sizeof *f);
    json_t *root = NULL;
    qg_st_tensor *tmp = NULL;
    span *spans = NULL;
    placed *order = NULL;
    char *hdr = NULL;
    uint64_t len = src->size;
    *out = NULL;
    if (!f)
        return qg__error(NULL, QG_ERR_NOMEM, "out of memory reading '%s'", path);
    if (len < 8) {
        st = qg__error(NULL, QG_ERR_FORMAT, "'%s' is not a safetensors file: %llu bytes, too "
                       "short for the 8-byte header length", path, (unsigned long long)len);
        goto fail;
    }
    unsigned char lenbytes[8];
    QG_TRY(src_read(src, 0, lenbytes, 8));
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = hlen << 8 | lenbytes[i];
    if (hlen > len - 8 || hlen > MAX_HEADER || hlen < 2) {
        st = qg__error(NULL, QG_ERR_FORMAT, "'%s': header length %llu (bytes 0-7) %s", path,
                       (unsigned long long)hlen,
                       hlen > len - 8 ? "runs past the end of the file (truncated or corrupt)"
                       : hlen < 2     ? "is too small for a JSON object"
                                      : "exceeds the 100 MiB limit (corrupt header)");
        if (hlen > len - 8)
            qg__error_append(NULL, "the file has %llu bytes", (unsigned long long)len);
        goto fail;
    }
    hdr = malloc((size_t)hlen);
    if (!hdr) {
        st = qg__error(NULL, QG_ERR_NOMEM, "out of memory reading '%s'", path);
        goto fail;
    }
    QG_TRY(src_read(src, 8, hdr, (size_t)hlen));
    if (hdr[0] != '{') {
        st = qg__error(NULL, QG_ERR_FORMAT, "'%s': the header at byte offset 8 does not start "
                       "with '{'", path);
        goto fail;
    }
    json_error_t jerr;
    root = json_loadb(hdr, (size_t)hlen, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        st = qg__error(NULL, QG_ERR_FORMAT, "'%s': header JSON is invalid near file offset %llu: "
                       "%s", path, 8ULL + (unsigned long long)jerr.position, jerr.text);
        goto fail;
    }
    if (!json_is_object(root)) {
        st = qg__error(NULL, QG_ERR_FORMAT, "'%s': the header is not a JSON object", path);
        goto fail;
    }
    size_t nent = json_object_size(root);
    tmp = calloc(nent + 1, sizeof *tmp);
    spans = calloc(nent + 1, sizeof *spans);
    order = calloc(nent + 1, sizeof *order);
    if (!tmp || !spans || !order) {
        st = qg__error(NULL, QG_ERR_NOMEM, "out of memory reading '%s'", path);
        goto fail;
    }
    size_t n = 0;
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val) {
        if (strcmp(key, "__metadata__") == 0) {
            QG_TRY(parse_meta(path, val, f));
            continue;
        }
        QG_TRY(parse_tensor(path, key, val, &tmp[n], &spans[n]));
        tmp[n].name = key;
        order[n] = (placed){spans[n].begin, spans[n].end, n};
        n++;
    }
    uint64_t data_len = len - 8 - hlen;
    qsort(order, n, sizeof *order, cmp_placed);
    uint64_t at = 0;
    for (size_t k = 0; k < n; k++) {
        const placed *s = &order[k];
        const char *nm = tmp[s->idx].name;
        if (s->end > data_len) {
            st = qg__error(NULL, QG_ERR_FORMAT, "'%s': tensor '%s' data_offsets [%llu, %llu] "
                           "lie outside the %llu-byte data area (truncated or corrupt file)",
                           path, nm, (unsigned long long)s->begin, (unsigned long long)s->end,
                           (unsigned long long)data_len);
            goto fail;
        }
        if (s->begin != at) {
            size_t bad = misplaced_tensor(spans, n, data_len, s->idx);
            if (bad != s->idx) {
                /* Name the tensor it collides with, if any. */
                const span *b = &spans[bad];
                size_t other = n;
                for (size_t j = 0; j < n && other == n; j++)
                    if (j != bad && spans[j].begin < b->end && b->begin < spans[j].end)
                        other = j;
                if (other < n)
                    st = qg__error(NULL, QG_ERR_FORMAT, "'%s': tensor '%s' data_offsets "
                                   "[%llu, %llu] overlap tensor '%s' [%llu, %llu]", path,
                                   tmp[bad].name, (unsigned long long)b->begin,
                                   (unsigned long long)b->end, tmp[other].name,
                                   (unsigned long long)spans[other].begin,
                                   (unsigned long long)spans[other].end);
                else
                    st = qg__error(NULL, QG_ERR_FORMAT, "'%s': tensor '%s' data_offsets "
                                   "[%llu, %llu] are out of place: the tensor before it in "
                                   "the header ends at %llu", path, tmp[bad].name,
                                   (unsigned long long)b->begin, (unsigned long long)b->end,
                                   bad ? (unsigned long long)spans[bad - 1].end : 0ULL);
                goto fail;
            }
            st = qg__error(NULL, QG_ERR_FORMAT, "'%s': tensor '%s' data_offsets [%llu, %llu] "
                           "%s the previous tensor's end at %llu", path, nm,
                           (unsigned long long)s->begin, (unsigned long long)s->end,
                           s->begin < at ? "overlap" : "leave a hole after",
                           (unsigned long long)at);
            goto fail;
        }
        at = s->end;
    }
    if (at != data_len) {
        st = qg__error(NULL, QG_ERR_FORMAT, "'%s': the tensors cover %llu bytes of the %llu-"
                       "byte data area (extra data at file offset %llu)", path,
                       (unsigned long long)at, (unsigned long long)data_len,
                       (unsigned long long)(8 + hlen + at));
        goto fail;
    }

    /* The header accounts for every byte of the file: read the data. */
    if (data_len >= SIZE_MAX) {
        st = qg__error(NULL, QG_ERR_NOMEM, "'%s': %llu bytes of tensor data do not fit in "
                       "memory", path, (unsigned long long)data_len);
        goto fail;
    }
    f->buf = malloc(data_len ? (size_t)data_len : 1);
    f->tensors = calloc(n + 1, sizeof *f->tensors);
    f->copies = calloc(n + 1, sizeof *f->copies);
    if (!f->buf || !f->tensors || !f->copies) {
        st = qg__error(NULL, QG_ERR_NOMEM, "out of memory reading '%s' (%llu bytes of tensor "
                       "data)", path, (unsigned long long)data_len);
        goto fail;
    }
    QG_TRY(src_read(src, 8 + hlen, f->buf, (size_t)data_len));
    for (size_t k = 0; k < n; k++, f->n++) {
        qg_st_tensor *t = &f->tensors[k];
        size_t i = order[k].idx;
        *t = tmp[i];
        t->name = strdup(t->name);
        const unsigned char *p = f->buf + spans[i].begin;
        size_t bytes = (size_t)(spans[i].end - spans[i].begin);
        /* Foreign writers may leave a tensor misaligned for its type. */
        if (!bytes)
            p = f->buf; /* any aligned pointer will do */
        else if ((uintptr_t)p % qg_dtype_size(t->dtype)) {
            f->copies[k] = malloc(bytes);
            if (f->copies[k])
                memcpy(f->copies[k], p, bytes);
            p = f->copies[k];
        }
        t->data = p;
        if (!t->name || !p) {
            f->n++;
            st = qg__error(NULL, QG_ERR_NOMEM, "out of memory reading '%s'", path);
            goto fail;
        }
    }
    *out = f;
    f = NULL;
fail:
    json_decref(root);
    free(hdr);
    free(tmp);
    free(spans);
    free(order);
    qg__safetensors_free(f);
    return st;
}

qg_status qg__safetensors_read(const char *path, qg_st_file **out)
{
    st_src src = {.path = path, .fd = -1};
    *out = NULL;
    qg_status st = qg__file_open_regular(NULL, path, &src.fd, &src.size);
    if (st != QG_OK)
        return st;
    st = read_source(&src, out);
    close(src.fd);
    return st;
}

qg_status qg__safetensors_read_memory(const char *name, const void *data, size_t len,
                                      qg_st_file **out)
{
    static const unsigned char empty[1];
    st_src src = {.path = name, .fd = -1, .mem = data ? data : empty, .size = len};
    return read_source(&src, out);
}

size_t qg__safetensors_count(const qg_st_file *f)
{
    return f->n;
}

const qg_st_tensor *qg__safetensors_get(const qg_st_file *f, const char *name)
{
    for (size_t i = 0; i < f->n; i++)
        if (strcmp(f->tensors[i].name, name) == 0)
            return &f->tensors[i];
    return NULL;
}

const qg_st_tensor *qg__safetensors_at(const qg_st_file *f, size_t i)
{
    return i < f->n ? &f->tensors[i] : NULL;
}

const qg_st_meta *qg__safetensors_meta_all(const qg_st_file *f, size_t *n)
{
    *n = f->nmeta;
    return f->meta;
}

const char *qg__safetensors_meta(const qg_st_file *f, const char *key)
{
    for (size_t i = 0; i < f->nmeta; i++)
        if (strcmp(f->meta[i].key, key) == 0)
            return f->meta[i].value;
    return NULL;
}
