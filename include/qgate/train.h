/* qgate/train.h: models, training and evaluation.
 *
 * Build a model by name and method configuration (qgate/method.h), load and
 * save safetensors checkpoints, train it for a number of epochs on a
 * dataset with per-epoch evaluation, or evaluate a checkpoint. The library
 * prints nothing: progress, per-epoch results and metrics reach the caller
 * through a callback (qg_train_event); `qgate train` is one such caller.
 * Errors: every function returns a qg_status, the detail is in
 * qg_last_error(). A model belongs to the context it was made with; neither
 * is thread-safe. Worked example: examples/train_tiny.c.
 */
#ifndef QGATE_TRAIN_H
#define QGATE_TRAIN_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <qgate/device.h>
#include <qgate/method.h>
#include <qgate/export.h>
#include <qgate/status.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- models ---------------------------------------------------------------- */

typedef struct qg_model qg_model;

typedef struct qg_model_opts {
    const char *arch;          /* "resnet20", "resnet32", ..., "resnet110", "resnet18",
                                  "shufflenet_v2_x0_5", "vgg16_bn" */
    char shortcut;             /* 'A' (zero-pad, default when 0) or 'B' (1x1 conv) */
    int in_c, in_h, in_w;      /* input shape */
    int classes;
    uint64_t seed;             /* weight initialisation */
    const qg_method_cfg *methods;   /* NULL: full precision */
} qg_model_opts;

QG_API qg_status qg_model_new(qg_ctx *ctx, const qg_model_opts *opts, qg_model **out);
QG_API void qg_model_free(qg_model *m);
/* Trainable parameter count. */
QG_API size_t qg_model_param_count(const qg_model *m);
/* Loads the model's parameters (every tensor, shapes checked) from a
 * checkpoint; optimizer state is ignored. */
QG_API qg_status qg_model_load(qg_model *m, const char *path);
/* Writes the parameters atomically (temp file, fsync, rename), with the
 * architecture and method configuration in the metadata so `qgate eval`
 * and qg_eval_run can rebuild the model. */
QG_API qg_status qg_model_save(qg_model *m, const char *path);

/* ---- optimisation ---------------------------------------------------------- */

typedef enum qg_optim_kind { QG_OPTIM_SGD = 0, QG_OPTIM_ADAM = 1 } qg_optim_kind;

/* Parameter kinds for qg_optim_cfg.decay_kinds (bit masks). */
#define QG_DECAY_WEIGHT (1u << 0)   /* conv / linear weights */
#define QG_DECAY_BIAS (1u << 1)
#define QG_DECAY_BN (1u << 2)       /* batch-norm gamma / beta */
#define QG_DECAY_GATE (1u << 3)     /* gating thresholds */
#define QG_DECAY_CLIP (1u << 4)     /* PACT alpha */
#define QG_DECAY_ALL (QG_DECAY_WEIGHT | QG_DECAY_BIAS | QG_DECAY_BN | QG_DECAY_GATE | \
                      QG_DECAY_CLIP)

typedef struct qg_optim_cfg {
    qg_optim_kind kind;
    float lr;                  /* base learning rate */
    float momentum;            /* SGD */
    int nesterov;
    float weight_decay;
    unsigned decay_kinds;      /* which kinds get weight decay (QG_DECAY_*) */
    float beta1, beta2, eps;   /* Adam */
    float clip_norm;           /* > 0: clip the global gradient L2 norm */
} qg_optim_cfg;

typedef enum qg_sched_kind {
    QG_SCHED_CONST = 0,
    QG_SCHED_MULTISTEP = 1,    /* lr * gamma^(number of milestones <= epoch) */
    QG_SCHED_COSINE = 2,       /* per epoch, CosineAnnealingLR(T_max = epochs, eta_min) */
    QG_SCHED_POLY = 3          /* per step: (lr - end) * (1 - t/T)^power + end */
} qg_sched_kind;

typedef struct qg_schedule {
    qg_sched_kind kind;
    int milestones[16];
    int nmilestones;
    float gamma;
    float end_lr;              /* cosine eta_min, poly end */
    float power;
    int epochs;                /* set by the trainer */
    long steps_per_epoch;      /* set by the trainer */
} qg_schedule;

/* ---- progress and metrics ----------------------------------------------------- */

