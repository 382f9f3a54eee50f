/* src/train/trainer.c: the training loop (see trainer.h). One step:
 * upload the batch the loader thread prepared, forward, softmax-CE (loss,
 * correct count and logits gradient in one kernel), backward, optimizer
 * step; the two scalars the progress line shows are the only reads. */
#include "config.h"

#include <math.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/error.h"
#include "core/fileio.h"
#include "cl/ctx.h"
#include "model/resnet.h"
#include "model/safetensors.h"
#include "ops/layers.h"
#include "tensor/tensor_impl.h"
#include "train/checkpoint.h"
#include "train/trainer.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

void qg__train_cfg_defaults(qg_train_cfg *c)
{
    memset(c, 0, sizeof *c);
    c->model = "resnet20";
    c->shortcut = 'A';
    c->data = "fashion-mnist";
    c->epochs = 10;
    c->batch = 128;
    c->eval_batch = 128;
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
    c->progress = -1;
    c->qcfg.wbits = 8;
    c->qcfg.abits = 8;
    c->qcfg.pred_bits = 4;
    c->qcfg.gtar = 0.0f;
    c->qcfg.sigma = 0.001f;
    c->cgcfg.partitions = 4;     /* the reference's -pt default */
    c->cgcfg.alpha = 2.0f;
    c->cgcfg.ginit = 0.0f;       /* the scripts' -gi 0.0 */
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

/* Gate counters of the gated layers and, for layers whose skipped work is
 * real compute (CG), the FLOP accounting: the share of outputs skipping
 * the update ("update-phase sparsity", as the references print it) and
 * dense MACs / effective MACs, per layer and for the whole model with the
 * non-gated layers at full cost. Reads the device counters. */
typedef struct gate_report {
    int k;                      /* gated layers */
    long long total, on;
    const char **names;
    long long *nt, *no;
    int ncost;                  /* layers with a FLOP cost (== k, or 0) */
    double full, eff;           /* MACs per image, dense and effective */
    double *cost;               /* per layer: effective / dense */
} gate_report;

static void gate_report_free(gate_report *r)
{
    free(r->names);
    free(r->nt);
    free(r->no);
    free(r->cost);
    memset(r, 0, sizeof *r);
}

static qg_status gate_report_get(qg_model *m, gate_report *r)
{
    qg_status st = QG_OK;
    size_t n = (size_t)(m->nnodes > 0 ? m->nnodes : 1);
    memset(r, 0, sizeof *r);
    r->names = calloc(n, sizeof *r->names);
    r->nt = calloc(n, sizeof *r->nt);
    r->no = calloc(n, sizeof *r->no);
    r->cost = calloc(n, sizeof *r->cost);
    if (!r->names || !r->nt || !r->no || !r->cost) {
        st = qg__error(m->ctx, QG_ERR_NOMEM, "out of memory");
        goto fail;
    }
    QG_TRY(qg__model_gate_stats(m, &r->total, &r->on, &r->k, r->names, r->nt, r->no));
    QG_TRY(qg__model_gate_flops(m, &r->full, &r->eff, &r->ncost, r->cost));
    if (r->ncost != r->k)
        r->ncost = 0;
    return QG_OK;
fail:
    gate_report_free(r);
    return st;
}

static double sparsity(long long total, long long on)
{
    return total ? 1.0 - (double)on / (double)total : 0.0;
}

static double reduction(double full, double eff)
{
    return eff > 0 ? full / eff : 1.0;
}

/* " sparsity 45.1% FLOPs /1.83" (progress) or ", update-phase sparsity
 * 45.1%, FLOP reduction 1.83x" (epoch line); "" without gated layers. */
static void gate_summary(qg_model *m, int epoch_line, char *buf, size_t cap)
{
    gate_report r;
    buf[0] = 0;
    if (gate_report_get(m, &r) != QG_OK)
        return;
    if (!r.k) {
        gate_report_free(&r);
        return;
    }
    int len = snprintf(buf, cap, epoch_line ? ", update-phase sparsity %.1f%%"
                                            : " sparsity %.1f%%",
                       100 * sparsity(r.total, r.on));
    if (r.ncost && len > 0 && (size_t)len < cap)
        snprintf(buf + len, cap - (size_t)len, epoch_line ? ", FLOP reduction %.2fx"
                                                          : " FLOPs /%.2f",
                 reduction(r.full, r.eff));
    gate_report_free(&r);
}

qg_status qg__evaluate(qg_model *m, const qg_dataset *ds, int batch, const qg_loader_opts *lo,
                       double *loss, double *acc)
{
    qg_status st = QG_OK;
    qg_loader *ld = NULL;
    step_io io = {0};
    qg_loader_opts o = *lo;
    o.batch = batch;
    o.shuffle = 0;
    o.crop_pad = 0;
    o.flip = 0;
    o.drop_last = 0;
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
        QG_TRY(run_batch(m, &io, img, lab, n, 0, &l, &c));
        lsum += l;
        csum += c;
        total += n;
    }
    *loss = total ? lsum / (double)total : 0;
    *acc = total ? (double)csum / (double)total : 0;
fail:
    qg__model_freeze(m, 0);
    qg__loader_free(ld);
    step_io_free(&io);
    return st;
}

