/* src/data/idx.c: IDX image/label files (MNIST, Fashion-MNIST), raw or
 * gzip-compressed (recognised by the 1f 8b magic, read with zlib). The file
 * must hold exactly the bytes its header announces; every error names the
 * file and the byte offset (in the decompressed stream for .gz files).
 * Twins: dataset.c (the struct), tests/test_data.c. */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "core/error.h"
#include "data/dataset.h"

#define IDX_IMAGES 0x00000803u /* unsigned bytes, 3 dimensions */
#define IDX_LABELS 0x00000801u /* unsigned bytes, 1 dimension */
#define IDX_CLASSES 10

/* A raw or gzip file read sequentially; `pos` counts decompressed bytes. */
typedef struct idx_file {
    const char *path;
    FILE *f;
    gzFile gz;
    size_t pos;
    long long raw_size;  /* raw files: size on disk; -1 for gzip */
    int gz_cut;          /* zlib hit the end of the file inside the gzip stream */
} idx_file;

static qg_status idx_open(idx_file *x, const char *path)
{
    memset(x, 0, sizeof *x);
    x->path = path;
    x->raw_size = -1;
    x->f = fopen(path, "rb");
    if (!x->f)
        return qg__error(NULL, QG_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    unsigned char m[2];
    size_t got = fread(m, 1, 2, x->f);
    if (got == 2 && m[0] == 0x1f && m[1] == 0x8b) {
        fclose(x->f);
        x->f = NULL;
        x->gz = gzopen(path, "rb");
        if (!x->gz)
            return qg__error(NULL, QG_ERR_IO, "cannot open '%s' with zlib: %s", path,
                             errno ? strerror(errno) : "out of memory");
        gzbuffer(x->gz, 1 << 17);
        return QG_OK;
    }
    struct stat sb;
    if (fstat(fileno(x->f), &sb) == 0)
        x->raw_size = (long long)sb.st_size;
    rewind(x->f);
    return QG_OK;
}

static void idx_close(idx_file *x)
{
    if (x->f)
        fclose(x->f);
    if (x->gz)
        gzclose(x->gz);
    x->f = NULL;
    x->gz = NULL;
}

/* Reads up to n bytes; *got is what arrived before EOF. A short read is
 * not an error here (the caller words the truncation); a corrupt gzip
 * stream or an I/O error is. A gzip stream cut short counts as EOF. */
static qg_status idx_read(idx_file *x, void *buf, size_t n, size_t *got)
{
    unsigned char *p = buf;
    *got = 0;
    while (*got < n) {
        size_t want = n - *got;
        if (x->gz) {
            unsigned chunk = want > (1u << 30) ? (1u << 30) : (unsigned)want;
            int r = gzread(x->gz, p + *got, chunk);
            if (r > 0) {
                *got += (size_t)r;
                continue;
            }
            /* 0 is a clean end or a cut stream, -1 an error: ask zlib which. */
            int zerr;
            const char *msg = gzerror(x->gz, &zerr);
            if (zerr == Z_OK)
                break;
            if (zerr == Z_BUF_ERROR) {
                x->gz_cut = 1; /* "unexpected end of file": the stream is cut short */
                break;
            }
            x->pos += *got;
            return qg__error(NULL, zerr == Z_ERRNO ? QG_ERR_IO : QG_ERR_FORMAT,
                             "file '%s': gzip data corrupt near decompressed byte offset "
                             "%zu: %s", x->path, x->pos, zerr == Z_ERRNO ? strerror(errno) : msg);
        } else {
            size_t r = fread(p + *got, 1, want, x->f);
            *got += r;
            if (r < want) {
                if (ferror(x->f))
                    return qg__error(NULL, QG_ERR_IO, "read error on '%s' at byte offset %zu",
                                     x->path, x->pos + *got);
                break;
            }
        }
    }
    x->pos += *got;
    return QG_OK;
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

qg_status qg__dataset_load_idx(const char *images_path, const char *labels_path,
                               qg_dataset **out)
{
    qg_status st = QG_OK;
    idx_file xi = {0}, xl = {0};
    qg_dataset *ds = NULL;
    uint8_t *lab = NULL;
    uint32_t idims[3], ldims[1];
    *out = NULL;

    QG_TRY(idx_open(&xi, images_path));
    QG_TRY(idx_open(&xl, labels_path));
    QG_TRY(read_header(&xi, IDX_IMAGES, 3, idims));
    QG_TRY(read_header(&xl, IDX_LABELS, 1, ldims));
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
    /* A raw file's size is known up front: refuse a truncated one before
     * allocating what its (possibly corrupt) header announces. */
    if (xi.raw_size >= 0 && (unsigned long long)xi.raw_size - 16 < n * img_bytes) {
        xi.pos = (size_t)xi.raw_size;
        st = truncated(&xi, n * img_bytes, "image data");
        goto fail;
    }
    QG_TRY(qg__dataset_new(n, 1, (int)idims[1], (int)idims[2], IDX_CLASSES, &ds));
    QG_TRY(read_body(&xi, qg__dataset_pixels(ds), n * img_bytes, "image data"));
    lab = malloc(n);
    if (!lab) {
        st = qg__error(NULL, QG_ERR_NOMEM, "out of memory reading '%s'", labels_path);
        goto fail;
    }
    QG_TRY(read_body(&xl, lab, n, "label data"));
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
    idx_close(&xi);
    idx_close(&xl);
    return st;
}