/* One metric a method contributes: a scalar (layer NULL) or one layer's
 * value of a per-layer metric ("sparsity_layers" of "layer1.0.conv1"). */
typedef struct qg_metric {
    const char *key;
    const char *layer;
    double value;
} qg_metric;

typedef enum qg_train_event_kind {
    QG_TRAIN_EV_INFO = 0,      /* text: a line worth showing (device, data, resume) */
    QG_TRAIN_EV_PROGRESS = 1,  /* during an epoch, about twice a second */
    QG_TRAIN_EV_EPOCH = 2      /* an epoch ended and was evaluated */
} qg_train_event_kind;

typedef struct qg_train_event {
    qg_train_event_kind kind;
    const char *text;          /* INFO: the line; PROGRESS/EPOCH: the methods'
                                  short summary ("sparsity 45.1%"), maybe "" */
    int epoch, epochs;         /* 1-based */
    long batch, batches;
    double train_loss, train_acc;   /* running means over the epoch so far;
                                       train_loss is the cross-entropy alone */
    double train_gating_loss;  /* running mean of the gating (auxiliary) loss
                                  terms per step, weighted by batch size; the
                                  optimised loss is train_loss + this */
    int gating;                /* the model has gating loss terms */
    double lr, img_per_s, eta_s;
    double test_loss, test_acc;     /* EPOCH */
    double epoch_seconds, elapsed_seconds;
    const qg_metric *metrics;  /* EPOCH: the methods' metrics, train_* and test */
    size_t nmetrics;
} qg_train_event;

typedef void (*qg_train_callback)(const qg_train_event *ev, void *user);

/* ---- training steps ------------------------------------------------------------- */

/* Step-level training of a model on batches the caller provides (images
 * as float32 NCHW, already normalised; labels as class indices). Each step
 * runs forward, loss, backward, the methods' loss terms and hooks and one
 * optimizer step: what qg_train_run does per batch. */
typedef struct qg_trainer qg_trainer;

/* `batch` is the largest batch a step will get; the methods are the
 * model's own (those it was built with). */
QG_API qg_status qg_trainer_new(qg_model *m, const qg_optim_cfg *optim, int batch, qg_trainer **out);
QG_API void qg_trainer_free(qg_trainer *t);
/* One training step on n <= batch samples at learning rate lr; loss (mean
 * cross-entropy) and correct may be NULL. */
QG_API qg_status qg_trainer_step(qg_trainer *t, const float *images, const int32_t *labels, int n,
                          float lr, float *loss, int *correct);
/* Inference on n samples: summed loss and the correct count. */
QG_API qg_status qg_trainer_eval(qg_trainer *t, const float *images, const int32_t *labels, int n,
                          float *loss_sum, int *correct);

/* ---- training runs ------------------------------------------------------------------ */