/* Per-layer and total update-phase sparsity (share of outputs that
 * skipped the full-precision update), as the reference prints it, and the
 * FLOP reduction where the gating skips compute. */
static void print_gates(qg_model *m, FILE *f)
{
    gate_report r;
    if (gate_report_get(m, &r) != QG_OK)
        return;
    for (int i = 0; i < r.k; i++) {
        fprintf(f, "  %-22s update-phase sparsity %5.1f%%", r.names[i],
                100 * sparsity(r.nt[i], r.no[i]));
        if (r.ncost)
            fprintf(f, "  FLOP reduction %5.2fx", 1.0 / r.cost[i]);
        fputc('\n', f);
    }
    if (r.k)
        fprintf(f, "Sparsity of the update phase: %.1f %%\n", 100 * sparsity(r.total, r.on));
    if (r.ncost)
        fprintf(f, "FLOP reduction of the model: %.2fx (%.1f of %.1f MFLOPs per image)\n",
                reduction(r.full, r.eff), 2e-6 * r.eff, 2e-6 * r.full);
    gate_report_free(&r);
}

/* The gating fields of a metrics line; `prefix` "" (test) or "train_". */
static void json_gates(FILE *f, const gate_report *r, const char *prefix, int per_layer)
{
    if (r->k)
        fprintf(f, ", \"%ssparsity\": %.6f", prefix, sparsity(r->total, r->on));
    if (r->ncost)
        fprintf(f, ", \"%sflop_reduction\": %.6f", prefix, reduction(r->full, r->eff));
    if (per_layer && r->k) {
        fprintf(f, ", \"%ssparsity_layers\": {", prefix);
        for (int i = 0; i < r->k; i++)
            fprintf(f, "%s\"%s\": %.6f", i ? ", " : "", r->names[i],
                    sparsity(r->nt[i], r->no[i]));
        fputc('}', f);
    }
    if (per_layer && r->ncost) {
        fprintf(f, ", \"%sflop_reduction_layers\": {", prefix);
        for (int i = 0; i < r->k; i++)
            fprintf(f, "%s\"%s\": %.6f", i ? ", " : "", r->names[i], 1.0 / r->cost[i]);
        fprintf(f, "}, \"macs_dense\": %.0f, \"%smacs_effective\": %.0f", r->full, prefix,
                r->eff);
    }
}

static int depth_of(const char *model)
{
    if (strncmp(model, "resnet", 6) != 0)
        return 0;
    char *end;
    long d = strtol(model + 6, &end, 10);
    return *end == 0 ? (int)d : 0;
}

