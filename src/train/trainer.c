/* src/train/trainer.c: the training loop and evaluation (qgate/train.h,
 * trainer.h). One step: upload the batch the loader thread prepared,
 * forward, softmax-CE (loss, correct count and logits gradient in one
 * kernel), backward, the auxiliary loss terms, the methods' gradient hooks,
 * optimizer step, the methods' post-step hooks; the two scalars the
 * progress shows are the only reads. Nothing is printed: the caller's
 * callback gets progress, epochs and metrics. */
#include "config.h"

#include <math.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/error.h"
#include "core/fileio.h"
#include "cl/ctx.h"
#include "method/method.h"
#include "model/imagenet.h"
#include "model/qbits.h"
#include "model/vgg.h"
#include "model/resnet.h"
#include "model/safetensors.h"
#include "ops/layers.h"
#include "ops/reduce.h"
#include "tensor/tensor_impl.h"
#include "train/checkpoint.h"
#include "train/dist_train.h"
#include "dist/dist.h"
#include "train/trainer.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

void qg_train_cfg_defaults(qg_train_cfg *c)
{
    memset(c, 0, sizeof *c);
    c->model = "resnet20";
    c->shortcut = 'A';
    c->data = "fashion-mnist";
    c->epochs = 10;
    c->batch = 128;
    c->eval_batch = 128;
    c->eval_act_clip = 6.0f;
    c->seed = 1;
    c->crop_pad = -1;
    c->flip = -1;
    c->optim.kind = QG_OPTIM_SGD;
    c->optim.lr = 0.1f;
    c->optim.momentum = 0.9f;
    c->optim.weight_decay = 1e-4f;
    c->optim.decay_kinds = QG_DECAY_ALL;
    c->optim.beta1 = 0.9f;
    c->optim.beta2 = 0.999f;
    c->optim.eps = 1e-8f;
    c->sched.kind = QG_SCHED_COSINE;
    c->sched.gamma = 0.1f;
    c->sched.power = 1.0f;
}

/* The folder-dataset options of a run (src/data/folder.c). */
static qg_data_opts data_opts(const qg_train_cfg *c)
{
    qg_data_opts o = {c->input_size, c->resize, c->normalize, c->workers, c->crop_scale};
    return o;
}

void qg__data_defaults(const char *name, qg_loader_opts *lo, int *crop_pad, int *flip)
{
    static const struct {
        const char *name;
        float mean[3], std[3];
        int crop, flip;
    } table[] = {
        {"fashion-mnist", {0.2860f}, {0.3530f}, 2, 1},
        {"mnist", {0.1307f}, {0.3081f}, 2, 0},
        {"cifar10", {0.4914f, 0.4822f, 0.4465f}, {0.2470f, 0.2435f, 0.2616f}, 4, 1},
        {"cifar100", {0.5071f, 0.4865f, 0.4409f}, {0.2673f, 0.2564f, 0.2762f}, 4, 1},
        {"folder", {0.485f, 0.456f, 0.406f}, {0.229f, 0.224f, 0.225f}, 0, 1},
    };
    for (size_t i = 0; i < sizeof table / sizeof *table; i++)
        if (strcmp(table[i].name, name) == 0) {
            for (int c = 0; c < 3; c++) {
                lo->mean[c] = table[i].mean[c];
                lo->std[c] = table[i].std[c] > 0 ? table[i].std[c] : 1.0f;
            }
            *crop_pad = table[i].crop;
            *flip = table[i].flip;
            return;
        }
    for (int c = 0; c < 4; c++) {
        lo->mean[c] = 0.5f;
        lo->std[c] = 0.5f;
    }
    *crop_pad = 0;
    *flip = 0;
}

/* ---- --normalize (issue 23) ----------------------------------------------------
 * Which normalisation a run uses: the option, else the dataset's default
 * (folder data: ImageNet's statistics; IDX and CIFAR: the dataset's own,
 * the table above). Recorded in the checkpoint as "normalize"; eval uses
 * the recorded one unless told otherwise. */
static const char *normalize_kind(const char *data, const char *norm)
{
    if (norm)
        return norm;
    return data && strcmp(data, "folder") == 0 ? "imagenet" : "dataset";
}

/* The loader's mean/std for --normalize KIND on data the loader
 * normalises (folder data do it themselves, from qg_data_opts). "dataset"
 * keeps qg__data_defaults' statistics; "imagenet" takes ImageNet's
 * per-channel values (1-channel data: their average, 0.449 and 0.226);
 * "none" leaves pixels in [0, 1]. */
static qg_status apply_normalize(const char *data, const char *kind, int channels,
                                 qg_loader_opts *lo)
{
    static const float in_mean[3] = {0.485f, 0.456f, 0.406f};
    static const float in_std[3] = {0.229f, 0.224f, 0.225f};
    if (data && strcmp(data, "folder") == 0)
        return QG_OK;
    if (strcmp(kind, "dataset") == 0)
        return QG_OK;
    for (int c = 0; c < 4; c++) {
        if (strcmp(kind, "none") == 0) {
            lo->mean[c] = 0.0f;
            lo->std[c] = 1.0f;
        } else if (strcmp(kind, "imagenet") == 0) {
            lo->mean[c] = channels == 1 ? 0.449f : in_mean[c < 3 ? c : 2];
            lo->std[c] = channels == 1 ? 0.226f : in_std[c < 3 ? c : 2];
        } else {
            return qg__error(NULL, QG_ERR_INVALID_ARG, "--normalize '%s': expected imagenet, "
                             "dataset or none", kind);
        }
    }
    return QG_OK;
}

/* After a non-finite loss (issue 23): the first parameter whose gradient
 * or value holds NaN/Inf, checked on the device one tensor at a time
 * (only on this failure path), as " (first non-finite: the gradient of
 * 'layer1.0.conv1.weight')"; "" when every one is finite. */
static void first_nonfinite(qg_model *m, char *buf, size_t cap)
{
    buf[0] = 0;
    for (int i = 0; i < m->nparams; i++) {
        qg_param *p = m->params[i];
        for (int g = 1; g >= 0; g--) {
            qg_tensor *t = g ? p->grad : p->value;
            int ok = 1;
            if (t && qg__tensor_all_finite(m->ctx, t, &ok) == QG_OK && !ok) {
                snprintf(buf, cap, " (first non-finite: the %s of '%s')",
                         g ? "gradient" : "value", p->name);
                return;
            }
        }
    }
}

/* Scalars written by the loss kernel, kept for the whole run. */
typedef struct step_io {
    qg_tensor *labels;      /* I32 [batch] */
    qg_tensor *loss_sum;    /* F32 [1] */
    qg_tensor *correct;     /* I32 [1] */
    qg_tensor *aux;         /* F32 [1]: gating loss */
} step_io;

static void step_io_free(step_io *io)
{
    qg_tensor_free(io->labels);
    qg_tensor_free(io->loss_sum);
    qg_tensor_free(io->correct);
    qg_tensor_free(io->aux);
    memset(io, 0, sizeof *io);
}

static qg_status step_io_new(qg_model *m, int batch, step_io *io)
{
    qg_status st = QG_OK;
    int64_t b[1] = {batch}, one[1] = {1};
    memset(io, 0, sizeof *io);
    QG_TRY(qg_tensor_new(m->ctx, 1, b, QG_DTYPE_I32, "labels", &io->labels));
    QG_TRY(qg_tensor_new(m->ctx, 1, one, QG_DTYPE_F32, "loss_sum", &io->loss_sum));
    QG_TRY(qg_tensor_new(m->ctx, 1, one, QG_DTYPE_I32, "correct", &io->correct));
    QG_TRY(qg_tensor_new(m->ctx, 1, one, QG_DTYPE_F32, "aux_loss", &io->aux));
    return QG_OK;
fail:
    step_io_free(io);
    return st;
}