typedef struct qg_train_cfg {
    const char *device;
    const char *model;         /* "resnet20", "resnet32", "resnet56" */
    char shortcut;             /* 'A' or 'B' */
    const qg_method_cfg *methods;   /* NULL: full precision */
    const char *data;          /* "fashion-mnist", "mnist", "cifar10", "cifar100", "folder" */
    const char *data_dir;      /* NULL = default location */
    /* data "folder" (JPEG class folders DIR/train|val/<class>/...); 0 or
     * NULL = default */
    int workers;               /* loader threads (0: 1; every dataset) */
    int input_size;            /* square network input side (0: 224) */
    int resize;                /* evaluation: shorter side before the centre crop
                                  (0: input_size * 256 / 224) */
    double crop_scale;         /* training: the smallest area share of
                                  RandomResizedCrop (0: torchvision's 0.08) */
    const char *normalize;     /* "imagenet", "dataset" or "none"; NULL: the
                                  dataset's default (folder: imagenet; IDX,
                                  CIFAR: dataset); eval: the checkpoint's */
    size_t limit_train;        /* 0 = all samples */
    size_t limit_test;
    int epochs;
    int batch;
    int eval_batch;
    int keep_last;             /* train on the last, partial batch of an epoch
                                  too (the reference's 391 steps per CIFAR epoch
                                  at batch 128); 0: drop it */
    uint64_t seed;
    int crop_pad;              /* -1 = dataset default */
    int flip;                  /* -1 = dataset default */
    qg_optim_cfg optim;
    qg_schedule sched;
    const char *metrics_path;  /* JSON lines, one per epoch */
    const char *checkpoint_path;
    const char *resume_path;
    /* Weights only from another run (a float model for PSGD, a converted
     * one for BSQ): fresh optimizer, schedule from start_epoch. Tensors
     * the file lacks keep their initial values; a tensor the model has no
     * place for is an error. Not with resume_path. */
    const char *init_path;
    int start_epoch;           /* with init_path: schedule position (0-based) */
    /* Bit widths of single quantizers of a mixed-precision (--proqha)
     * model, set after the model is built and any init_path loaded:
     * "NAME=B[,NAME=B...]", NAME a quantizer or a prefix ending in '*'.
     * Not with resume_path (the checkpoint holds the run's bits). */
    const char *kbits;
    /* Data-parallel runs (mpirun, docs/distributed.md): batch norm with the
     * statistics of the global batch instead of each process's batch. */
    int sync_bn;
    /* qg_eval_run: also evaluate with the weights on a PSGD grid of this
     * many bits (post-training quantization of a float checkpoint; 0: only
     * when the checkpoint's method asks, as a PSGD one does), the stem and
     * the classifier too when eval_first_last. */
    int eval_wbits;
    int eval_first_last;
    /* qg_eval_run: the low-precision pass also quantizes activations as
     * PSG-pytorch's eval.py --act_quant 1 --act_clipping 1: the output of
     * every ReLU that follows a batch norm on an unsigned eval_abits grid
     * over [0, max_c(beta_c + eval_act_clip*gamma_c)] of that batch norm
     * (0: float activations; 2..16; needs the low-precision pass). */
    int eval_abits;
    float eval_act_clip;       /* default 6, the reference's --clipping_range */
    int verbose;
    /* Gated layers (CG, PG) compute the work their gates turn off densely
     * and mask it, as the reference code does, instead of skipping it
     * (`--dense-gates`, for speed comparisons; same results). Not stored
     * in checkpoints. */
    int dense_gates;
    volatile sig_atomic_t *stop;    /* set asynchronously (SIGINT): checkpoint, stop */
    qg_train_callback callback;     /* may be NULL */
    void *user;
} qg_train_cfg;

/* The defaults of `qgate train`: ResNet-20 on Fashion-MNIST, SGD momentum
 * 0.9, lr 0.1, weight decay 1e-4 on everything, cosine schedule, batch 128,
 * 10 epochs, full precision. */
QG_API void qg_train_cfg_defaults(qg_train_cfg *c);

/* Trains for cfg->epochs (from the checkpoint's position with resume_path),
 * evaluating on the test split after each epoch. Returns
 * QG_ERR_INTERRUPTED after writing a checkpoint when *stop was set. */
QG_API qg_status qg_train_run(const qg_train_cfg *cfg);

/* ---- evaluation ----------------------------------------------------------------- */

typedef struct qg_eval_result {
    char arch[64];
    char epoch[24];            /* from the checkpoint, or "?" */
    size_t images;
    double loss, acc;
    qg_metric *metrics;        /* the methods' test metrics (owned) */
    size_t nmetrics;
    /* Low-precision evaluation (PSGD checkpoints, or eval_wbits): lowp is
     * 1 and loss_lp / acc_lp hold it; lowp_bits is the grid's bits. */
    int lowp, lowp_bits;
    double loss_lp, acc_lp;
    int lowp_abits;            /* the activation bits of that pass (0: float) */
    float act_clip;            /* and its clip multiple n */
    /* Images per second of the timed evaluation forward passes (the test
     * split once, data loading excluded). */
    double img_per_s;
} qg_eval_result;

/* Rebuilds the model a checkpoint records, loads it and evaluates it on the
 * test split of cfg->data (NULL: the checkpoint's dataset). Uses
 * cfg->device, data_dir, limit_test, eval_batch. Free the result's metrics
 * with qg_eval_result_free. */
QG_API qg_status qg_eval_run(const qg_train_cfg *cfg, const char *checkpoint, qg_eval_result *out);
QG_API void qg_eval_result_free(qg_eval_result *r);

#ifdef __cplusplus
}
#endif
#endif