static qg_status build_model(qg_ctx *ctx, const qg_train_cfg *cfg, const char *model,
                             char shortcut, int c, int h, int w, int classes, uint64_t seed,
                             qg_model **out)
{
    int depth = depth_of(model);
    if (!depth || (depth - 2) % 6 != 0)
        return qg__error(ctx, QG_ERR_INVALID_ARG, "unknown model '%s' (--model): use resnet20, "
                         "resnet32, resnet44, resnet56 or resnet110", model);
    qg_resnet_opts ro = {.depth = depth, .shortcut = shortcut, .in_c = c, .in_h = h,
                         .in_w = w, .classes = classes, .seed = seed, .quant = cfg->quant,
                         .pg = cfg->pg, .pact = cfg->pact, .cfg = cfg->qcfg, .cg = cfg->cg,
                         .postact = cfg->postact, .cg_cfg = cfg->cgcfg};
    ro.cg_cfg.gtar = cfg->qcfg.gtar;
    ro.cg_cfg.coef = cfg->qcfg.sigma;
    ro.cg_cfg.spbp = cfg->qcfg.spbp;
    return qg__model_resnet_cifar(ctx, &ro, out);
}

static void fmt_eta(double s, char *buf, size_t cap)
{
    if (!(s >= 0) || s > 1e7)
        snprintf(buf, cap, "?");
    else if (s >= 3600)
        snprintf(buf, cap, "%dh%02dm", (int)(s / 3600), (int)fmod(s / 60, 60));
    else
        snprintf(buf, cap, "%dm%02ds", (int)(s / 60), (int)fmod(s, 60));
}

typedef struct run_meta {
    char epoch[24], batch[24], step[24], in_c[16], in_h[16], in_w[16], classes[16];
    char shortcut[4], seed[32], lr[32], wbits[8], abits[8], pb[8], gtar[32], sigma[32];
    char pt[8], ginit[32], alpha[32];
} run_meta;

static qg_status save_checkpoint(qg_model *m, const qg_train_cfg *cfg, const char *path,
                                 int epoch, long batch_in_epoch, long step)
{
    run_meta rm;
    snprintf(rm.epoch, sizeof rm.epoch, "%d", epoch);
    snprintf(rm.batch, sizeof rm.batch, "%ld", batch_in_epoch);
    snprintf(rm.step, sizeof rm.step, "%ld", step);
    snprintf(rm.in_c, sizeof rm.in_c, "%d", m->in_c);
    snprintf(rm.in_h, sizeof rm.in_h, "%d", m->in_h);
    snprintf(rm.in_w, sizeof rm.in_w, "%d", m->in_w);
    snprintf(rm.classes, sizeof rm.classes, "%d", m->classes);
    snprintf(rm.shortcut, sizeof rm.shortcut, "%c", cfg->shortcut);
    snprintf(rm.seed, sizeof rm.seed, "%llu", (unsigned long long)cfg->seed);
    snprintf(rm.lr, sizeof rm.lr, "%.9g", cfg->optim.lr);
    snprintf(rm.wbits, sizeof rm.wbits, "%d", cfg->quant || cfg->pg ? cfg->qcfg.wbits : 32);
    snprintf(rm.abits, sizeof rm.abits, "%d", cfg->quant || cfg->pg ? cfg->qcfg.abits : 32);
    snprintf(rm.pb, sizeof rm.pb, "%d", cfg->pg ? cfg->qcfg.pred_bits : 0);
    snprintf(rm.gtar, sizeof rm.gtar, "%.9g", cfg->qcfg.gtar);
    snprintf(rm.sigma, sizeof rm.sigma, "%.9g", cfg->qcfg.sigma);
    snprintf(rm.pt, sizeof rm.pt, "%d", cfg->cg ? cfg->cgcfg.partitions : 0);
    snprintf(rm.ginit, sizeof rm.ginit, "%.9g", cfg->cgcfg.ginit);
    snprintf(rm.alpha, sizeof rm.alpha, "%.9g", cfg->cgcfg.alpha);
    const qg_st_meta meta[] = {
        {"cg", cfg->cg ? "1" : "0"}, {"postact", cfg->postact ? "1" : "0"},
        {"partitions", rm.pt}, {"cg_group", cfg->cgcfg.group ? "1" : "0"},
        {"cg_shuffle", cfg->cgcfg.shuffle ? "1" : "0"}, {"ginit", rm.ginit},
        {"alpha", rm.alpha},
        {"wbits", rm.wbits}, {"abits", rm.abits}, {"pg", cfg->pg ? "1" : "0"},
        {"pred_bits", rm.pb}, {"pact", cfg->pact ? "1" : "0"}, {"spbp", cfg->qcfg.spbp ? "1" : "0"},
        {"gtar", rm.gtar}, {"sigma", rm.sigma},
        {"format", "qgate-checkpoint-1"}, {"arch", cfg->model}, {"shortcut", rm.shortcut},
        {"in_channels", rm.in_c}, {"in_height", rm.in_h}, {"in_width", rm.in_w},
        {"classes", rm.classes}, {"dataset", cfg->data}, {"epoch", rm.epoch},
        {"batch_in_epoch", rm.batch}, {"step", rm.step}, {"seed", rm.seed},
        {"optimizer", cfg->optim.kind == QG_OPTIM_ADAM ? "adam" : "sgd"}, {"base_lr", rm.lr},
    };
    return qg__checkpoint_save(m, path, meta, sizeof meta / sizeof *meta, 1);
}

