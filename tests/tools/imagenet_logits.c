/* tests/tools/imagenet_logits.c: the qgate side of check_torchvision.py.
 *
 *   imagenet_logits ARCH SIZE CLASSES DIR          a fresh model: seeded
 *       init, three SGD steps on seeded random images (so weights and BN
 *       running statistics are not their initial values), saved as
 *       DIR/model.safetensors
 *   imagenet_logits --ckpt FILE DIR                a checkpoint's model
 *
 * then, on 4 seeded random images of the model's input shape, writes
 *   DIR/input.f32        the images [4,C,H,W]
 *   DIR/labels.i32       their labels
 *   DIR/eval.f32         eval-mode logits [4,classes] (running statistics,
 *                        the BN folds qgate uses)
 *   DIR/train.f32        train-mode logits (batch statistics)
 *   DIR/grads.f32        after the train-mode forward, the gradients of the
 *                        mean cross-entropy, every parameter with a
 *                        gradient in model order, concatenated
 *   DIR/grads.txt        their names and element counts, one a line
 * All files raw little-endian. Built by make check, never run by it. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qgate.h"
#include "core/rng.h"
#include "model/graph.h"
#include "model/safetensors.h"
#include "ops/layers.h"
#include "train/trainer.h"

#define N 4

static int put(const char *dir, const char *name, const void *p, size_t bytes)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, 1, bytes, f) != bytes || fclose(f) != 0) {
        fprintf(stderr, "imagenet_logits: cannot write %s\n", path);
        return 1;
    }
    return 0;
}

static void fill(float *x, size_t n, qg_rng *r)
{
    for (size_t i = 0; i < n; i++)
        x[i] = (float)qg__rng_normal(r);
}

#define CHECK(expr)                                                                        \
    do {                                                                                   \
        if ((expr) != QG_OK) {                                                             \
            fprintf(stderr, "imagenet_logits: %s: %s\n", #expr, qg_last_error());          \
            return 1;                                                                      \
        }                                                                                  \
    } while (0)

static int forward_logits(qg_model *m, int train, const float *x, size_t nx, float *out)
{
    CHECK(qg_tensor_write(qg__model_input(m), x, nx * sizeof *x));
    CHECK(qg__model_forward(m, train));
    CHECK(qg_tensor_read(qg__model_logits(m), out, (size_t)N * m->classes * sizeof *out));
    return 0;
}

int main(int argc, char **argv)
{
    const char *ckpt = NULL, *dir;
    if (argc == 4 && !strcmp(argv[1], "--ckpt")) {
        ckpt = argv[2];
        dir = argv[3];
    } else if (argc == 5) {
        dir = argv[4];
    } else {
        fprintf(stderr, "usage: imagenet_logits ARCH SIZE CLASSES DIR\n"
                        "       imagenet_logits --ckpt FILE DIR\n");
        return 2;
    }
    qg_ctx *ctx;
    CHECK(qg_ctx_new(NULL, &ctx));
    qg_model *m = NULL;
    qg_rng rng = {12345};
    if (ckpt) {
        qg_st_file *f;
        CHECK(qg__safetensors_read(ckpt, &f));
        CHECK(qg__model_from_meta(ctx, f, ckpt, 3, 224, 224, 1000, &m));
        qg__safetensors_free(f);
        CHECK(qg_model_load(m, ckpt));
        CHECK(qg__model_setup(m, N));
    } else {
        int size = atoi(argv[2]), classes = atoi(argv[3]);
        qg_model_opts o = {.arch = argv[1], .in_c = 3, .in_h = size, .in_w = size,
                           .classes = classes, .seed = 7};
        CHECK(qg_model_new(ctx, &o, &m));
        qg_optim_cfg oc = {.kind = QG_OPTIM_SGD, .momentum = 0.9f, .weight_decay = 1e-4f,
                           .decay_kinds = QG_DECAY_ALL};
        qg_trainer *t;
        CHECK(qg_trainer_new(m, &oc, N, &t));
        size_t nx = (size_t)N * 3 * size * size;
        float *x = malloc(nx * sizeof *x);
        int32_t lab[N];
        for (int s = 0; s < 3; s++) {
            fill(x, nx, &rng);
            for (int i = 0; i < N; i++)
                lab[i] = (int32_t)(qg__rng_uniform(&rng) * classes) % classes;
            CHECK(qg_trainer_step(t, x, lab, N, 0.05f, NULL, NULL));
        }
        free(x);
        qg_trainer_free(t);
        char path[1024];
        snprintf(path, sizeof path, "%s/model.safetensors", dir);
        CHECK(qg_model_save(m, path));
    }
    size_t nx = (size_t)N * m->in_c * m->in_h * m->in_w, nl = (size_t)N * m->classes;
    float *x = malloc(nx * sizeof *x), *l = malloc(nl * sizeof *l);
    int32_t lab[N];
    fill(x, nx, &rng);
    for (int i = 0; i < N; i++)
        lab[i] = i % m->classes;
    int bad = put(dir, "input.f32", x, nx * sizeof *x) ||
              put(dir, "labels.i32", lab, sizeof lab) || forward_logits(m, 0, x, nx, l) ||
              put(dir, "eval.f32", l, nl * sizeof *l) || forward_logits(m, 1, x, nx, l) ||
              put(dir, "train.f32", l, nl * sizeof *l);
    if (bad)
        return 1;
    /* the mean cross-entropy's gradients after that train-mode forward */
    int64_t sn[1] = {N}, s1[1] = {1};
    qg_tensor *labels, *ls, *cor;
    CHECK(qg_tensor_new(ctx, 1, sn, QG_DTYPE_I32, "labels", &labels));
    CHECK(qg_tensor_write(labels, lab, sizeof lab));
    CHECK(qg_tensor_new(ctx, 1, s1, QG_DTYPE_F32, "loss", &ls));
    CHECK(qg_tensor_new(ctx, 1, s1, QG_DTYPE_I32, "correct", &cor));
    CHECK(qg__softmax_ce(ctx, qg__model_logits(m), labels, 1.0f / N, ls, cor,
                         qg__model_logits_grad(m)));
    CHECK(qg__model_backward(m));
    char path[1024];
    snprintf(path, sizeof path, "%s/grads.f32", dir);
    FILE *g = fopen(path, "wb");
    snprintf(path, sizeof path, "%s/grads.txt", dir);
    FILE *names = fopen(path, "w");
    if (!g || !names) {
        fprintf(stderr, "imagenet_logits: cannot write into %s\n", dir);
        return 1;
    }
    for (int i = 0; i < m->nparams; i++) {
        qg_param *p = m->params[i];
        if (!p->grad)
            continue;
        size_t n = qg_tensor_numel(p->grad);
        float *h = malloc(n * sizeof *h);
        CHECK(qg_tensor_read(p->grad, h, n * sizeof *h));
        fwrite(h, sizeof *h, n, g);
        fprintf(names, "%s %zu\n", p->name, n);
        free(h);
    }
    if (fclose(g) != 0 || fclose(names) != 0) {
        fprintf(stderr, "imagenet_logits: writing the gradients failed\n");
        return 1;
    }
    qg_tensor_free(labels);
    qg_tensor_free(ls);
    qg_tensor_free(cor);
    free(x);
    free(l);
    qg_model_free(m);
    qg_ctx_free(ctx);
    return 0;
}
