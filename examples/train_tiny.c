/* examples/train_tiny.c: a program that uses libqgate through its installed
 * headers only (<qgate.h>), built with
 *
 *     cc train_tiny.c $(pkg-config --cflags --libs qgate) -o train_tiny
 *
 * It opens a device context, makes a tiny synthetic data set (two classes of
 * 8x8 images: bright top half or bright bottom half), uploads it into device
 * tensors and checks that reading them back gives the same bytes. The steps
 * are separate functions so that training on the same data is one more
 * step in main(). Usage: train_tiny [DEVICE] (index or name substring;
 * default $QGATE_DEVICE, then device 0). Exit status 0 on success.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <qgate.h>

enum { N = 16, C = 1, H = 8, W = 8 };

/* The synthetic data set on the host and on the device. */
typedef struct tiny_data {
    float x[N * C * H * W];
    int32_t y[N];
    qg_tensor *tx, *ty;
} tiny_data;

static void report(qg_ctx *ctx, const char *what, qg_status st)
{
    fprintf(stderr, "train_tiny: %s: %s: %s\n", what, qg_status_str(st),
            ctx ? qg_ctx_last_error(ctx) : qg_last_error());
}

static qg_status open_device(const char *device, qg_ctx **out)
{
    qg_ctx_opts opts = {0};
    opts.device = device;
    qg_status st = qg_ctx_new(&opts, out);
    if (st != QG_OK) {
        report(NULL, "qg_ctx_new", st);
        return st;
    }
    const qg_device_info *info = qg_ctx_device(*out);
    printf("qgate %s (headers %s), device [%d] %s (%s, %u compute units)\n", qg_version(),
           QG_VERSION_STRING, info->index, info->name, info->platform, info->compute_units);
    return QG_OK;
}

/* Image i is class i % 2: class 0 is bright in the top half, class 1 in the
 * bottom half, plus a small deterministic ripple so no two images agree. */
static void make_data(tiny_data *d)
{
    for (int i = 0; i < N; i++) {
        d->y[i] = i % 2;
        for (int r = 0; r < H; r++)
            for (int c = 0; c < W; c++) {
                int top = r < H / 2;
                float base = (top == (d->y[i] == 0)) ? 1.0f : 0.0f;
                d->x[(i * H + r) * W + c] = base + 0.01f * (float)((i * 7 + r * 3 + c) % 5);
            }
    }
}

static qg_status upload_data(qg_ctx *ctx, tiny_data *d)
{
    const int64_t xshape[4] = {N, C, H, W};
    const int64_t yshape[1] = {N};
    qg_status st = qg_tensor_new(ctx, 4, xshape, QG_DTYPE_F32, "x", &d->tx);
    if (st == QG_OK)
        st = qg_tensor_new(ctx, 1, yshape, QG_DTYPE_I32, "y", &d->ty);
    if (st == QG_OK)
        st = qg_tensor_write(d->tx, d->x, sizeof d->x);
    if (st == QG_OK)
        st = qg_tensor_write(d->ty, d->y, sizeof d->y);
    if (st != QG_OK)
        report(ctx, "upload", st);
    return st;
}

/* Reads both tensors back and compares them with the host copies. */
static qg_status check_roundtrip(qg_ctx *ctx, const tiny_data *d)
{
    static float x[N * C * H * W];
    int32_t y[N];
    qg_status st = qg_tensor_read(d->tx, x, sizeof x);
    if (st == QG_OK)
        st = qg_tensor_read(d->ty, y, sizeof y);
    if (st != QG_OK) {
        report(ctx, "download", st);
        return st;
    }
    if (memcmp(x, d->x, sizeof x) != 0 || memcmp(y, d->y, sizeof y) != 0) {
        fprintf(stderr, "train_tiny: data read back differs from what was written\n");
        return QG_ERR_FORMAT;
    }
    printf("tensor %s: %d-d, %zu x %s; tensor %s: %zu x %s; round trip ok\n",
           qg_tensor_name(d->tx), qg_tensor_ndim(d->tx), qg_tensor_numel(d->tx),
           qg_dtype_name(qg_tensor_dtype(d->tx)), qg_tensor_name(d->ty),
           qg_tensor_numel(d->ty), qg_dtype_name(qg_tensor_dtype(d->ty)));
    return QG_OK;
}

int main(int argc, char **argv)
{
    qg_ctx *ctx = NULL;
    tiny_data *d = calloc(1, sizeof *d);
    int rc = 1;
    if (!d || strcmp(QG_VERSION_STRING, qg_version()) != 0) {
        fprintf(stderr, "train_tiny: out of memory or header/library version mismatch\n");
        goto done;
    }
    if (open_device(argc > 1 ? argv[1] : NULL, &ctx) != QG_OK)
        goto done;
    make_data(d);
    if (upload_data(ctx, d) != QG_OK || check_roundtrip(ctx, d) != QG_OK)
        goto done;
    /* Training goes here: build a model, run epochs on d->tx/d->ty and
     * evaluate (include/qgate/model.h, include/qgate/train.h). */
    rc = 0;
done:
    if (d) {
        qg_tensor_free(d->tx);
        qg_tensor_free(d->ty);
    }
    free(d);
    qg_ctx_free(ctx);
    return rc;
}