/* Uploads n samples and runs forward + loss (+ dlogits when train). */
static qg_status run_batch(qg_model *m, step_io *io, const float *img, const int32_t *lab,
                           int n, int train, float *loss_sum, int *correct)
{
    qg_status st = QG_OK;
    qg_tensor *in = NULL, *lv = NULL, *logits = NULL, *dlogits = NULL;
    qg_tensor *x = qg__model_input(m);
    size_t per = qg_tensor_numel(x) / (size_t)m->batch;
    int64_t xs[1] = {(int64_t)(per * (size_t)n)}, ls[1] = {n};
    int64_t gs[2] = {n, m->classes};
    QG_TRY(qg_tensor_view(x, 0, 1, xs, &in));
    QG_TRY(qg_tensor_write(in, img, per * (size_t)n * sizeof(float)));
    QG_TRY(qg_tensor_view(io->labels, 0, 1, ls, &lv));
    QG_TRY(qg_tensor_write(lv, lab, (size_t)n * sizeof(int32_t)));
    m->active = n;
    QG_TRY(qg__model_forward(m, train));
    QG_TRY(qg_tensor_view(qg__model_logits(m), 0, 2, gs, &logits));
    if (train)
        QG_TRY(qg_tensor_view(qg__model_logits_grad(m), 0, 2, gs, &dlogits));
    QG_TRY(qg__softmax_ce(m->ctx, logits, lv, 1.0f / (float)n, io->loss_sum, io->correct,
                          dlogits));
    if (train) {
        QG_TRY(qg__model_backward(m));
        QG_TRY(qg__model_aux_loss(m, io->aux));
    }
    if (loss_sum)
        QG_TRY(qg_tensor_read(io->loss_sum, loss_sum, sizeof *loss_sum));
    if (correct) {
        int32_t c;
        QG_TRY(qg_tensor_read(io->correct, &c, sizeof c));
        *correct = c;
    }
fail:
    qg_tensor_free(in);
    qg_tensor_free(lv);
    qg_tensor_free(logits);
    qg_tensor_free(dlogits);
    return st;
}

/* The methods' metrics of one phase, collected through a sink (the keys
 * and layer names are copied: the model may be freed before they are
 * read). */
typedef struct metric_list {
    qg_metric *v;
    size_t n, cap;
} metric_list;

static void metric_list_clear(metric_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free((char *)l->v[i].key);
        free((char *)l->v[i].layer);
    }
    l->n = 0;
}

static void metric_list_free(metric_list *l)
{
    metric_list_clear(l);
    free(l->v);
    memset(l, 0, sizeof *l);
}

static void metric_add(metric_list *l, const char *key, const char *layer, double value)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 32;
        qg_metric *v = realloc(l->v, cap * sizeof *v);
        if (!v)
            return; /* a metric lost to memory shortage is not worth a failed run */
        l->v = v;
        l->cap = cap;
    }
    char *k = strdup(key), *y = layer ? strdup(layer) : NULL;
    if (!k || (layer && !y)) {
        free(k);
        free(y);
        return;
    }
    l->v[l->n++] = (qg_metric){k, y, value};
}

static void sink_scalar(void *user, const char *key, double value)
{
    metric_add(user, key, NULL, value);
}

static void sink_layer(void *user, const char *key, const char *layer, double value)
{
    metric_add(user, key, layer, value);
}

static qg_status collect_metrics(qg_model *m, const qg_method_cfg *mc, const char *prefix,
                                 metric_list *l)
{
    qg_metric_sink sink = {sink_scalar, sink_layer, l};
    return qg__methods_metrics(m, mc, prefix, &sink);
}

/* The metrics as JSON members: scalars as "key": v, per-layer ones grouped
 * as "key": {"layer": v, ...} in first-seen order. */
static void json_metrics(FILE *f, const metric_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        const qg_metric *x = &l->v[i];
        if (!x->layer) {
            fprintf(f, ", \"%s\": %.*g", x->key, fabs(x->value) >= 1e6 ? 15 : 6, x->value);
            continue;
        }
        int first = 1;
        for (size_t j = 0; j < i; j++)
            if (l->v[j].layer && strcmp(l->v[j].key, x->key) == 0)
                first = 0;
        if (!first)
            continue;
        fprintf(f, ", \"%s\": {", x->key);
        int k = 0;
        for (size_t j = i; j < l->n; j++)
            if (l->v[j].layer && strcmp(l->v[j].key, x->key) == 0)
                fprintf(f, "%s\"%s\": %.6f", k++ ? ", " : "", l->v[j].layer, l->v[j].value);
        fputc('}', f);
    }
}

static void emit(const qg_train_cfg *cfg, const qg_train_event *ev)
{
    if (cfg->callback && qg__dist_rank() == 0) /* data-parallel: rank 0 reports */
        cfg->callback(ev, cfg->user);
}

