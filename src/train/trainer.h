/* src/train/trainer.h: the training loop, evaluation and the run
 * configuration shared by `qgate train`, `qgate eval` and `qgate bench`. */
#ifndef QG_TRAIN_TRAINER_H
#define QG_TRAIN_TRAINER_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "data/dataset.h"
#include "model/graph.h"
#include "model/nodes_cg.h"
#include "model/nodes_quant.h"
#include "train/optim.h"

typedef struct qg_train_cfg {
    const char *device;
    const char *model;          /* "resnet20", "resnet32", "resnet56" */
    char shortcut;              /* 'A' or 'B' */
    int quant, pg, pact;        /* quantized / precision-gated / PACT variants */
    qg_pg_cfg qcfg;             /* bits, prediction bits, gating target, sigma, spbp */
    int cg, postact;            /* channel-gated ResNet, post-activated variant */
    qg_cg_cfg cgcfg;            /* partitions, group, shuffle, ginit, alpha; the gating
                                   target, loss coefficient and spbp come from qcfg */
    const char *data;           /* "fashion-mnist", "mnist", "cifar10", "cifar100" */
    const char *data_dir;       /* NULL = default location */
    qg_data_opts dopts;         /* folder data: input size, resize, normalisation, workers */
    size_t limit_train;         /* 0 = all samples */
    size_t limit_test;
    int epochs;
    int batch;
    int eval_batch;
    uint64_t seed;
    int crop_pad;               /* -1 = dataset default */
    int flip;                   /* -1 = dataset default */
    qg_optim_cfg optim;
    qg_schedule sched;
    const char *metrics_path;
    const char *checkpoint_path;
    const char *resume_path;
    int progress;               /* -1 auto (TTY), 0 off, 1 on */
    int verbose;
    volatile sig_atomic_t *stop; /* set asynchronously (SIGINT) */
} qg_train_cfg;

void qg__train_cfg_defaults(qg_train_cfg *c);

/* Whole run: data, model, epochs, per-epoch eval, metrics, checkpoints.
 * Returns QG_ERR_INTERRUPTED after writing a checkpoint when *stop was
 * set. Messages go to stderr; the error detail to qg_last_error(). */
qg_status qg__train_run(const qg_train_cfg *cfg);

/* `qgate eval`: loads a checkpoint (model rebuilt from its metadata) and
 * reports loss and accuracy on the test split. */
qg_status qg__eval_run(const qg_train_cfg *cfg, const char *checkpoint, double *acc_out);

/* Evaluates a ready model on a dataset; sums over all samples. */
qg_status qg__evaluate(qg_model *m, const qg_dataset *ds, int batch, const qg_loader_opts *lo,
                       double *loss, double *acc);

/* Dataset normalisation constants and augmentation defaults by name. */
void qg__data_defaults(const char *name, qg_loader_opts *lo, int *crop_pad, int *flip);

#endif
