/* src/data/jpeg.h: JPEG decoding (TurboJPEG) and antialiased resampling
 * of a region into a normalised float image. Used by the folder dataset
 * (folder.c), `qgate export-images` and bench/bench_jpeg.c; tests:
 * tests/test_jpeg.c.
 *
 * Supported: baseline and progressive JPEG in YCbCr, grayscale (output
 * as three equal channels), CMYK and YCCK (Adobe inverted, as Photoshop
 * and ImageMagick write them; converted as R = (255-C)(255-K)/255 on the
 * uninverted values, what Pillow does). Not supported: PNG and other
 * formats, 12-bit JPEG, arithmetic coding is left to libjpeg-turbo.
 * Rejected (QG_ERR_FORMAT, message naming the file and the reason): empty
 * files, files over QG_JPEG_MAX_FILE bytes, anything TurboJPEG reports an
 * error for, truncated files (libjpeg's warning "Premature end of JPEG
 * file"), and images over QG_JPEG_MAX_PIXELS pixels. Other warnings
 * ("Corrupt JPEG data: ...") keep the decoded image, as Pillow does. */
#ifndef QG_DATA_JPEG_H
#define QG_DATA_JPEG_H

#include <stddef.h>
#include <stdint.h>

#include "qgate/status.h"

#define QG_JPEG_MAX_FILE (64u << 20)
#define QG_JPEG_MAX_PIXELS (64u << 20)

/* One per thread: the TurboJPEG handle and reusable buffers. */
typedef struct qg_jpeg qg_jpeg;
qg_status qg__jpeg_new(qg_jpeg **out);
void qg__jpeg_free(qg_jpeg *j);

/* Reads the file into j and parses its header; *w, *h: full size. */
qg_status qg__jpeg_open_file(qg_jpeg *j, const char *path, int *w, int *h);
/* The same from memory (the bytes are copied); name is for messages. */
qg_status qg__jpeg_open_mem(qg_jpeg *j, const void *buf, size_t len, const char *name, int *w,
                            int *h);

/* The part of the opened image that becomes the output, in full-size
 * pixel coordinates: output pixel (x, y) of an out_w x out_h image is
 * centred at source (x0 + (x + 0.5)*sx, y0 + (y + 0.5)*sy), filtered with
 * a triangle (bilinear) kernel widened by max(sx, 1) (antialiasing, as
 * Pillow's BILINEAR resize), reading only source pixels inside
 * [bx0, bx1) x [by0, by1). So a crop box (l, t, cw, ch) resized to
 * out_w x out_h is {l, t, cw/out_w, ch/out_h, l, t, l+cw, t+ch}, and a
 * resize of the whole image to W' x H' followed by a crop at (l, t) is
 * {l*W/W', t*H/H', W/W', H/H', 0, 0, W, H}. */
typedef struct qg_jpeg_region {
    double x0, y0, sx, sy;
    int bx0, by0, bx1, by1;
} qg_jpeg_region;

/* Decodes the opened image (with libjpeg-turbo's DCT-domain scaling by
 * the largest factor that keeps at least one source pixel per output
 * pixel in the region) and resamples the region into dst [3][out_h][out_w]
 * as v * scale[c] + bias[c] with v in 0..255, mirrored left-right when
 * flip. *dct_den receives the scaling used (1, 2, 4 or 8 = 1/den; may be
 * NULL). */
qg_status qg__jpeg_render(qg_jpeg *j, const qg_jpeg_region *r, int out_w, int out_h, int flip,
                          const float scale[3], const float bias[3], float *dst, int *dct_den);

/* torchvision's RandomResizedCrop box (scale 0.08-1, ratio 3/4-4/3, ten
 * tries, then the centre fallback) for a W x H image, drawn from the
 * stream `key`: left, top, width, height. In folder.c. */
void qg__rrc_box(uint64_t key, int W, int H, double lo, int *l, int *t, int *cw, int *ch);

/* Encodes interleaved RGB (channels 3) or gray (1) rows to JPEG at
 * quality q; *out is malloc'd (free() it). */
qg_status qg__jpeg_encode(const uint8_t *pix, int w, int h, int channels, int quality,
                          uint8_t **out, size_t *len);

#endif