static void info(const qg_train_cfg *cfg, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void info(const qg_train_cfg *cfg, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    qg_train_event ev = {.kind = QG_TRAIN_EV_INFO, .text = buf};
    emit(cfg, &ev);
}

qg_status qg__evaluate(qg_model *m, const qg_dataset *ds, int batch, const qg_loader_opts *lo,
                       double *loss, double *acc);

/* When a method asks for it (PSGD), evaluates again with the weight
 * quantizers' low-precision weights and adds test_loss_lp / test_acc_lp
 * to the metrics; otherwise does nothing. */
static qg_status evaluate_lowp(qg_model *m, const qg_dataset *ds, int batch,
                               const qg_loader_opts *lo, metric_list *ml, double *loss,
                               double *acc)
{
    double l = 0, a = 0;
    if (!qg__methods_lowp_eval(m->methods))
        return QG_OK;
    m->lowp = 1;
    qg_status st = qg__evaluate(m, ds, batch, lo, &l, &a);
    m->lowp = 0;
    if (st != QG_OK)
        return st;
    metric_add(ml, "test_loss_lp", NULL, l);
    metric_add(ml, "test_acc_lp", NULL, a);
    if (loss)
        *loss = l;
    if (acc)
        *acc = a;
    return QG_OK;
}

qg_status qg__evaluate(qg_model *m, const qg_dataset *ds, int batch, const qg_loader_opts *lo,
                       double *loss, double *acc)
{
    return qg__evaluate_timed(m, ds, batch, lo, loss, acc, NULL);
}

qg_status qg__evaluate_timed(qg_model *m, const qg_dataset *ds, int batch,
                             const qg_loader_opts *lo, double *loss, double *acc,
                             double *seconds)
{
    qg_status st = QG_OK;
    double busy = 0;
    qg_loader *ld = NULL;
    step_io io = {0};
    qg_loader_opts o = *lo;
    o.batch = batch;
    o.shuffle = 0;
    o.crop_pad = 0;
    o.flip = 0;
    o.drop_last = 0;
    if (m->ctx->dist_counts) { /* data-parallel: each process its share */
        o.shard_rank = qg__dist_rank();
        o.shard_count = qg__dist_size();
    }
    QG_TRY(qg__model_setup(m, batch));
    QG_TRY(qg__model_gate_reset(m));
    QG_TRY(step_io_new(m, batch, &io));
    st = qg__loader_new(ds, &o, &ld);
    if (st != QG_OK) {
        qg__error(m->ctx, st, "%s", qg_last_error());
        goto fail;
    }
    QG_TRY(qg__loader_start_epoch(ld, 0));
    qg__model_freeze(m, 1);
    const float *img;
    const int32_t *lab;
    int n;
    double lsum = 0;
    long csum = 0, total = 0;
    while (qg__loader_next(ld, &img, &lab, &n)) {
        float l;
        int c;
        double t0 = now_s();
        QG_TRY(run_batch(m, &io, img, lab, n, 0, &l, &c)); /* (its read-backs wait) */
        busy += now_s() - t0;
        lsum += l;
        csum += c;
        total += n;
    }
    if (m->ctx->dist_counts) {
        double v[3] = {lsum, (double)csum, (double)total};
        QG_TRY(qg__dist_sum_d(v, 3));
        lsum = v[0];
        csum = (long)v[1];
        total = (long)v[2];
    }
    *loss = total ? lsum / (double)total : 0;
    *acc = total ? (double)csum / (double)total : 0;
    if (seconds)
        *seconds = busy;
    if (!isfinite(*loss)) { /* an overflow the weights alone do not show */
        char where[160];
        first_nonfinite(m, where, sizeof where);
        st = qg__error(m->ctx, QG_ERR_INVALID_ARG, "evaluation: the test loss is %g over %ld "
                       "images%s", *loss, total, where[0] ? where : " (the parameters are "
                       "finite: the activations overflow)");
    }
fail:
    qg__model_freeze(m, 0);
    qg__loader_free(ld);
    step_io_free(&io);
    return st;
}

static int depth_of(const char *model)
{
    if (strncmp(model, "resnet", 6) != 0)
        return 0;
    char *end;
    long d = strtol(model + 6, &end, 10);
    return *end == 0 ? (int)d : 0;
}

qg_status qg__model_build(qg_ctx *ctx, const char *arch, char shortcut, int c, int h, int w,
                          int classes, uint64_t seed, const qg_method_cfg *methods,
                          qg_model **out)
{
    if (qg__model_imagenet_known(arch)) {
        qg_imagenet_opts io = {.arch = arch, .in_c = c, .in_h = h, .in_w = w,
                               .classes = classes, .seed = seed, .methods = methods};
        return qg__model_imagenet(ctx, &io, out);
    }
    if (qg__model_vgg_known(arch, NULL)) {
        qg_vgg_opts vo = {.arch = arch, .in_c = c, .in_h = h, .in_w = w, .classes = classes,
                          .seed = seed, .methods = methods};
        return qg__model_vgg(ctx, &vo, out);
    }
    int depth = depth_of(arch);
    if (!depth || (depth - 2) % 6 != 0)
        return qg__error(ctx, QG_ERR_INVALID_ARG, "unknown model '%s' (--model): use resnet20, "
                         "resnet32, resnet44, resnet56, resnet110, resnet18, "
                         "shufflenet_v2_x0_5 or vgg16_bn", arch);
    qg_resnet_opts ro = {.depth = depth, .shortcut = shortcut ? shortcut : 'A', .in_c = c,
                         .in_h = h, .in_w = w, .classes = classes, .seed = seed,
                         .methods = methods};
    return qg__model_resnet_cifar(ctx, &ro, out);
}

/* Checkpoint metadata: the run's position and shapes, then the method
 * configuration (src/method/method.c writes its keys). */
typedef struct meta_buf {
    qg_st_meta v[96];
    size_t n;
} meta_buf;

static void meta_add(void *user, const char *key, const char *value)
{
    meta_buf *b = user;
    if (b->n < sizeof b->v / sizeof *b->v)
        b->v[b->n++] = (qg_st_meta){key, value};
}

/* The running sums of an epoch interrupted mid-way, kept in the
 * checkpoint so the resumed epoch's train_loss/train_acc cover all of it. */
typedef struct epoch_sums {
    double loss, gating;
    long correct, seen;
} epoch_sums;

static qg_status save_model(qg_model *m, const char *arch, char shortcut, const char *data,
                            const qg_method_cfg *mc, const char *path, int with_optimizer,
                            const qg_train_cfg *cfg, int epoch, long batch_in_epoch, long step,
                            const epoch_sums *sums)
{
    char es[4][40];
    char ep[24], bt[24], sp[24], c[16], h[16], w[16], k[16], sc[4], seed[32], lr[32], bsz[16];
    char ranks[16];
    char scratch[QG_METHOD_META_SCRATCH];
    meta_buf b = {.n = 0};
    snprintf(c, sizeof c, "%d", m->in_c);
    snprintf(h, sizeof h, "%d", m->in_h);
    snprintf(w, sizeof w, "%d", m->in_w);
    snprintf(k, sizeof k, "%d", m->classes);
    snprintf(sc, sizeof sc, "%c", shortcut ? shortcut : 'A');
    meta_add(&b, "format", "qgate-checkpoint-1");
    meta_add(&b, "arch", arch);
    meta_add(&b, "shortcut", sc);
    meta_add(&b, "in_channels", c);
    meta_add(&b, "in_height", h);
    meta_add(&b, "in_width", w);
    meta_add(&b, "classes", k);
    if (data)
        meta_add(&b, "dataset", data);
    if (cfg) {
        snprintf(ep, sizeof ep, "%d", epoch);
        snprintf(bt, sizeof bt, "%ld", batch_in_epoch);
        snprintf(sp, sizeof sp, "%ld", step);
        snprintf(seed, sizeof seed, "%llu", (unsigned long long)cfg->seed);
        snprintf(bsz, sizeof bsz, "%d", cfg->batch);
        snprintf(lr, sizeof lr, "%.9g", cfg->optim.lr);
        meta_add(&b, "epoch", ep);
        meta_add(&b, "batch_in_epoch", bt);
        meta_add(&b, "step", sp);
        meta_add(&b, "seed", seed);
        meta_add(&b, "batch_size", bsz);
        snprintf(ranks, sizeof ranks, "%d", qg__dist_size());
        meta_add(&b, "ranks", ranks); /* processes of a data-parallel run */
        meta_add(&b, "optimizer", cfg->optim.kind == QG_OPTIM_ADAM ? "adam" : "sgd");
        meta_add(&b, "base_lr", lr);
        meta_add(&b, "normalize", normalize_kind(data, cfg->normalize));
        meta_add(&b, "keep_last", cfg->keep_last ? "1" : "0");
        if (sums && batch_in_epoch > 0) {
            snprintf(es[0], sizeof es[0], "%.17g", sums->loss);
            snprintf(es[1], sizeof es[1], "%.17g", sums->gating);
            snprintf(es[2], sizeof es[2], "%ld", sums->correct);
            snprintf(es[3], sizeof es[3], "%ld", sums->seen);
            meta_add(&b, "epoch_loss_sum", es[0]);
            meta_add(&b, "epoch_gating_sum", es[1]);
            meta_add(&b, "epoch_correct", es[2]);
            meta_add(&b, "epoch_seen", es[3]);
        }
    }
    qg_method_cfg none;
    if (!mc) {
        qg__method_cfg_init(&none);
        mc = &none;
    }
    qg__method_cfg_to_meta(mc, scratch, meta_add, &b);
    return qg__checkpoint_save(m, path, b.v, b.n, with_optimizer);
}

static qg_status save_checkpoint(qg_model *m, const qg_train_cfg *cfg, const char *path,
                                 int epoch, long batch_in_epoch, long step,
                                 const epoch_sums *sums)
{
    return save_model(m, cfg->model, cfg->shortcut, cfg->data, m->methods, path, 1, cfg,
                      epoch, batch_in_epoch, step, sums);
}

static long meta_long(const qg_st_file *f, const char *key, long def)
{
    const char *v = qg__safetensors_meta(f, key);
    return v ? strtol(v, NULL, 10) : def;
}

static const char *meta_get(void *user, const char *key)
{
    return qg__safetensors_meta(user, key);
}

/* The method configuration that shapes the model (checkpoint metadata vs
 * the run's): a resume with other methods or other integer options (bit
 * widths, partitions, switches) would load the tensors into another model
 * or change what they mean. Targets and coefficients may change. */
static qg_status check_resume_method(qg_ctx *ctx, const qg_st_file *f,
                                     const qg_method_cfg *now, const char *path)
{
    qg_method_cfg had;
    qg_status st = qg__method_cfg_from_meta(&had, meta_get, (void *)f);
    if (st != QG_OK)
        return qg__error(ctx, st, "--resume: %s", qg_last_error());
    char a[256], b[256];
    qg_method_cfg_describe(&had, a, sizeof a);
    qg_method_cfg_describe(now, b, sizeof b);
    if (had.enabled != now->enabled || strcmp(a, b) != 0)
        return qg__error(ctx, QG_ERR_INVALID_ARG, "--resume: checkpoint '%s' was trained with "
                         "%s, this run has %s; pass the same method flags", path, a, b);
    return QG_OK;
}

/* The run that a resume continues must be the same run: architecture,
 * shortcut, data, seed (data order and augmentation) and, mid-epoch, the
 * batch size (which batches were done). */
static qg_status check_resume_run(qg_ctx *ctx, const qg_st_file *f, const qg_train_cfg *c,
                                  const qg_model *m)
{
    const char *path = c->resume_path;
    const char *arch = qg__safetensors_meta(f, "arch"), *sc = qg__safetensors_meta(f, "shortcut");
    const char *data = qg__safetensors_meta(f, "dataset"), *seed = qg__safetensors_meta(f, "seed");
    const char *bs = qg__safetensors_meta(f, "batch_size");
    char want[32];
    if (arch && strcmp(arch, c->model) != 0)
        return qg__error(ctx, QG_ERR_INVALID_ARG, "--resume: checkpoint '%s' holds a %s, this "
                         "run builds --model %s", path, arch, c->model);
    if (sc && sc[0] != (c->shortcut ? c->shortcut : 'A'))
        return qg__error(ctx, QG_ERR_INVALID_ARG, "--resume: checkpoint '%s' has --shortcut %s, "
                         "this run %c", path, sc, c->shortcut ? c->shortcut : 'A');
    if (data && strcmp(data, c->data) != 0)
        return qg__error(ctx, QG_ERR_INVALID_ARG, "--resume: checkpoint '%s' was trained on %s, "
                         "this run uses --data %s", path, data, c->data);
    snprintf(want, sizeof want, "%llu", (unsigned long long)c->seed);
    if (seed && strcmp(seed, want) != 0)
        return qg__error(ctx, QG_ERR_INVALID_ARG, "--resume: checkpoint '%s' was trained with "
                         "--seed %s, this run has --seed %s (the data order would change)",
                         path, seed, want);
    /* data-parallel: the global batch (per-process batch x processes) counts */
    long had = bs ? atol(bs) * meta_long(f, "ranks", 1) : 0, now = (long)c->batch * qg__dist_size();
    if (meta_long(f, "batch_in_epoch", 0) > 0 && bs && had != now &&
        meta_long(f, "ranks", 1) == 1 && qg__dist_size() == 1)
        return qg__error(ctx, QG_ERR_INVALID_ARG, "--resume: checkpoint '%s' stopped inside an "
                         "epoch at --batch %s; resuming with --batch %d would skip or repeat "
                         "images", path, bs, c->batch);
    if (meta_long(f, "batch_in_epoch", 0) > 0 && bs && had != now)
        return qg__error(ctx, QG_ERR_INVALID_ARG, "--resume: checkpoint '%s' stopped inside an "
                         "epoch at a batch of %ld (--batch %s x %ld processes); resuming with "
                         "%ld (--batch %d x %d) would skip or repeat images", path, had, bs,
                         meta_long(f, "ranks", 1), now, c->batch, qg__dist_size());
    const char *kl = qg__safetensors_meta(f, "keep_last");
    if (kl && meta_long(f, "batch_in_epoch", 0) > 0 && (atoi(kl) != 0) != (c->keep_last != 0))
        return qg__error(ctx, QG_ERR_INVALID_ARG, "--resume: checkpoint '%s' stopped inside an "
                         "epoch %s --keep-last; this run %s it (the epoch's batches would "
                         "differ)", path, atoi(kl) ? "with" : "without",
                         c->keep_last ? "has" : "lacks");
    const char *norm = qg__safetensors_meta(f, "normalize");
    const char *want_norm = normalize_kind(c->data, c->normalize);
    if (norm && strcmp(norm, want_norm) != 0)
        return qg__error(ctx, QG_ERR_INVALID_ARG, "--resume: checkpoint '%s' was trained with "
                         "--normalize %s, this run has --normalize %s", path, norm, want_norm);
    (void)m;
    return QG_OK;
}

/* `--init`: weights only, from a run of the same architecture (methods
 * may differ: a float model starts a PSGD or PG run). */
static qg_status init_from(qg_ctx *ctx, const qg_train_cfg *cfg, qg_model *m, qg_st_file **f)
{
    const char *path = cfg->init_path;
    qg_status st = qg__safetensors_read(path, f);
    if (st != QG_OK)
        return qg__error(ctx, st, "--init: %s", qg_last_error());
    const char *arch = qg__safetensors_meta(*f, "arch");
    if (arch && strcmp(arch, cfg->model) != 0)
        return qg__error(ctx, QG_ERR_INVALID_ARG, "--init: '%s' holds a %s, this run builds "
                         "--model %s", path, arch, cfg->model);
    int loaded, kept;
    char names[256];
    st = qg__checkpoint_init(m, *f, path, &loaded, &kept, names, sizeof names);
    if (st != QG_OK)
        return st;
    if (kept)
        info(cfg, "initialised %d tensors from '%s'; %d keep their initial values (%s%s)",
             loaded, path, kept, names, strlen(names) + 1 >= sizeof names ? "..." : "");
    else
        info(cfg, "initialised all %d tensors from '%s' (weights only: fresh optimizer, "
             "schedule from epoch %d)", loaded, path, cfg->start_epoch + 1);
    return QG_OK;
}

/* Whether two paths name one file (the same inode, or the same text when
 * neither exists yet). */
static int same_file(const char *a, const char *b)
{
    struct stat sa, sb;
    if (stat(a, &sa) == 0 && stat(b, &sb) == 0)
        return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
    return strcmp(a, b) == 0;
}

/* A checkpoint is written as a temporary file beside its target, then
 * renamed: try that folder now rather than after an epoch of work. */
static qg_status check_writable_dir(qg_ctx *ctx, const char *path, const char *flag)
{
    char probe[4096];
    struct stat st;
    if (stat(path, &st) == 0 && !S_ISREG(st.st_mode))
        return qg__error(ctx, QG_ERR_INVALID_ARG, "%s '%s' exists and is not a regular file; "
                         "refusing to replace it", flag, path);
    const char *slash = strrchr(path, '/');
    int dlen = slash ? (int)(slash - path) : 0;
    snprintf(probe, sizeof probe, "%.*s%s.qgate-probe.%ld", dlen, path, slash ? "/" : "",
             (long)getpid());
    int fd = open(probe, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd < 0)
        return qg__error(ctx, QG_ERR_IO, "%s '%s': cannot write in its folder '%.*s': %s", flag,
                         path, slash ? dlen : 1, slash ? path : ".", strerror(errno));
    close(fd);
    unlink(probe);
    return QG_OK;
}

qg_status qg_train_run(const qg_train_cfg *cfg)
{
    qg_status st = QG_OK;
    qg_ctx *ctx = NULL;
    qg_dataset *train = NULL, *test = NULL;
    qg_loader *ld = NULL;
    qg_model *m = NULL;
    qg_st_file *resume = NULL, *init = NULL;
    step_io io = {0};
    FILE *metrics = NULL;
    metric_list train_m = {0}, test_m = {0};
    qg_dtrain dt = {.size = 1};
    /* a completed copy of the methods (derived values set) */
    qg_method_cfg mcv;
    const qg_method_cfg *mc = &mcv;
    if (cfg->methods) {
        mcv = *cfg->methods;
        if (qg__method_cfg_finish(&mcv) != QG_OK)
            return QG_ERR_INVALID_ARG;
    } else {
        qg__method_cfg_init(&mcv);
    }
    if (cfg->resume_path && cfg->init_path)
        return qg__error(NULL, QG_ERR_INVALID_ARG, "--resume continues a run and --init starts "
                         "a new one from weights; give one of them");
    if (cfg->start_epoch && !cfg->init_path)
        return qg__error(NULL, QG_ERR_INVALID_ARG, "--start-epoch needs --init (a resumed run "
                         "continues at the checkpoint's epoch)");
    if (cfg->kbits && cfg->resume_path)
        return qg__error(NULL, QG_ERR_INVALID_ARG, "--kbits changes the bits a run starts "
                         "with; a resumed run keeps its checkpoint's");
    qg_ctx_opts co = {.device = cfg->device, .verbose = cfg->verbose};
    QG_TRY(qg__dtrain_begin(cfg, &dt, &co.device));
    QG_TRY(qg_ctx_new(&co, &ctx));
    const qg_device_info *dev = qg_ctx_device(ctx);
    info(cfg, "device [%d] %s (%s)", dev->index, dev->name, dev->platform);

    qg_data_opts dopts = data_opts(cfg);
    QG_TRY(qg__dataset_load_opts(cfg->data, cfg->data_dir, 1, &dopts, &train));
    QG_TRY(qg__dataset_load_opts(cfg->data, cfg->data_dir, 0, &dopts, &test));
    if (cfg->limit_train)
        qg__dataset_truncate(train, cfg->limit_train);
    if (cfg->limit_test)
        qg__dataset_truncate(test, cfg->limit_test);
    if (qg__dataset_channels(train) != qg__dataset_channels(test) ||
        qg__dataset_height(train) != qg__dataset_height(test) ||
        qg__dataset_width(train) != qg__dataset_width(test) ||
        qg__dataset_classes(train) != qg__dataset_classes(test)) {
        st = qg__error(ctx, QG_ERR_SHAPE, "dataset '%s': training images are %dx%dx%d (%d "
                       "classes) but test images %dx%dx%d (%d classes)", cfg->data,
                       qg__dataset_channels(train), qg__dataset_height(train),
                       qg__dataset_width(train), qg__dataset_classes(train),
                       qg__dataset_channels(test), qg__dataset_height(test),
                       qg__dataset_width(test), qg__dataset_classes(test));
        goto fail;
    }
    if (qg__dataset_count(train) < (size_t)cfg->batch * (size_t)dt.size) {
        st = qg__error(ctx, QG_ERR_INVALID_ARG, "--batch %d x %d processes is larger than the "
                       "%zu training samples", cfg->batch, dt.size, qg__dataset_count(train));
        goto fail;
    }

    qg_loader_opts lo = {.batch = cfg->batch, .shuffle = 1, .drop_last = !cfg->keep_last,
                         .seed = cfg->seed};
    int crop, flip;
    qg__data_defaults(cfg->data, &lo, &crop, &flip);
    QG_TRY(apply_normalize(cfg->data, normalize_kind(cfg->data, cfg->normalize),
                           qg__dataset_channels(train), &lo));
    lo.crop_pad = cfg->crop_pad >= 0 ? cfg->crop_pad : crop;
    lo.flip = cfg->flip >= 0 ? cfg->flip : flip;
    lo.workers = cfg->workers;
    lo.shard_rank = dt.rank; /* data-parallel: this process's share of each batch */
    lo.shard_count = dt.size;
    QG_TRY(qg__loader_new(train, &lo, &ld));

    QG_TRY(qg__model_build(ctx, cfg->model, cfg->shortcut, qg__dataset_channels(train),
                           qg__dataset_height(train), qg__dataset_width(train),
                           qg__dataset_classes(train), cfg->seed, mc, &m));
    m->dense_gates = cfg->dense_gates;
    /* the evaluation's size first, so a batch the device cannot hold is
     * named before an epoch of training */
    if (cfg->eval_batch != cfg->batch && (st = qg__model_setup(m, cfg->eval_batch)) != QG_OK) {
        qg__error_append(ctx, "lower --eval-batch %d", cfg->eval_batch);
        goto fail;
    }
    if ((st = qg__model_setup(m, cfg->batch)) != QG_OK) {
        qg__error_append(ctx, "lower --batch %d", cfg->batch);
        goto fail;
    }
    /* a method may restrict weight decay to some parameter kinds (CG) */
    qg_optim_cfg optim = cfg->optim;
    if (optim.decay_kinds == QG_DECAY_ALL)
        optim.decay_kinds = qg__methods_decay_kinds(mc, QG_DECAY_ALL);
    QG_TRY(qg__optim_ensure_state(m, &optim));
    QG_TRY(step_io_new(m, cfg->batch, &io));

    int start_epoch = 0;
    long skip_batches = 0, step = 0;
    epoch_sums resumed = {0, 0, 0, 0};
    if (cfg->resume_path) {
        st = qg__safetensors_read(cfg->resume_path, &resume);
        if (st != QG_OK) {
            qg__error(ctx, st, "--resume: %s", qg_last_error());
            goto fail;
        }
        QG_TRY(check_resume_method(ctx, resume, mc, cfg->resume_path));
        QG_TRY(check_resume_run(ctx, resume, cfg, m));
        QG_TRY(qg__checkpoint_load(m, resume, cfg->resume_path, 1));
        start_epoch = (int)meta_long(resume, "epoch", 0);
        skip_batches = meta_long(resume, "batch_in_epoch", 0);
        step = meta_long(resume, "step", 0);
        if (skip_batches > 0 && qg__safetensors_meta(resume, "epoch_seen")) {
            /* the interrupted epoch's sums: its metrics cover all of it */
            const char *v = qg__safetensors_meta(resume, "epoch_loss_sum");
            resumed.loss = v ? strtod(v, NULL) : 0;
            v = qg__safetensors_meta(resume, "epoch_gating_sum");
            resumed.gating = v ? strtod(v, NULL) : 0;
            resumed.correct = meta_long(resume, "epoch_correct", 0);
            resumed.seen = meta_long(resume, "epoch_seen", 0);
        }
        if (start_epoch >= cfg->epochs) {
            info(cfg, "'%s' already holds %d epochs of training (--epochs %d): nothing to do; "
                 "raise --epochs to train on", cfg->resume_path, start_epoch, cfg->epochs);
            goto fail; /* st is QG_OK */
        }
        info(cfg, "resumed from '%s' at epoch %d, batch %ld (step %ld)", cfg->resume_path,
             start_epoch + 1, skip_batches, step);
    } else if (cfg->init_path) {
        QG_TRY(init_from(ctx, cfg, m, &init));
        start_epoch = cfg->start_epoch;
    }
    if (cfg->kbits) {
        int set;
        QG_TRY(qg__qbits_apply_spec(m, cfg->kbits, &set));
        info(cfg, "--kbits set %d of %d quantizers", set, qg__qbits_count(m));
    }
    QG_TRY(qg__dtrain_attach(&dt, m, cfg->sync_bn)); /* rank 0's weights everywhere */
    if (start_epoch >= cfg->epochs && !cfg->resume_path) {
        st = qg__error(ctx, QG_ERR_INVALID_ARG, "--start-epoch %d leaves nothing to train with "
                       "--epochs %d", start_epoch, cfg->epochs);
        goto fail;
    }
    /* Output folders are made before the first epoch, so a path that can
     * never be written fails now rather than after an epoch of work. */
    if (cfg->checkpoint_path && cfg->metrics_path &&
        same_file(cfg->checkpoint_path, cfg->metrics_path)) {
        st = qg__error(ctx, QG_ERR_INVALID_ARG, "--metrics and --checkpoint name the same "
                       "file '%s'; one would overwrite the other", cfg->metrics_path);
        goto fail;
    }
    if (cfg->checkpoint_path && qg__dtrain_leader(&dt)) {
        QG_TRY(qg__mkdirs_parent(ctx, cfg->checkpoint_path));
        QG_TRY(check_writable_dir(ctx, cfg->checkpoint_path, "--checkpoint"));
    }
    if (cfg->metrics_path && qg__dtrain_leader(&dt)) {
        QG_TRY(qg__mkdirs_parent(ctx, cfg->metrics_path));
        metrics = fopen(cfg->metrics_path, cfg->resume_path ? "a" : "w");
        if (!metrics) {
            st = qg__error(ctx, QG_ERR_IO, "cannot open --metrics file '%s': %s",
                           cfg->metrics_path, strerror(errno));
            goto fail;
        }
    }

    qg_schedule sched = cfg->sched;
    sched.epochs = cfg->epochs;
    sched.steps_per_epoch = (long)qg__loader_batches_per_epoch(ld);
    {
        char desc[256];
        qg_method_cfg_describe(mc, desc, sizeof desc);
        info(cfg, "%s (%s) on %s: %zu train / %zu test images %dx%dx%d, %zu parameters, %d "
             "epochs of %ld batches of %d", cfg->model, desc, cfg->data,
             qg__dataset_count(train), qg__dataset_count(test), m->in_c, m->in_h, m->in_w,
             qg__model_param_count(m), cfg->epochs, sched.steps_per_epoch, cfg->batch);
        /* the method's description names its starting widths; --init,
         * --resume or --kbits may have brought others */
        if (qg__qbits_count(m) && (cfg->init_path || cfg->resume_path || cfg->kbits)) {
            char bits[192];
            QG_TRY(qg__qbits_summary(m, bits, sizeof bits));
            info(cfg, "quantizer widths in use: %s", bits);
        }
        if (dt.size > 1)
            info(cfg, "data-parallel: %d processes x batch %d = effective batch %d; lr %g as "
                 "given (not scaled with the batch)%s", dt.size, cfg->batch,
                 dt.size * cfg->batch, (double)cfg->optim.lr,
                 cfg->sync_bn ? "; batch norm over the global batch (--sync-bn)"
                              : "; batch norm per process");
    }

    double run_t0 = now_s();
    m->run_epochs = cfg->epochs;
    for (int epoch = start_epoch; epoch < cfg->epochs; epoch++) {
        QG_TRY(qg__loader_start_epoch(ld, epoch));
        QG_TRY(qg__model_gate_reset(m));
        QG_TRY(qg__methods_reset_metrics(m, mc));
        QG_TRY(qg__methods_epoch_begin(m, mc, epoch));
        const float *img;
        const int32_t *lab;
        int n;
        long b = 0;
        double lsum = resumed.loss, asum = resumed.gating, t0 = now_s(), last_print = 0;
        long csum = resumed.correct, seen = resumed.seen, seen0 = resumed.seen;
        resumed = (epoch_sums){0, 0, 0, 0};
        while (qg__loader_next(ld, &img, &lab, &n)) {
            if (b < skip_batches) { /* resume mid-epoch: same order, skip what was done */
                b++;
                continue;
            }
            float lr = qg__schedule_lr(&sched, cfg->optim.lr, epoch, b);
            float l, aux = 0;
            int c;
            /* --keep-last: the partial batch runs in a model set up for its
             * n samples (batch-norm statistics, scales, gradients over
             * exactly those); the next full batch sets it back */
            if ((st = qg__model_setup(m, n < cfg->batch ? n : cfg->batch)) != QG_OK) {
                qg__error_append(ctx, "for the last, partial batch of %d (--keep-last)", n);
                goto fail;
            }
            QG_TRY(run_batch(m, &io, img, lab, n, 1, &l, &c));
            if (m->naux > 0)
                QG_TRY(qg_tensor_read(io.aux, &aux, sizeof aux));
            /* checked before the step, so the report names the tensor
             * that went first, not every one the step spread it to */
            if (!isfinite(l) || !isfinite(aux)) {
                char where[160];
                first_nonfinite(m, where, sizeof where);
                st = qg__error(ctx, QG_ERR_INVALID_ARG, "training diverged: %s is %g at epoch "
                               "%d batch %ld%s (lower --lr?)", isfinite(l) ? "the gating loss"
                               : "loss", isfinite(l) ? aux : l, epoch + 1, b + 1, where);
                goto fail;
            }
            QG_TRY(qg__dtrain_grads(&dt, m));
            step++;
            QG_TRY(qg__methods_grad_hook(m, mc));
            QG_TRY(qg__optim_step(m, &optim, lr, step));
            QG_TRY(qg__methods_post_step(m, mc));
            double now = now_s();
            /* data-parallel: the global batch's sums; rank 0 decides when
             * to report (the progress text may gather gate counters) */
            double red[6] = {l, c, n, cfg->stop && *cfg->stop,
                             dt.rank == 0 && cfg->callback && now - last_print > 0.5,
                             (double)aux * n};
            QG_TRY(qg__dtrain_sum(&dt, red, 6));
            lsum += red[0];
            csum += (long)red[1];
            seen += (long)red[2];
            asum += red[5];
            b++;
            if (red[4] > 0 || (cfg->callback && b == sched.steps_per_epoch)) {
                char sp[128];
                qg__methods_progress(m, mc, sp, sizeof sp);
                double ips = (seen - seen0) / (now - t0);
                qg_train_event ev = {
                    .kind = QG_TRAIN_EV_PROGRESS, .text = sp, .epoch = epoch + 1,
                    .epochs = cfg->epochs, .batch = b, .batches = sched.steps_per_epoch,
                    .train_loss = lsum / seen, .train_acc = (double)csum / seen, .lr = lr,
                    .train_gating_loss = asum / seen, .gating = m->naux > 0,
                    .img_per_s = ips,
                    .eta_s = ((double)(sched.steps_per_epoch - b) +
                              (double)(cfg->epochs - epoch - 1) * sched.steps_per_epoch) *
                             cfg->batch / ips};
                emit(cfg, &ev);
                last_print = now;
            }
            if (red[3] > 0) {
                const char *path = cfg->checkpoint_path ? cfg->checkpoint_path
                                                        : "qgate-interrupted.safetensors";
                QG_TRY(qg_ctx_finish(ctx));
                QG_TRY(qg__dtrain_buffers(&dt, m));
                epoch_sums es = {lsum, asum, csum, seen};
                if (qg__dtrain_leader(&dt))
                    QG_TRY(save_checkpoint(m, cfg, path, epoch, b, step, &es));
                info(cfg, "interrupted; checkpoint written to '%s' (resume with --resume %s)",
                     path, path);
                st = qg__error(ctx, QG_ERR_INTERRUPTED, "interrupted at epoch %d batch %ld",
                               epoch + 1, b);
                goto fail;
            }
        }
        skip_batches = 0;
        QG_TRY(qg_ctx_finish(ctx));
        QG_TRY(qg__methods_epoch_end(m, mc, epoch));
        QG_TRY(qg__dtrain_buffers(&dt, m)); /* running statistics agreed */
        double train_s = now_s() - t0;
        double ips = (seen - seen0) / (train_s > 0 ? train_s : 1);
        /* the training phase's metrics, taken before evaluation resets them */
        metric_list_clear(&train_m);
        metric_list_clear(&test_m);
        QG_TRY(collect_metrics(m, mc, "train_", &train_m));
        QG_TRY(qg__dtrain_metrics(&dt, train_m.v, train_m.n));
        double test_loss = 0, test_acc = 0;
        QG_TRY(qg__evaluate(m, test, cfg->eval_batch, &lo, &test_loss, &test_acc));
        QG_TRY(collect_metrics(m, mc, "", &test_m));
        QG_TRY(qg__dtrain_metrics(&dt, test_m.v, test_m.n));
        QG_TRY(evaluate_lowp(m, test, cfg->eval_batch, &lo, &test_m, NULL, NULL));
        QG_TRY(qg__model_setup(m, cfg->batch));
        char sp[128];
        qg__methods_progress(m, mc, sp, sizeof sp);
        double lr0 = qg__schedule_lr(&sched, cfg->optim.lr, epoch, 0);
        if (metrics) {
            fprintf(metrics, "{\"epoch\": %d, \"train_loss\": %.6f, \"train_acc\": %.6f, "
                    "\"test_loss\": %.6f, \"test_acc\": %.6f, \"img_per_s\": %.2f, \"lr\": %.6g, "
                    "\"epoch_seconds\": %.3f, \"elapsed_seconds\": %.3f", epoch + 1,
                    seen ? lsum / seen : 0, seen ? (double)csum / seen : 0, test_loss, test_acc,
                    ips, lr0, train_s, now_s() - run_t0);
            if (m->naux > 0)
                fprintf(metrics, ", \"train_gating_loss\": %.6f, \"train_total_loss\": %.6f",
                        seen ? asum / seen : 0, seen ? (lsum + asum) / seen : 0);
            fprintf(metrics, ", \"bad_files\": %zu",
                    qg__dataset_bad_files(train) + qg__dataset_bad_files(test));
            json_metrics(metrics, &train_m);
            json_metrics(metrics, &test_m);
            fputs("}\n", metrics);
            if (fflush(metrics) != 0 || ferror(metrics)) {
                st = qg__error(ctx, QG_ERR_IO, "writing --metrics file '%s': %s",
                               cfg->metrics_path, strerror(errno));
                goto fail;
            }
        }
        if (cfg->callback) {
            /* both phases' metrics in one list: train_* then the test ones */
            metric_list all = {0};
            for (size_t i = 0; i < train_m.n; i++)
                metric_add(&all, train_m.v[i].key, train_m.v[i].layer, train_m.v[i].value);
            for (size_t i = 0; i < test_m.n; i++)
                metric_add(&all, test_m.v[i].key, test_m.v[i].layer, test_m.v[i].value);
            qg_train_event ev = {
                .kind = QG_TRAIN_EV_EPOCH, .text = sp, .epoch = epoch + 1,
                .epochs = cfg->epochs, .batch = b, .batches = sched.steps_per_epoch,
                .train_loss = seen ? lsum / seen : 0, .train_acc = seen ? (double)csum / seen : 0,
                .train_gating_loss = seen ? asum / seen : 0, .gating = m->naux > 0,
                .lr = lr0, .img_per_s = ips, .test_loss = test_loss, .test_acc = test_acc,
                .epoch_seconds = train_s, .elapsed_seconds = now_s() - run_t0,
                .metrics = all.v, .nmetrics = all.n};
            emit(cfg, &ev);
            metric_list_free(&all);
        }
        if (cfg->checkpoint_path && qg__dtrain_leader(&dt))
            QG_TRY(save_checkpoint(m, cfg, cfg->checkpoint_path, epoch + 1, 0, step, NULL));
    }
    if (dt.size > 1 && dt.grad_steps)
        info(cfg, "gradient allreduce: %.2f ms and %.2f MB a step (%zu floats, %d processes)",
             1e3 * dt.grad_s / dt.grad_steps, dt.grad_bytes / dt.grad_steps / 1e6, dt.floats,
             dt.size);
fail:
    if (metrics && fclose(metrics) != 0 && st == QG_OK)
        st = qg__error(ctx, QG_ERR_IO, "closing --metrics file '%s': %s", cfg->metrics_path,
                       strerror(errno));
    if (st != QG_OK && ctx && qg_ctx_last_error(ctx)[0] == 0)
        qg__error(ctx, st, "%s", qg_last_error());
    qg__dtrain_end(&dt, st); /* data-parallel: a failed process ends the job */
    metric_list_free(&train_m);
    metric_list_free(&test_m);
    qg__safetensors_free(resume);
    qg__safetensors_free(init);
    step_io_free(&io);
    qg__model_free(m);
    qg__loader_free(ld);
    qg__dataset_free(train);
    qg__dataset_free(test);
    qg_ctx_free(ctx);
    return st;
}

qg_status qg__model_from_meta(qg_ctx *ctx, const qg_st_file *f, const char *path, int c,
                              int h, int w, int k, qg_model **out)
{
    *out = NULL;
    const char *arch = qg__safetensors_meta(f, "arch");
    const char *sc = qg__safetensors_meta(f, "shortcut");
    if (!arch)
        return qg__error(ctx, QG_ERR_FORMAT, "checkpoint '%s' has no qgate 'arch' metadata",
                         path);
    qg_method_cfg mc;
    qg_status st = qg__method_cfg_from_meta(&mc, meta_get, (void *)f);
    if (st != QG_OK)
        return qg__error(ctx, st, "checkpoint '%s': %s", path, qg_last_error());
    return qg__model_build(ctx, arch, sc ? sc[0] : 'A', (int)meta_long(f, "in_channels", c),
                           (int)meta_long(f, "in_height", h), (int)meta_long(f, "in_width", w),
                           (int)meta_long(f, "classes", k), 0, &mc, out);
}

/* The checkpoint's model with PSGD's grid quantizers at cfg->eval_wbits
 * bits: post-training quantization of a float model (or another grid for
 * a PSGD one). Quantized-training checkpoints already compute with their
 * own quantizers. */
static qg_status model_from_meta_lowp(qg_ctx *ctx, const qg_st_file *f, const char *path,
                                      int c, int h, int w, int k, const qg_train_cfg *cfg,
                                      qg_model **out)
{
    const char *arch = qg__safetensors_meta(f, "arch");
    const char *sc = qg__safetensors_meta(f, "shortcut");
    qg_method_cfg mc;
    qg_status st = qg__method_cfg_from_meta(&mc, meta_get, (void *)f);
    if (st != QG_OK)
        return qg__error(ctx, st, "checkpoint '%s': %s", path, qg_last_error());
    if (qg__method_on(&mc, QG_METHOD_QUANT) || qg__method_on(&mc, QG_METHOD_PG))
        return qg__error(ctx, QG_ERR_INVALID_ARG, "checkpoint '%s' was trained quantized; "
                         "--wbits at evaluation puts float weights on a grid", path);
    char b[16];
    snprintf(b, sizeof b, "%d", cfg->eval_wbits);
    if ((st = qg_method_cfg_set(&mc, "psgd", "1")) != QG_OK ||
        (st = qg_method_cfg_set(&mc, "wbits", b)) != QG_OK ||
        (cfg->eval_first_last &&
         (st = qg_method_cfg_set(&mc, "first_last_quant", "1")) != QG_OK))
        return qg__error(ctx, st, "--wbits %d: %s", cfg->eval_wbits, qg_last_error());
    return qg__model_build(ctx, arch, sc ? sc[0] : 'A', (int)meta_long(f, "in_channels", c),
                           (int)meta_long(f, "in_height", h), (int)meta_long(f, "in_width", w),
                           (int)meta_long(f, "classes", k), 0, &mc, out);
}

qg_status qg_eval_run(const qg_train_cfg *cfg, const char *checkpoint, qg_eval_result *out)
{
    qg_status st = QG_OK;
    qg_ctx *ctx = NULL;
    qg_dataset *test = NULL;
    qg_model *m = NULL;
    qg_st_file *f = NULL;
    metric_list ml = {0};
    memset(out, 0, sizeof *out);

    QG_TRY(qg__safetensors_read(checkpoint, &f));
    const char *arch = qg__safetensors_meta(f, "arch");
    const char *data = qg__safetensors_meta(f, "dataset");
    if (!arch) {
        st = qg__error(NULL, QG_ERR_FORMAT, "checkpoint '%s' has no qgate 'arch' metadata",
                       checkpoint);
        goto fail;
    }
    qg_ctx_opts co = {.device = cfg->device, .verbose = cfg->verbose};
    QG_TRY(qg_ctx_new(&co, &ctx));
    const char *dname = cfg->data ? cfg->data : (data ? data : "fashion-mnist");
    /* the normalisation training used, unless --normalize says otherwise */
    qg_train_cfg ecfg = *cfg;
    if (!ecfg.normalize)
        ecfg.normalize = qg__safetensors_meta(f, "normalize");
    qg_data_opts dopts = data_opts(&ecfg);
    QG_TRY(qg__dataset_load_opts(dname, cfg->data_dir, 0, &dopts, &test));
    if (cfg->limit_test)
        qg__dataset_truncate(test, cfg->limit_test);
    int c = (int)meta_long(f, "in_channels", qg__dataset_channels(test));
    int h = (int)meta_long(f, "in_height", qg__dataset_height(test));
    int w = (int)meta_long(f, "in_width", qg__dataset_width(test));
    int k = (int)meta_long(f, "classes", qg__dataset_classes(test));
    if (c != qg__dataset_channels(test) || h != qg__dataset_height(test) ||
        w != qg__dataset_width(test)) {
        st = qg__error(ctx, QG_ERR_SHAPE, "checkpoint '%s' expects %dx%dx%d inputs, dataset "
                       "'%s' has %dx%dx%d", checkpoint, c, h, w, dname,
                       qg__dataset_channels(test), qg__dataset_height(test),
                       qg__dataset_width(test));
        goto fail;
    }
    if (cfg->eval_wbits > 0) {
        QG_TRY(model_from_meta_lowp(ctx, f, checkpoint, c, h, w, k, cfg, &m));
    } else {
        QG_TRY(qg__model_from_meta(ctx, f, checkpoint, c, h, w, k, &m));
    }
    QG_TRY(qg__checkpoint_load(m, f, checkpoint, 0));
    if (cfg->kbits) /* evaluate the checkpoint at other bits (a what-if) */
        QG_TRY(qg__qbits_apply_spec(m, cfg->kbits, NULL));
    m->dense_gates = cfg->dense_gates;
    qg_loader_opts lo = {0};
    int crop, flip;
    qg__data_defaults(dname, &lo, &crop, &flip);
    QG_TRY(apply_normalize(dname, normalize_kind(dname, ecfg.normalize),
                           qg__dataset_channels(test), &lo));
    double secs = 0;
    QG_TRY(qg__evaluate_timed(m, test, cfg->eval_batch, &lo, &out->loss, &out->acc, &secs));
    out->img_per_s = secs > 0 ? (double)qg__dataset_count(test) / secs : 0;
    QG_TRY(collect_metrics(m, m->methods, "", &ml));
    out->lowp = qg__methods_lowp_eval(m->methods);
    if (cfg->eval_abits) {
        if (!out->lowp) {
            st = qg__error(ctx, QG_ERR_INVALID_ARG, "--abits quantizes the activations of the "
                           "low-precision evaluation, and checkpoint '%s' has none: give "
                           "-w/--wbits N", checkpoint);
            goto fail;
        }
        if (cfg->eval_abits < 2 || cfg->eval_abits > 16 || !(cfg->eval_act_clip > 0)) {
            st = qg__error(ctx, QG_ERR_INVALID_ARG, "--abits %d --act-clip %g: bits 2..16 "
                           "and a clip multiple above 0", cfg->eval_abits,
                           (double)cfg->eval_act_clip);
            goto fail;
        }
        m->lowp_abits = cfg->eval_abits;
        m->lowp_act_clip = cfg->eval_act_clip;
        out->lowp_abits = cfg->eval_abits;
        out->act_clip = cfg->eval_act_clip;
    }
    QG_TRY(evaluate_lowp(m, test, cfg->eval_batch, &lo, &ml, &out->loss_lp, &out->acc_lp));
    if (out->lowp) {
        char b[16] = "";
        if (qg_method_cfg_get(m->methods, "wbits", b, sizeof b) == QG_OK)
            out->lowp_bits = atoi(b);
    }
    snprintf(out->arch, sizeof out->arch, "%s", arch);
    const char *ep = qg__safetensors_meta(f, "epoch");
    snprintf(out->epoch, sizeof out->epoch, "%s", ep ? ep : "?");
    out->images = qg__dataset_count(test);
    out->metrics = ml.v;
    out->nmetrics = ml.n;
    ml = (metric_list){0};
fail:
    if (st != QG_OK && ctx && qg_ctx_last_error(ctx)[0] == 0)
        qg__error(ctx, st, "%s", qg_last_error());
    metric_list_free(&ml);
    qg__safetensors_free(f);
    qg__model_free(m);
    qg__dataset_free(test);
    qg_ctx_free(ctx);
    return st;
}

void qg_eval_result_free(qg_eval_result *r)
{
    if (!r)
        return;
    metric_list l = {r->metrics, r->nmetrics, r->nmetrics};
    metric_list_free(&l);
    r->metrics = NULL;
    r->nmetrics = 0;
}

/* ---- the model API (qgate/train.h) ------------------------------------------------ */

qg_status qg_model_new(qg_ctx *ctx, const qg_model_opts *o, qg_model **out)
{
    *out = NULL;
    return qg__model_build(ctx, o->arch ? o->arch : "resnet20", o->shortcut, o->in_c, o->in_h,
                           o->in_w, o->classes, o->seed, o->methods, out);
}

void qg_model_free(qg_model *m)
{
    qg__model_free(m);
}

size_t qg_model_param_count(const qg_model *m)
{
    return qg__model_param_count(m);
}

qg_status qg_model_load(qg_model *m, const char *path)
{
    qg_st_file *f = NULL;
    qg_status st = qg__safetensors_read(path, &f);
    if (st == QG_OK)
        st = qg__checkpoint_load(m, f, path, 0);
    qg__safetensors_free(f);
    return st;
}

qg_status qg_model_save(qg_model *m, const char *path)
{
    return save_model(m, m->arch, m->shortcut, NULL, m->methods, path, 0, NULL, 0, 0, 0, NULL);
}

/* ---- step-level training (qgate/train.h) ------------------------------------------- */

struct qg_trainer {
    qg_model *m;
    qg_optim_cfg optim;
    int batch;
    long step;
    step_io io;
};

qg_status qg_trainer_new(qg_model *m, const qg_optim_cfg *optim, int batch, qg_trainer **out)
{
    qg_status st = QG_OK;
    *out = NULL;
    if (batch < 1)
        return qg__error(m->ctx, QG_ERR_INVALID_ARG, "trainer batch %d: must be at least 1",
                         batch);
    qg_trainer *t = calloc(1, sizeof *t);
    if (!t)
        return qg__error(m->ctx, QG_ERR_NOMEM, "out of memory");
    t->m = m;
    t->optim = *optim;
    if (t->optim.decay_kinds == QG_DECAY_ALL)
        t->optim.decay_kinds = qg__methods_decay_kinds(m->methods, QG_DECAY_ALL);
    t->batch = batch;
    QG_TRY(qg__model_setup(m, batch));
    QG_TRY(qg__optim_ensure_state(m, &t->optim));
    QG_TRY(step_io_new(m, batch, &t->io));
    *out = t;
    return QG_OK;
fail:
    free(t);
    return st;
}

void qg_trainer_free(qg_trainer *t)
{
    if (!t)
        return;
    step_io_free(&t->io);
    free(t);
}

/* A training step on fewer samples than the batch runs in a model set up
 * for them (batch-norm statistics and gradients over exactly those, as
 * --keep-last); evaluation runs in place (only the real rows count). */
static qg_status trainer_check(qg_trainer *t, int n, int train)
{
    if (n < 1 || n > t->batch)
        return qg__error(t->m->ctx, QG_ERR_INVALID_ARG, "a batch of %d samples: the trainer "
                         "takes 1..%d", n, t->batch);
    return qg__model_setup(t->m, train ? n : t->batch);
}

qg_status qg_trainer_step(qg_trainer *t, const float *images, const int32_t *labels, int n,
                          float lr, float *loss, int *correct)
{
    qg_status st = trainer_check(t, n, 1);
    float l;
    if (st == QG_OK)
        st = run_batch(t->m, &t->io, images, labels, n, 1, &l, correct);
    if (st == QG_OK)
        st = qg__methods_grad_hook(t->m, t->m->methods);
    if (st == QG_OK)
        st = qg__optim_step(t->m, &t->optim, lr, ++t->step);
    if (st == QG_OK)
        st = qg__methods_post_step(t->m, t->m->methods);
    if (st == QG_OK && loss)
        *loss = l / (float)n;
    return st;
}

qg_status qg__trainer_grad(qg_trainer *t, const float *images, const int32_t *labels, int n,
                          float *loss)
{
    qg_status st = trainer_check(t, n, 1);
    float l;
    if (st == QG_OK)
        st = run_batch(t->m, &t->io, images, labels, n, 1, &l, NULL);
    if (st == QG_OK)
        st = qg__methods_grad_hook(t->m, t->m->methods);
    if (st == QG_OK && loss)
        *loss = l / (float)n;
    return st;
}

qg_status qg_trainer_eval(qg_trainer *t, const float *images, const int32_t *labels, int n,
                          float *loss_sum, int *correct)
{
    qg_status st = trainer_check(t, n, 0);
    return st == QG_OK ? run_batch(t->m, &t->io, images, labels, n, 0, loss_sum, correct) : st;
}
