/* src/train/trainer.h: the training loop and evaluation behind the public
 * qgate/train.h (qg_train_run, qg_eval_run), and what `qgate bench` and the
 * model API share with them. The loop calls the enabled methods' hooks
 * (src/method/method.h) and reports through the caller's callback; it
 * prints nothing. */
#ifndef QG_TRAIN_TRAINER_H
#define QG_TRAIN_TRAINER_H

#include <stddef.h>
#include <stdint.h>

#include "qgate/train.h"
#include "data/dataset.h"
#include "model/graph.h"
#include "train/optim.h"

/* Evaluates a ready model on a dataset; sums over all samples. */
qg_status qg__evaluate(qg_model *m, const qg_dataset *ds, int batch, const qg_loader_opts *lo,
                       double *loss, double *acc);
/* The same, and *seconds (may be NULL) the wall time of the batches'
 * forward passes (uploads and read-backs included, waits for data not). */
qg_status qg__evaluate_timed(qg_model *m, const qg_dataset *ds, int batch,
                             const qg_loader_opts *lo, double *loss, double *acc,
                             double *seconds);

/* Dataset normalisation constants and augmentation defaults by name. */
void qg__data_defaults(const char *name, qg_loader_opts *lo, int *crop_pad, int *flip);

/* Builds a model by architecture name ("resnet20" ...), shortcut 'A'/'B',
 * input shape, classes and method configuration (NULL: full precision). */
qg_status qg__model_build(qg_ctx *ctx, const char *arch, char shortcut, int c, int h, int w,
                          int classes, uint64_t seed, const qg_method_cfg *methods,
                          qg_model **out);

/* Rebuilds the model a checkpoint's metadata records (architecture,
 * shortcut, input shape, classes, methods); c, h, w, k are the input shape
 * and classes to assume where the metadata has none. */
struct qg_st_file;
qg_status qg__model_from_meta(qg_ctx *ctx, const struct qg_st_file *f, const char *path, int c,
                              int h, int w, int k, qg_model **out);

/* The first half of qg_trainer_step: forward, loss, backward, auxiliary
 * losses and the methods' gradient hooks on n samples, leaving every
 * gradient in place and no optimizer step (ProQHA's candidate scoring,
 * src/train/search.c). loss may be NULL. */
qg_status qg__trainer_grad(qg_trainer *t, const float *images, const int32_t *labels, int n,
                          float *loss);

#endif
