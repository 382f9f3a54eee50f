/* src/data/idx.c: IDX image/label files (MNIST, Fashion-MNIST), raw or
 * gzip-compressed (recognised by the 1f 8b magic, inflated here with
 * zlib; concatenated gzip members are one stream). The file must hold
 * exactly the bytes its header announces; every error names the file and
 * the byte offset (in the decompressed stream for .gz files, with the
 * compressed offset where zlib found corrupt data). Files are read from
 * disk or, for fuzzing, from memory through the same code. Nothing is
 * allocated beyond what the input can hold: a raw file's size, or for
 * gzip the most that deflate can expand the compressed bytes to.
 * Twins: dataset.c (the struct), tests/test_data.c, tests/fuzz/fuzz_idx.c. */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "core/error.h"
#include "core/fileio.h"
#include "data/dataset.h"

#define IDX_IMAGES 0x00000803u /* unsigned bytes, 3 dimensions */
#define IDX_LABELS 0x00000801u /* unsigned bytes, 1 dimension */
#define IDX_CLASSES 10
#define IN_CHUNK (1u << 16)
/* deflate expands at most about 1032:1 (258-byte matches coded in about
 * 2 bits); the margin covers headers and tiny inputs. */
#define MAX_INFLATE_RATIO 1032u
#define INFLATE_SLACK 4096u

/* A raw or gzip input read sequentially; `pos` counts decompressed
 * bytes delivered, `in_pos` input bytes fetched from the source. */
typedef struct idx_file {
    const char *path;
    FILE *f;                      /* a file, or */
    const unsigned char *mem;     /* bytes in memory */
    size_t mem_len, mem_pos;
    long long size;               /* input bytes when known (regular file, memory), else -1 */
    int gz;
    z_stream zs;
    int zinit, member_end;
    unsigned char *in;            /* compressed input buffer */
    unsigned long long in_pos;
    size_t pos;
    int gz_cut;                   /* the input ended inside a gzip member */
} idx_file;

/* Up to cap raw input bytes. */
static qg_status src_fetch(idx_file *x, unsigned char *buf, size_t cap, size_t *got)
{
    if (x->mem) {
        size_t k = x->mem_len - x->mem_pos < cap ? x->mem_len - x->mem_pos : cap;
        memcpy(buf, x->mem + x->mem_pos, k);
        x->mem_pos += k;
        *got = k;
    } else {
        *got = fread(buf, 1, cap, x->f);
        if (*got < cap && ferror(x->f))
            return qg__error(NULL, QG_ERR_IO, "read error on '%s' at byte offset %llu: %s",
                             x->path, x->in_pos + *got, strerror(errno));
    }
    x->in_pos += *got;
    return QG_OK;
}

static qg_status start(idx_file *x)
{
    unsigned char m[2];
    size_t got;
    qg_status st = src_fetch(x, m, 2, &got);
    if (st != QG_OK)
        return st;
    if (got == 2 && m[0] == 0x1f && m[1] == 0x8b) {
        x->gz = 1;
        x->in = malloc(IN_CHUNK);
        if (!x->in || inflateInit2(&x->zs, 16 + MAX_WBITS) != Z_OK)
            return qg__error(NULL, QG_ERR_NOMEM, "out of memory reading '%s'", x->path);
        x->zinit = 1;
        memcpy(x->in, m, 2);
        x->zs.next_in = x->in;
        x->zs.avail_in = 2;
        return QG_OK;
    }
    /* Raw: start again from byte 0. */
    if (x->mem)
        x->mem_pos = 0;
    else
        rewind(x->f);
    x->in_pos = 0;
    return QG_OK;
}

