/* src/data/jpeg.c: TurboJPEG decoding with DCT-domain scaling, CMYK and
 * grayscale conversion, and the separable antialiased resampler that
 * turns a region of the decoded image into a normalised float tensor.
 * Interface and supported formats: jpeg.h; tests: tests/test_jpeg.c.
 *
 * The resampler follows Pillow's BILINEAR resize (triangle filter whose
 * support grows with the reduction factor, weights normalised per output
 * pixel), so its output is close to torchvision's PIL transforms; it runs
 * in float (Pillow uses 8-bit fixed point between passes), one horizontal
 * pass over the rows the vertical filter needs, then the vertical pass
 * writing planar output with the normalisation folded in. */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <turbojpeg.h>

#include "core/error.h"
#include "data/jpeg.h"

/* Growable scratch buffer. */
typedef struct grow {
    void *p;
    size_t cap;
} grow;

static void *grow_to(grow *g, size_t bytes)
{
    if (bytes > g->cap) {
        size_t cap = bytes + bytes / 4 + 64;
        void *p = realloc(g->p, cap);
        if (!p)
            return NULL;
        g->p = p;
        g->cap = cap;
    }
    return g->p;
}

/* Filter taps of one output coordinate: source start, count, weights at
 * w + k*ksize. */
typedef struct taps {
    grow start, count, w;
    int ksize;
} taps;

struct qg_jpeg {
    tjhandle tj;
    grow file;          /* the compressed bytes */
    size_t len;
    char name[512];
    int w, h, subsamp, colorspace;
    grow pix;           /* decoded RGB (or CMYK) pixels */
    grow tmp;           /* horizontal pass: [rows][out_w][3] floats */
    taps tx, ty;
};

qg_status qg__jpeg_new(qg_jpeg **out)
{
    *out = NULL;
    qg_jpeg *j = calloc(1, sizeof *j);
    if (!j)
        return qg__error(NULL, QG_ERR_NOMEM, "out of memory for a JPEG decoder");
    j->tj = tjInitDecompress();
    if (!j->tj) {
        free(j);
        return qg__error(NULL, QG_ERR_NOMEM, "cannot create a TurboJPEG decompressor: %s",
                         tjGetErrorStr2(NULL));
    }
    *out = j;
    return QG_OK;
}

static void taps_free(taps *t)
{
    free(t->start.p);
    free(t->count.p);
    free(t->w.p);
}

void qg__jpeg_free(qg_jpeg *j)
{
    if (!j)
        return;
    if (j->tj)
        tjDestroy(j->tj);
    free(j->file.p);
    free(j->pix.p);
    free(j->tmp.p);
    taps_free(&j->tx);
    taps_free(&j->ty);
    free(j);
}

/* After a failed call a TurboJPEG 2.x handle can keep failing with the
 * same error on later, valid files; a fresh handle is cheap. */
static void reset_handle(qg_jpeg *j)
{
    tjhandle fresh = tjInitDecompress();
    if (fresh) {
        tjDestroy(j->tj);
        j->tj = fresh;
    }
}

static qg_status parse_header(qg_jpeg *j, int *w, int *h)
{
    if (j->len == 0)
        return qg__error(NULL, QG_ERR_FORMAT, "'%s': empty file", j->name);
    if (tjDecompressHeader3(j->tj, j->file.p, (unsigned long)j->len, &j->w, &j->h, &j->subsamp,
                            &j->colorspace) != 0) {
        qg_status st = qg__error(NULL, QG_ERR_FORMAT, "'%s': not a readable JPEG: %s", j->name,
                                 tjGetErrorStr2(j->tj));
        reset_handle(j);
        j->w = j->h = 0;
        return st;
    }
    if (j->w <= 0 || j->h <= 0 ||
        (unsigned long long)j->w * (unsigned long long)j->h > QG_JPEG_MAX_PIXELS)
        return qg__error(NULL, QG_ERR_FORMAT, "'%s': %dx%d pixels is over the limit of %u",
                         j->name, j->w, j->h, QG_JPEG_MAX_PIXELS);
    *w = j->w;
    *h = j->h;
    return QG_OK;
}

