/* examples/train_tiny.c: a program that uses libqgate through its installed
 * headers only (<qgate.h>), built with
 *
 *     cc train_tiny.c $(pkg-config --cflags --libs qgate) -o train_tiny
 *
 * It opens a device context, makes a tiny synthetic data set (two classes of
 * 8x8 images: bright top half or bright bottom half), uploads it into device
 * tensors and checks that reading them back gives the same bytes; then it
 * builds a precision-gated ResNet-8 by name and method configuration
 * (4-bit activations, 2 prediction bits, 8-bit weights), trains it with
 * step-level training, evaluates it, saves it and loads the saved copy into
 * a second model that must give the same result. Usage: train_tiny [DEVICE]
 * (index or name substring; default $QGATE_DEVICE, then device 0). Exit
 * status 0 when the model learned the two classes.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

/* Trains a PG ResNet-8 on the set, evaluates it, and checks that a saved
 * and reloaded copy agrees. */
static qg_status train_and_eval(qg_ctx *ctx, const tiny_data *d, const char *path)
{
    qg_method_cfg *methods = NULL;
    qg_model *m = NULL, *m2 = NULL;
    qg_trainer *t = NULL, *t2 = NULL;
    const char *what = "method configuration";
    qg_status st = qg_method_cfg_new(&methods);
    if (st == QG_OK)
        st = qg_method_cfg_enable(methods, "pg", 1);
    if (st == QG_OK)
        st = qg_method_cfg_set(methods, "abits", "4");
    if (st == QG_OK)
        st = qg_method_cfg_set(methods, "pred_bits", "2");
    if (st == QG_OK)
        st = qg_method_cfg_check(methods);
    qg_model_opts mo = {.arch = "resnet8", .in_c = C, .in_h = H, .in_w = W, .classes = 2,
                        .seed = 1, .methods = methods};
    qg_optim_cfg oc = {.kind = QG_OPTIM_SGD, .lr = 0.05f, .momentum = 0.9f,
                       .weight_decay = 1e-4f, .decay_kinds = QG_DECAY_ALL};
    if (st == QG_OK) {
        what = "model";
        st = qg_model_new(ctx, &mo, &m);
    }
    if (st == QG_OK)
        st = qg_trainer_new(m, &oc, N, &t);
    float loss = 0;
    for (int step = 0; step < 40 && st == QG_OK; step++) {
        what = "training step";
        st = qg_trainer_step(t, d->x, d->y, N, 0.05f, &loss, NULL);
    }
    float sum = 0, sum2 = 0;
    int correct = 0, correct2 = 0;
    if (st == QG_OK) {
        what = "evaluation";
        st = qg_trainer_eval(t, d->x, d->y, N, &sum, &correct);
    }
    if (st == QG_OK) {
        printf("%s, %zu parameters: training loss %.4f, accuracy %d/%d\n", "PG ResNet-8",
               qg_model_param_count(m), loss, correct, N);
        what = "save and reload";
        st = qg_model_save(m, path);
    }
    if (st == QG_OK)
        st = qg_model_new(ctx, &mo, &m2);
    if (st == QG_OK)
        st = qg_trainer_new(m2, &oc, N, &t2);
    if (st == QG_OK)
        st = qg_model_load(m2, path);
    if (st == QG_OK)
        st = qg_trainer_eval(t2, d->x, d->y, N, &sum2, &correct2);
    if (st != QG_OK)
        report(ctx, what, st);
    else if (correct < N * 3 / 4 || correct2 != correct || sum2 != sum) {
        fprintf(stderr, "train_tiny: did not learn (%d/%d) or the reloaded model differs "
                "(%d, loss %g vs %g)\n", correct, N, correct2, sum2, sum);
        st = QG_ERR_INVALID_ARG;
    } else {
        printf("reloaded from %s: same loss and accuracy\n", path);
    }
    remove(path);
    qg_trainer_free(t);
    qg_trainer_free(t2);
    qg_model_free(m);
    qg_model_free(m2);
    qg_method_cfg_free(methods);
    return st;
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
    char path[64];
    snprintf(path, sizeof path, "train_tiny-%ld.safetensors", (long)clock());
    if (train_and_eval(ctx, d, path) != QG_OK)
        goto done;
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