static qg_status idx_open(idx_file *x, const char *path)
{
    memset(x, 0, sizeof *x);
    x->path = path;
    x->size = -1;
    x->f = fopen(path, "rb");
    if (!x->f)
        return qg__error(NULL, QG_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(x->f), &sb) == 0) {
        if (S_ISDIR(sb.st_mode))
            return qg__error(NULL, QG_ERR_IO, "'%s' is a directory, not an IDX file", path);
        /* Pipes and the like have no size to check against. */
        if (S_ISREG(sb.st_mode))
            x->size = (long long)sb.st_size;
    }
    return start(x);
}

static qg_status idx_open_memory(idx_file *x, const char *name, const void *data, size_t len)
{
    static const unsigned char empty[1];
    memset(x, 0, sizeof *x);
    x->path = name;
    x->mem = data ? data : empty;
    x->mem_len = len;
    x->size = (long long)len;
    return start(x);
}

static void idx_close(idx_file *x)
{
    if (x->f)
        fclose(x->f);
    if (x->zinit)
        inflateEnd(&x->zs);
    free(x->in);
    x->f = NULL;
    x->in = NULL;
    x->zinit = 0;
}

/* Most decompressed bytes the input can hold (SIZE_MAX when unknown). */
static size_t max_content(const idx_file *x)
{
    if (x->size < 0)
        return SIZE_MAX;
    unsigned long long s = (unsigned long long)x->size;
    if (!x->gz)
        return (size_t)s;
    if (s > (SIZE_MAX - INFLATE_SLACK) / MAX_INFLATE_RATIO)
        return SIZE_MAX;
    return (size_t)(s * MAX_INFLATE_RATIO + INFLATE_SLACK);
}

/* Inflates into p[0..n); *got is what arrived before the end of the
 * input. A stream cut short sets gz_cut (the caller words it); corrupt
 * data is an error naming both offsets. */
static qg_status gz_read(idx_file *x, unsigned char *p, size_t n, size_t *got)
{
    z_stream *zs = &x->zs;
    while (*got < n) {
        if (zs->avail_in == 0) {
            size_t k;
            qg_status st = src_fetch(x, x->in, IN_CHUNK, &k);
            if (st != QG_OK)
                return st;
            zs->next_in = x->in;
            zs->avail_in = (uInt)k;
            if (k == 0) {
                if (!x->member_end)
                    x->gz_cut = 1;
                break;
            }
        }
        if (x->member_end) {
            /* Another gzip member may follow; anything else is not ours. */
            unsigned long long at = x->in_pos - zs->avail_in;
            if (zs->next_in[0] != 0x1f)
                return qg__error(NULL, QG_ERR_FORMAT, "file '%s': unexpected data after the "
                                 "end of the gzip stream at compressed byte offset %llu",
                                 x->path, at);
            if (inflateReset(zs) != Z_OK)
                return qg__error(NULL, QG_ERR_FORMAT, "file '%s': zlib cannot restart at "
                                 "compressed byte offset %llu", x->path, at);
            x->member_end = 0;
        }
        size_t want = n - *got;
        zs->next_out = p + *got;
        zs->avail_out = want > UINT_MAX ? UINT_MAX : (uInt)want;
        uInt before = zs->avail_out;
        int r = inflate(zs, Z_NO_FLUSH);
        *got += before - zs->avail_out;
        if (r == Z_STREAM_END) {
            x->member_end = 1;
            continue;
        }
        if (r == Z_OK || r == Z_BUF_ERROR)
            continue;
        /* zlib stops right after the bytes it could not use. */
        unsigned long long at = x->in_pos - zs->avail_in;
        return qg__error(NULL, r == Z_MEM_ERROR ? QG_ERR_NOMEM : QG_ERR_FORMAT,
                         "file '%s': gzip data corrupt at compressed byte offset %llu "
                         "(decompressed byte offset %zu): %s", x->path, at, x->pos + *got,
                         zs->msg ? zs->msg : "zlib error");
    }
    return QG_OK;
}

/* Reads up to n bytes; *got is what arrived before EOF. A short read is
 * not an error here (the caller words the truncation); a corrupt gzip
 * stream or an I/O error is. */