qg_status qg__jpeg_open_mem(qg_jpeg *j, const void *buf, size_t len, const char *name, int *w,
                            int *h)
{
    snprintf(j->name, sizeof j->name, "%s", name ? name : "<memory>");
    j->w = j->h = 0;
    if (len > QG_JPEG_MAX_FILE)
        return qg__error(NULL, QG_ERR_FORMAT, "'%s': %zu bytes is over the limit of %u",
                         j->name, len, QG_JPEG_MAX_FILE);
    if (!grow_to(&j->file, len ? len : 1))
        return qg__error(NULL, QG_ERR_NOMEM, "out of memory for '%s'", j->name);
    if (len)
        memcpy(j->file.p, buf, len);
    j->len = len;
    return parse_header(j, w, h);
}

qg_status qg__jpeg_open_file(qg_jpeg *j, const char *path, int *w, int *h)
{
    snprintf(j->name, sizeof j->name, "%s", path);
    j->w = j->h = 0;
    j->len = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return qg__error(NULL, QG_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    struct stat sb;
    qg_status st = QG_OK;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        st = qg__error(NULL, QG_ERR_IO, "'%s' is not a regular file", path);
        goto done;
    }
    if ((unsigned long long)sb.st_size > QG_JPEG_MAX_FILE) {
        st = qg__error(NULL, QG_ERR_FORMAT, "'%s': %lld bytes is over the limit of %u", path,
                       (long long)sb.st_size, QG_JPEG_MAX_FILE);
        goto done;
    }
    size_t want = (size_t)sb.st_size;
    if (!grow_to(&j->file, want ? want : 1)) {
        st = qg__error(NULL, QG_ERR_NOMEM, "out of memory for '%s'", path);
        goto done;
    }
    j->len = fread(j->file.p, 1, want, f);
    if (j->len != want || ferror(f)) {
        st = qg__error(NULL, QG_ERR_IO, "'%s': read %zu of %zu bytes", path, j->len, want);
        goto done;
    }
    st = parse_header(j, w, h);
done:
    fclose(f);
    return st;
}

/* Pillow's precompute_coeffs for the bilinear (triangle) filter, over
 * the source range [lo, hi) of a decoded axis. Output i (mirrored when
 * flip) centres at x0 + (i + 0.5)*scale. */
static qg_status make_taps(taps *t, double x0, double scale, int lo, int hi, int out, int flip)
{
    double fscale = scale > 1.0 ? scale : 1.0;
    double support = fscale;   /* the triangle's support is 1 */
    int ksize = (int)ceil(support) * 2 + 1;
    int *start = grow_to(&t->start, (size_t)out * sizeof(int));
    int *count = grow_to(&t->count, (size_t)out * sizeof(int));
    float *w = grow_to(&t->w, (size_t)out * (size_t)ksize * sizeof(float));
    if (!start || !count || !w)
        return qg__error(NULL, QG_ERR_NOMEM, "out of memory for resampling taps");
    t->ksize = ksize;
    for (int i = 0; i < out; i++) {
        double c = x0 + (i + 0.5) * scale;
        int a = (int)floor(c - support + 0.5), b = (int)floor(c + support + 0.5);
        if (a < lo)
            a = lo;
        if (b > hi)
            b = hi;
        if (b - a > ksize)
            b = a + ksize;
        if (b <= a) {   /* degenerate region: nearest in-range pixel */
            a = c < lo ? lo : c >= hi ? hi - 1 : (int)c;
            b = a + 1;
        }
        int o = flip ? out - 1 - i : i;
        float *wo = w + (size_t)o * ksize;
        double sum = 0;
        for (int k = 0; k < b - a; k++) {
            double x = (a + k - c + 0.5) / fscale;
            double v = 1.0 - fabs(x);
            wo[k] = (float)(v > 0 ? v : 0);
            sum += wo[k];
        }
        for (int k = 0; k < b - a; k++)
            wo[k] = sum > 0 ? (float)(wo[k] / sum) : 1.0f / (float)(b - a);
        start[o] = a;
        count[o] = b - a;
    }
    return QG_OK;
}

