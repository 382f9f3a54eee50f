/* src/data/export.c: writes an in-memory dataset as JPEG class folders
 * (DIR/<split>/<class>/NNNNN.jpg) that folder.c and torchvision's
 * ImageFolder read back, so the JPEG pipeline can train end to end on
 * data this machine has. CLI: src/cli/cmd_export.c; tests:
 * tests/test_jpeg.c. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/error.h"
#include "data/dataset.h"
#include "data/jpeg.h"

static qg_status mkdir_one(const char *p)
{
    if (mkdir(p, 0777) != 0 && errno != EEXIST)
        return qg__error(NULL, QG_ERR_IO, "cannot create folder '%s': %s", p, strerror(errno));
    return QG_OK;
}

/* Bilinear resize (half-pixel centres, edges clamped) of one plane. */
static void resize_plane(const uint8_t *src, int h, int w, uint8_t *dst, int size, int stride)
{
    for (int y = 0; y < size; y++) {
        double fy = (y + 0.5) * h / size - 0.5;
        int y0 = fy < 0 ? 0 : (int)fy, y1 = y0 + 1 < h ? y0 + 1 : h - 1;
        double ay = fy - y0 < 0 ? 0 : fy - y0;
        for (int x = 0; x < size; x++) {
            double fx = (x + 0.5) * w / size - 0.5;
            int x0 = fx < 0 ? 0 : (int)fx, x1 = x0 + 1 < w ? x0 + 1 : w - 1;
            double ax = fx - x0 < 0 ? 0 : fx - x0;
            double v = (1 - ay) * ((1 - ax) * src[y0 * w + x0] + ax * src[y0 * w + x1]) +
                       ay * ((1 - ax) * src[y1 * w + x0] + ax * src[y1 * w + x1]);
            dst[(size_t)(y * size + x) * stride] = (uint8_t)(v + 0.5);
        }
    }
}

qg_status qg__dataset_export_jpeg(const qg_dataset *ds, const char *dir, const char *split,
                                  const char *const *class_names, int size, int quality,
                                  size_t limit, size_t *written)
{
    int C = qg__dataset_channels(ds), H = qg__dataset_height(ds), W = qg__dataset_width(ds);
    int K = qg__dataset_classes(ds);
    size_t n = qg__dataset_count(ds);
    *written = 0;
    if (qg__dataset_on_demand(ds))
        return qg__error(NULL, QG_ERR_UNSUPPORTED, "export: the dataset is already images");
    if (C != 1 && C != 3)
        return qg__error(NULL, QG_ERR_UNSUPPORTED, "export: %d-channel images (1 or 3)", C);
    if (size < 1 || size > 4096 || quality < 1 || quality > 100)
        return qg__error(NULL, QG_ERR_INVALID_ARG, "export: size %d (1..4096) and quality %d "
                         "(1..100)", size, quality);
    if (limit && limit < n)
        n = limit;
    char path[4096];
    int digits = 1;
    for (int k = K - 1; k >= 10; k /= 10)
        digits++;
    qg_status st = mkdir_one(dir);
    snprintf(path, sizeof path, "%s/%s", dir, split);
    if (st == QG_OK)
        st = mkdir_one(path);
    for (int k = 0; k < K && st == QG_OK; k++) {
        snprintf(path, sizeof path, "%s/%s/%0*d%s%s", dir, split, digits, k,
                 class_names ? "_" : "", class_names ? class_names[k] : "");
        st = mkdir_one(path);
    }
    uint8_t *pix = malloc((size_t)size * size * C);
    if (st == QG_OK && !pix)
        st = qg__error(NULL, QG_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < n && st == QG_OK; i++) {
        const uint8_t *img = qg__dataset_image(ds, i);
        int k = qg__dataset_label(ds, i);
        for (int c = 0; c < C; c++)
            resize_plane(img + (size_t)c * H * W, H, W, pix + c, size, C);
        uint8_t *jpg = NULL;
        size_t len = 0;
        st = qg__jpeg_encode(pix, size, size, C, quality, &jpg, &len);
        if (st != QG_OK)
            break;
        snprintf(path, sizeof path, "%s/%s/%0*d%s%s/%05zu.jpg", dir, split, digits, k,
                 class_names ? "_" : "", class_names ? class_names[k] : "", i);
        FILE *f = fopen(path, "wb");
        if (!f || fwrite(jpg, 1, len, f) != len) {
            st = qg__error(NULL, QG_ERR_IO, "cannot write '%s': %s", path, strerror(errno));
        }
        if (f && fclose(f) != 0 && st == QG_OK)
            st = qg__error(NULL, QG_ERR_IO, "cannot write '%s': %s", path, strerror(errno));
        free(jpg);
        if (st == QG_OK)
            ++*written;
    }
    free(pix);
    return st;
}