static qg_status idx_read(idx_file *x, void *buf, size_t n, size_t *got)
{
    *got = 0;
    qg_status st = QG_OK;
    if (x->gz)
        st = gz_read(x, buf, n, got);
    else {
        unsigned char *p = buf;
        while (*got < n && st == QG_OK) {
            size_t k;
            st = src_fetch(x, p + *got, n - *got, &k);
            *got += k;
            if (k == 0)
                break;
        }
    }
    x->pos += *got;
    return st;
}

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static qg_status truncated(const idx_file *x, size_t expected, const char *what)
{
    return qg__error(NULL, QG_ERR_FORMAT, "file '%s' truncated at byte offset %zu: expected "
                     "%zu bytes of %s%s", x->path, x->pos, expected, what,
                     x->gz ? " (offset in the decompressed data)" : "");
}

/* Reads the magic and dims; *dims gets ndim values. */
static qg_status read_header(idx_file *x, uint32_t magic, int ndim, uint32_t *dims)
{
    unsigned char h[16];
    size_t hlen = 4 + 4 * (size_t)ndim, got;
    qg_status st = idx_read(x, h, hlen, &got);
    if (st != QG_OK)
        return st;
    if (got >= 4 && be32(h) != magic) {
        uint32_t m = be32(h);
        const char *hint = m == IDX_IMAGES ? " (this is an IDX image file)"
                           : m == IDX_LABELS ? " (this is an IDX label file)" : "";
        return qg__error(NULL, QG_ERR_FORMAT, "file '%s' is not an IDX %s file: magic "
                         "0x%08x at byte offset 0, expected 0x%08x%s", x->path,
                         ndim == 3 ? "image" : "label", m, magic, hint);
    }
    if (got < hlen)
        return qg__error(NULL, QG_ERR_FORMAT, "file '%s' truncated at byte offset %zu: "
                         "expected a %zu-byte IDX header", x->path, got, hlen);
    for (int d = 0; d < ndim; d++) {
        dims[d] = be32(h + 4 + 4 * d);
        if (dims[d] == 0)
            return qg__error(NULL, QG_ERR_FORMAT, "file '%s': dimension %d (byte offset %d) "
                             "is 0", x->path, d, 4 + 4 * d);
    }
    return QG_OK;
}

/* Reads exactly n data bytes and checks nothing follows them (for gzip
 * files this also makes zlib verify the trailer's CRC and length). */
static qg_status read_body(idx_file *x, void *buf, size_t n, const char *what)
{
    size_t got;
    qg_status st = idx_read(x, buf, n, &got);
    if (st != QG_OK)
        return st;
    if (got < n)
        return truncated(x, n, what);
    unsigned char extra[4096];
    size_t end = x->pos, more = 0;
    do {
        st = idx_read(x, extra, sizeof extra, &got);
        if (st != QG_OK)
            return st;
        more += got;
    } while (got == sizeof extra);
    if (more)
        return qg__error(NULL, QG_ERR_FORMAT, "file '%s' has %zu bytes of extra data after "
                         "byte offset %zu: its header announces exactly %zu bytes of %s",
                         x->path, more, end, n, what);
    if (x->gz_cut)
        return qg__error(NULL, QG_ERR_FORMAT, "file '%s' is a truncated gzip file: it ends "
                         "before the gzip trailer (CRC and length) after decompressed byte "
                         "offset %zu", x->path, end);
    return QG_OK;
}

/* The announced content must fit in what the input can hold; checked
 * before allocating it, so a corrupt header cannot ask for gigabytes. */
static qg_status check_fits(idx_file *x, size_t header, size_t need, const char *what)
{
    size_t cap = max_content(x);
    if (cap == SIZE_MAX || (cap >= header && need <= cap - header))
        return QG_OK;
    if (!x->gz) {
        x->pos = (size_t)x->size;
        return truncated(x, need, what);
    }
    return qg__error(NULL, QG_ERR_FORMAT, "file '%s' is truncated or corrupt: its header "
                     "announces %zu bytes of %s, more than its %lld gzip bytes can hold",
                     x->path, need, what, x->size);
}