/* Adobe CMYK is stored inverted: C' = 255 - C. R = (255-C)(255-K)/255 =
 * C'K'/255. In place, 4 bytes to 3. */
static void cmyk_to_rgb(uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int c = p[4 * i], m = p[4 * i + 1], y = p[4 * i + 2], k = p[4 * i + 3];
        p[3 * i] = (uint8_t)((c * k + 127) / 255);
        p[3 * i + 1] = (uint8_t)((m * k + 127) / 255);
        p[3 * i + 2] = (uint8_t)((y * k + 127) / 255);
    }
}

qg_status qg__jpeg_render(qg_jpeg *j, const qg_jpeg_region *r, int out_w, int out_h, int flip,
                          const float scale[3], const float bias[3], float *dst, int *dct_den)
{
    qg_status st;
    if (j->w <= 0 || j->h <= 0)
        return qg__error(NULL, QG_ERR_INVALID_ARG, "jpeg_render: no image is open");
    if (out_w <= 0 || out_h <= 0 || !(r->sx > 0) || !(r->sy > 0) || r->bx0 < 0 ||
        r->by0 < 0 || r->bx1 > j->w || r->by1 > j->h || r->bx0 >= r->bx1 || r->by0 >= r->by1)
        return qg__error(NULL, QG_ERR_INVALID_ARG, "jpeg_render: region [%d,%d)x[%d,%d) step "
                         "%gx%g to %dx%d does not fit '%s' (%dx%d)", r->bx0, r->bx1, r->by0,
                         r->by1, r->sx, r->sy, out_w, out_h, j->name, j->w, j->h);
    /* DCT scaling by 1/2, 1/4 or 1/8 (libjpeg-turbo's fast reduced IDCTs)
     * while every output pixel still covers at least one decoded pixel. */
    int den = 1;
    while (den < 8 && r->sx >= 2.0 * den && r->sy >= 2.0 * den)
        den *= 2;
    tjscalingfactor sf = {1, den};
    int sw = TJSCALED(j->w, sf), sh = TJSCALED(j->h, sf);
    int cmyk = j->colorspace == TJCS_CMYK || j->colorspace == TJCS_YCCK;
    int pf = cmyk ? TJPF_CMYK : TJPF_RGB;
    uint8_t *pix = grow_to(&j->pix, (size_t)sw * (size_t)sh * (cmyk ? 4 : 3));
    if (!pix)
        return qg__error(NULL, QG_ERR_NOMEM, "out of memory decoding '%s' (%dx%d)", j->name,
                         sw, sh);
    if (tjDecompress2(j->tj, j->file.p, (unsigned long)j->len, pix, sw, 0, sh, pf, 0) != 0) {
        /* Warnings leave a complete image; as Pillow, keep it unless the
         * file ended early (the rest of the picture would be grey). */
        const char *msg = tjGetErrorStr2(j->tj);
        int warn = tjGetErrorCode(j->tj) == TJERR_WARNING;
        if (!warn || strstr(msg, "Premature end of JPEG file")) {
            st = qg__error(NULL, QG_ERR_FORMAT, "'%s': %s: %s", j->name,
                           warn ? "truncated JPEG" : "cannot decode", msg);
            reset_handle(j);
            return st;
        }
    }
    if (cmyk)
        cmyk_to_rgb(pix, (size_t)sw * (size_t)sh);
    if (dct_den)
        *dct_den = den;

    /* The region in decoded coordinates. */
    double fx = (double)sw / j->w, fy = (double)sh / j->h;
    int bx0 = (int)floor(r->bx0 * fx), bx1 = (int)ceil(r->bx1 * fx);
    int by0 = (int)floor(r->by0 * fy), by1 = (int)ceil(r->by1 * fy);
    if (bx1 > sw)
        bx1 = sw;
    if (by1 > sh)
        by1 = sh;
    if (bx1 <= bx0)
        bx1 = bx0 + 1;
    if (by1 <= by0)
        by1 = by0 + 1;
    st = make_taps(&j->tx, r->x0 * fx, r->sx * fx, bx0, bx1, out_w, flip);
    if (st == QG_OK)
        st = make_taps(&j->ty, r->y0 * fy, r->sy * fy, by0, by1, out_h, 0);
    if (st != QG_OK)
        return st;

    const int *xs = j->tx.start.p, *xn = j->tx.count.p, *ys = j->ty.start.p,
              *yn = j->ty.count.p;
    const float *xw = j->tx.w.p, *yw = j->ty.w.p;
    int kx = j->tx.ksize, ky = j->ty.ksize;
    int row0 = ys[0], row1 = ys[0] + yn[0];
    for (int y = 1; y < out_h; y++) {
        if (ys[y] < row0)
            row0 = ys[y];
        if (ys[y] + yn[y] > row1)
            row1 = ys[y] + yn[y];
    }
    float *tmp = grow_to(&j->tmp, (size_t)(row1 - row0) * (size_t)out_w * 3 * sizeof(float));
    if (!tmp)
        return qg__error(NULL, QG_ERR_NOMEM, "out of memory resampling '%s'", j->name);
    for (int sy = row0; sy < row1; sy++) {
        const uint8_t *src = pix + (size_t)sy * sw * 3;
        float *t = tmp + (size_t)(sy - row0) * out_w * 3;
        for (int x = 0; x < out_w; x++) {
            const uint8_t *s = src + (size_t)xs[x] * 3;
            const float *w = xw + (size_t)x * kx;
            float a0 = 0, a1 = 0, a2 = 0;
            for (int k = 0; k < xn[x]; k++) {
                a0 += w[k] * s[3 * k];
                a1 += w[k] * s[3 * k + 1];
                a2 += w[k] * s[3 * k + 2];
            }
            t[3 * x] = a0;
            t[3 * x + 1] = a1;
            t[3 * x + 2] = a2;
        }
    }
    size_t plane = (size_t)out_w * out_h;
    for (int y = 0; y < out_h; y++) {
        const float *w = yw + (size_t)y * ky;
        float *d0 = dst + (size_t)y * out_w, *d1 = d0 + plane, *d2 = d1 + plane;
        const float *t0 = tmp + (size_t)(ys[y] - row0) * out_w * 3;
        for (int x = 0; x < out_w; x++) {
            float a0 = 0, a1 = 0, a2 = 0;
            const float *t = t0 + 3 * x;
            for (int k = 0; k < yn[y]; k++, t += (size_t)out_w * 3) {
                a0 += w[k] * t[0];
                a1 += w[k] * t[1];
                a2 += w[k] * t[2];
            }
            d0[x] = a0 * scale[0] + bias[0];
            d1[x] = a1 * scale[1] + bias[1];
            d2[x] = a2 * scale[2] + bias[2];
        }
    }
    return QG_OK;
}