static long meta_long(const qg_st_file *f, const char *key, long def)
{
    const char *v = qg__safetensors_meta(f, key);
    return v ? strtol(v, NULL, 10) : def;
}

static float meta_float(const qg_st_file *f, const char *key, float def)
{
    const char *v = qg__safetensors_meta(f, key);
    return v ? strtof(v, NULL) : def;
}

/* The method flags that shape the model (checkpoint metadata vs the run's
 * configuration): a resume with other ones would load a subset of the
 * tensors into another model. */
static qg_status check_resume_method(qg_ctx *ctx, const qg_st_file *f, const qg_train_cfg *c,
                                     const char *path)
{
    const struct {
        const char *key, *flag;
        long have;
    } m[] = {
        {"pg", "--pg", c->pg}, {"pact", "--pact", c->pact}, {"cg", "--cg", c->cg},
        {"postact", "--postact", c->postact},
        {"partitions", "--pt", c->cg ? c->cgcfg.partitions : 0},
        {"cg_group", "--group", c->cg && c->cgcfg.group},
        {"cg_shuffle", "--shuffle", c->cg && c->cgcfg.shuffle},
    };
    for (size_t i = 0; i < sizeof m / sizeof *m; i++) {
        long want = meta_long(f, m[i].key, 0);
        if (want != m[i].have)
            return qg__error(ctx, QG_ERR_INVALID_ARG, "--resume: checkpoint '%s' was trained "
                             "with %s = %ld, this run has %ld; pass the same method flags",
                             path, m[i].flag, want, m[i].have);
    }
    return QG_OK;
}