/* Both inputs open: headers, then the data, then the labels' range. */
static qg_status load(idx_file *xi, idx_file *xl, qg_dataset **out)
{
    qg_status st = QG_OK;
    qg_dataset *ds = NULL;
    uint8_t *lab = NULL;
    uint32_t idims[3], ldims[1];
    const char *images_path = xi->path, *labels_path = xl->path;

    QG_TRY(read_header(xi, IDX_IMAGES, 3, idims));
    QG_TRY(read_header(xl, IDX_LABELS, 1, ldims));
    if (idims[0] != ldims[0]) {
        st = qg__error(NULL, QG_ERR_FORMAT, "'%s' holds %u images but '%s' holds %u labels",
                       images_path, idims[0], labels_path, ldims[0]);
        goto fail;
    }
    if (idims[1] > INT_MAX || idims[2] > INT_MAX) {
        st = qg__error(NULL, QG_ERR_FORMAT, "file '%s': images of %ux%u pixels are too large",
                       images_path, idims[1], idims[2]);
        goto fail;
    }
    size_t n = idims[0], img_bytes = (size_t)idims[1] * idims[2];
    if (img_bytes > SIZE_MAX / n) {
        st = qg__error(NULL, QG_ERR_FORMAT, "file '%s': %zu images of %ux%u pixels do not fit "
                       "in memory", images_path, n, idims[1], idims[2]);
        goto fail;
    }
    QG_TRY(check_fits(xi, 16, n * img_bytes, "image data"));
    QG_TRY(check_fits(xl, 8, n, "label data"));
    QG_TRY(qg__dataset_new(n, 1, (int)idims[1], (int)idims[2], IDX_CLASSES, &ds));
    QG_TRY(read_body(xi, qg__dataset_pixels(ds), n * img_bytes, "image data"));
    lab = malloc(n);
    if (!lab) {
        st = qg__error(NULL, QG_ERR_NOMEM, "out of memory reading '%s'", labels_path);
        goto fail;
    }
    QG_TRY(read_body(xl, lab, n, "label data"));
    int *labels = qg__dataset_labels(ds);
    for (size_t i = 0; i < n; i++) {
        if (lab[i] >= IDX_CLASSES) {
            st = qg__error(NULL, QG_ERR_FORMAT, "file '%s': label %u of sample %zu (byte offset "
                           "%zu) is out of range for %d classes", labels_path, lab[i], i, 8 + i,
                           IDX_CLASSES);
            goto fail;
        }
        labels[i] = lab[i];
    }
    *out = ds;
    ds = NULL;
fail:
    free(lab);
    qg__dataset_free(ds);
    return st;
}

qg_status qg__dataset_load_idx(const char *images_path, const char *labels_path,
                               qg_dataset **out)
{
    qg_status st = QG_OK;
    idx_file xi = {0}, xl = {0};
    *out = NULL;
    QG_TRY(idx_open(&xi, images_path));
    QG_TRY(idx_open(&xl, labels_path));
    st = load(&xi, &xl, out);
fail:
    idx_close(&xi);
    idx_close(&xl);
    return st;
}

qg_status qg__dataset_load_idx_memory(const char *images_name, const void *images,
                                      size_t images_len, const char *labels_name,
                                      const void *labels, size_t labels_len, qg_dataset **out)
{
    qg_status st = QG_OK;
    idx_file xi = {0}, xl = {0};
    *out = NULL;
    QG_TRY(idx_open_memory(&xi, images_name, images, images_len));
    QG_TRY(idx_open_memory(&xl, labels_name, labels, labels_len));
    st = load(&xi, &xl, out);
fail:
    idx_close(&xi);
    idx_close(&xl);
    return st;
}