qg_status qg__jpeg_encode(const uint8_t *pix, int w, int h, int channels, int quality,
                          uint8_t **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    if (channels != 1 && channels != 3)
        return qg__error(NULL, QG_ERR_INVALID_ARG, "jpeg_encode: %d channels (1 or 3)",
                         channels);
    tjhandle tj = tjInitCompress();
    if (!tj)
        return qg__error(NULL, QG_ERR_NOMEM, "cannot create a TurboJPEG compressor: %s",
                         tjGetErrorStr2(NULL));
    unsigned char *buf = NULL;
    unsigned long size = 0;
    qg_status st = QG_OK;
    if (tjCompress2(tj, pix, w, 0, h, channels == 1 ? TJPF_GRAY : TJPF_RGB, &buf, &size,
                    channels == 1 ? TJSAMP_GRAY : TJSAMP_420, quality, 0) != 0) {
        st = qg__error(NULL, QG_ERR_FORMAT, "JPEG encoding of %dx%d failed: %s", w, h,
                       tjGetErrorStr2(tj));
        goto done;
    }
    *out = malloc(size);
    if (!*out) {
        st = qg__error(NULL, QG_ERR_NOMEM, "out of memory for a %lu-byte JPEG", size);
        goto done;
    }
    memcpy(*out, buf, size);
    *len = size;
done:
    tjFree(buf);
    tjDestroy(tj);
    return st;
}