qg_status qg__train_run(const qg_train_cfg *cfg)
{
    qg_status st = QG_OK;
    qg_ctx *ctx = NULL;
    qg_dataset *train = NULL, *test = NULL;
    qg_loader *ld = NULL;
    qg_model *m = NULL;
    qg_st_file *resume = NULL;
    step_io io = {0};
    FILE *metrics = NULL;
    gate_report train_gates = {0};
    int progress = cfg->progress < 0 ? isatty(2) : cfg->progress;

    qg_ctx_opts co = {.device = cfg->device, .verbose = cfg->verbose};
    QG_TRY(qg_ctx_new(&co, &ctx));
    const qg_device_info *dev = qg_ctx_device(ctx);
    fprintf(stderr, "qgate: device [%d] %s (%s)\n", dev->index, dev->name, dev->platform);

    QG_TRY(qg__dataset_load_opts(cfg->data, cfg->data_dir, 1, &cfg->dopts, &train));
    QG_TRY(qg__dataset_load_opts(cfg->data, cfg->data_dir, 0, &cfg->dopts, &test));
    if (cfg->limit_train)
        qg__dataset_truncate(train, cfg->limit_train);
    if (cfg->limit_test)
        qg__dataset_truncate(test, cfg->limit_test);
    if (qg__dataset_count(train) < (size_t)cfg->batch) {
        st = qg__error(ctx, QG_ERR_INVALID_ARG, "--batch %d is larger than the %zu training "
                       "samples", cfg->batch, qg__dataset_count(train));
        goto fail;
    }

    qg_loader_opts lo = {.batch = cfg->batch, .shuffle = 1, .drop_last = 1, .seed = cfg->seed};
    int crop, flip;
    qg__data_defaults(cfg->data, &lo, &crop, &flip);
    lo.crop_pad = cfg->crop_pad >= 0 ? cfg->crop_pad : crop;
    lo.flip = cfg->flip >= 0 ? cfg->flip : flip;
    lo.workers = cfg->dopts.workers;
    QG_TRY(qg__loader_new(train, &lo, &ld));

    QG_TRY(build_model(ctx, cfg, cfg->model, cfg->shortcut, qg__dataset_channels(train),
                       qg__dataset_height(train), qg__dataset_width(train),
                       qg__dataset_classes(train), cfg->seed, &m));
    QG_TRY(qg__model_setup(m, cfg->batch));
    QG_TRY(qg__optim_ensure_state(m, &cfg->optim));
    QG_TRY(step_io_new(m, cfg->batch, &io));

    int start_epoch = 0;
    long skip_batches = 0, step = 0;
    if (cfg->resume_path) {
        st = qg__safetensors_read(cfg->resume_path, &resume);
        if (st != QG_OK) {
            qg__error(ctx, st, "--resume: %s", qg_last_error());
            goto fail;
        }
        QG_TRY(check_resume_method(ctx, resume, cfg, cfg->resume_path));
        QG_TRY(qg__checkpoint_load(m, resume, cfg->resume_path, 1));
        start_epoch = (int)meta_long(resume, "epoch", 0);
        skip_batches = meta_long(resume, "batch_in_epoch", 0);
        step = meta_long(resume, "step", 0);
        fprintf(stderr, "qgate: resumed from '%s' at epoch %d, batch %ld (step %ld)\n",
                cfg->resume_path, start_epoch + 1, skip_batches, step);
    }
    /* Output folders are made before the first epoch, so a path that can
     * never be written fails now rather than after an epoch of work. */
    if (cfg->checkpoint_path)
        QG_TRY(qg__mkdirs_parent(ctx, cfg->checkpoint_path));
    if (cfg->metrics_path) {
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
    fprintf(stderr, "qgate: %s on %s: %zu train / %zu test images %dx%dx%d, %zu parameters, "
            "%d epochs of %ld batches of %d\n", cfg->model, cfg->data, qg__dataset_count(train),
            qg__dataset_count(test), m->in_c, m->in_h, m->in_w, qg__model_param_count(m),
            cfg->epochs, sched.steps_per_epoch, cfg->batch);

    double run_t0 = now_s();
    for (int epoch = start_epoch; epoch < cfg->epochs; epoch++) {
        QG_TRY(qg__loader_start_epoch(ld, epoch));
        QG_TRY(qg__model_gate_reset(m));
        const float *img;
        const int32_t *lab;
        int n;
        long b = 0;
        double lsum = 0, t0 = now_s(), last_print = 0;
        long csum = 0, seen = 0;
        while (qg__loader_next(ld, &img, &lab, &n)) {
            if (b < skip_batches) { /* resume mid-epoch: same order, skip what was done */
                b++;
                continue;
            }
            float lr = qg__schedule_lr(&sched, cfg->optim.lr, epoch, b);
            float l;
            int c;
            QG_TRY(run_batch(m, &io, img, lab, n, 1, &l, &c));
            step++;
            QG_TRY(qg__optim_step(m, &cfg->optim, lr, step));
            if (!isfinite(l)) {
                st = qg__error(ctx, QG_ERR_INVALID_ARG, "training diverged: loss is %g at epoch "
                               "%d batch %ld (lower --lr?)", l, epoch + 1, b + 1);
                goto fail;
            }
            lsum += l;
            csum += c;
            seen += n;
            b++;
            double now = now_s();
            if (progress && (now - last_print > 0.5 || b == sched.steps_per_epoch)) {
                double ips = seen / (now - t0);
                double left = ((double)(sched.steps_per_epoch - b) +
                               (double)(cfg->epochs - epoch - 1) * sched.steps_per_epoch) *
                              cfg->batch / ips;
                char eta[32], sp[64];
                fmt_eta(left, eta, sizeof eta);
                gate_summary(m, 0, sp, sizeof sp);
                fprintf(stderr, "\repoch %d/%d [%ld/%ld] loss %.4f acc %.2f%%%s lr %.4g %.0f img/s "
                        "ETA %s   ", epoch + 1, cfg->epochs, b, sched.steps_per_epoch,
                        lsum / seen, 100.0 * csum / seen, sp, lr, ips, eta);
                last_print = now;
            }
            if (cfg->stop && *cfg->stop) {
                if (progress)
                    fputc('\n', stderr);
                const char *path = cfg->checkpoint_path ? cfg->checkpoint_path
                                                        : "qgate-interrupted.safetensors";
                QG_TRY(qg_ctx_finish(ctx));
                QG_TRY(save_checkpoint(m, cfg, path, epoch, b, step));
                fprintf(stderr, "qgate: interrupted; checkpoint written to '%s' (resume with "
                        "--resume %s)\n", path, path);
                st = qg__error(ctx, QG_ERR_INTERRUPTED, "interrupted at epoch %d batch %ld",
                               epoch + 1, b);
                goto fail;
            }
        }
        skip_batches = 0;
        QG_TRY(qg_ctx_finish(ctx));
        double train_s = now_s() - t0;
        double ips = seen / (train_s > 0 ? train_s : 1);
        /* The train-phase gate counters, taken before evaluation resets them. */
        gate_report_free(&train_gates);
        QG_TRY(gate_report_get(m, &train_gates));
        double test_loss = 0, test_acc = 0;
        QG_TRY(qg__evaluate(m, test, cfg->eval_batch, &lo, &test_loss, &test_acc));
        QG_TRY(qg__model_setup(m, cfg->batch));
        if (progress)
            fputc('\n', stderr);
        char sp[96];
        gate_summary(m, 1, sp, sizeof sp);
        fprintf(stderr, "epoch %d/%d: train loss %.4f acc %.2f%%, test loss %.4f acc %.2f%%%s, "
                "%.0f img/s, %.1f s\n", epoch + 1, cfg->epochs, seen ? lsum / seen : 0,
                seen ? 100.0 * csum / seen : 0, test_loss, 100 * test_acc, sp, ips, train_s);
        if (metrics) {
            fprintf(metrics, "{\"epoch\": %d, \"train_loss\": %.6f, \"train_acc\": %.6f, "
                    "\"test_loss\": %.6f, \"test_acc\": %.6f, \"img_per_s\": %.2f, \"lr\": %.6g, "
                    "\"epoch_seconds\": %.3f, \"elapsed_seconds\": %.3f", epoch + 1,
                    seen ? lsum / seen : 0, seen ? (double)csum / seen : 0, test_loss, test_acc,
                    ips, qg__schedule_lr(&sched, cfg->optim.lr, epoch, 0), train_s,
                    now_s() - run_t0);
            gate_report test_gates;
            QG_TRY(gate_report_get(m, &test_gates));
            fprintf(metrics, ", \"bad_files\": %zu",
                    qg__dataset_bad_files(train) + qg__dataset_bad_files(test));
            json_gates(metrics, &train_gates, "train_", 0);
            json_gates(metrics, &test_gates, "", 1);
            gate_report_free(&test_gates);
            fputs("}\n", metrics);
            fflush(metrics);
        }
        if (cfg->checkpoint_path)
            QG_TRY(save_checkpoint(m, cfg, cfg->checkpoint_path, epoch + 1, 0, step));
    }
fail:
    if (st != QG_OK && ctx && qg_ctx_last_error(ctx)[0] == 0)
        qg__error(ctx, st, "%s", qg_last_error());
    if (metrics)
        fclose(metrics);
    gate_report_free(&train_gates);
    qg__safetensors_free(resume);
    step_io_free(&io);
    qg__model_free(m);
    qg__loader_free(ld);
    qg__dataset_free(train);
    qg__dataset_free(test);
    qg_ctx_free(ctx);
    return st;
}

qg_status qg__eval_run(const qg_train_cfg *cfg, const char *checkpoint, double *acc_out)
{
    qg_status st = QG_OK;
    qg_ctx *ctx = NULL;
    qg_dataset *test = NULL;
    qg_model *m = NULL;
    qg_st_file *f = NULL;

    QG_TRY(qg__safetensors_read(checkpoint, &f));
    const char *arch = qg__safetensors_meta(f, "arch");
    const char *sc = qg__safetensors_meta(f, "shortcut");
    const char *data = qg__safetensors_meta(f, "dataset");
    if (!arch) {
        st = qg__error(NULL, QG_ERR_FORMAT, "checkpoint '%s' has no qgate 'arch' metadata",
                       checkpoint);
        goto fail;
    }
    qg_ctx_opts co = {.device = cfg->device, .verbose = cfg->verbose};
    QG_TRY(qg_ctx_new(&co, &ctx));
    const char *dname = cfg->data ? cfg->data : (data ? data : "fashion-mnist");
    QG_TRY(qg__dataset_load_opts(dname, cfg->data_dir, 0, &cfg->dopts, &test));
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
    qg_train_cfg mc = *cfg;
    mc.qcfg.wbits = (int)meta_long(f, "wbits", 32);
    mc.qcfg.abits = (int)meta_long(f, "abits", 32);
    mc.qcfg.pred_bits = (int)meta_long(f, "pred_bits", 0);
    mc.qcfg.spbp = (int)meta_long(f, "spbp", 0);
    mc.pg = (int)meta_long(f, "pg", 0);
    mc.pact = (int)meta_long(f, "pact", 0);
    mc.quant = !mc.pg && mc.qcfg.wbits < 32;
    mc.cg = (int)meta_long(f, "cg", 0);
    mc.postact = (int)meta_long(f, "postact", 0);
    mc.cgcfg.partitions = (int)meta_long(f, "partitions", 4);
    mc.cgcfg.group = (int)meta_long(f, "cg_group", 0);
    mc.cgcfg.shuffle = (int)meta_long(f, "cg_shuffle", 0);
    mc.cgcfg.ginit = meta_float(f, "ginit", 0.0f);
    mc.cgcfg.alpha = meta_float(f, "alpha", 2.0f);
    mc.qcfg.gtar = meta_float(f, "gtar", 0.0f);
    mc.qcfg.sigma = meta_float(f, "sigma", 0.0f);
    QG_TRY(build_model(ctx, &mc, arch, sc ? sc[0] : 'A', c, h, w, k, 0, &m));
    QG_TRY(qg__checkpoint_load(m, f, checkpoint, 0));
    qg_loader_opts lo = {0};
    int crop, flip;
    qg__data_defaults(dname, &lo, &crop, &flip);
    double loss, acc;
    QG_TRY(qg__evaluate(m, test, cfg->eval_batch, &lo, &loss, &acc));
    printf("checkpoint %s (%s, epoch %s): test loss %.4f, test accuracy %.2f%% on %zu images\n",
           checkpoint, arch, qg__safetensors_meta(f, "epoch") ? qg__safetensors_meta(f, "epoch")
                                                               : "?",
           loss, 100 * acc, qg__dataset_count(test));
    print_gates(m, stdout);
    if (acc_out)
        *acc_out = acc;
fail:
    if (st != QG_OK && ctx && qg_ctx_last_error(ctx)[0] == 0)
        qg__error(ctx, st, "%s", qg_last_error());
    qg__safetensors_free(f);
    qg__model_free(m);
    qg__dataset_free(test);
    qg_ctx_free(ctx);
    return st;
}
