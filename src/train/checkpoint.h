/* src/train/checkpoint.h: model parameters and optimizer state to and
 * from safetensors files (src/model/safetensors.h). Parameter tensors keep
 * their PyTorch state-dict names; optimizer state is stored as
 * "optimizer.<param>.<state>" so a PyTorch user can drop those keys. */
#ifndef QG_TRAIN_CHECKPOINT_H
#define QG_TRAIN_CHECKPOINT_H

#include "model/graph.h"
#include "model/safetensors.h"

/* Writes atomically; `meta` adds to the qgate metadata (arch, shapes). */
qg_status qg__checkpoint_save(qg_model *m, const char *path, const qg_st_meta *meta,
                              size_t nmeta, int with_optimizer);
/* Loads every parameter of `m` from an opened file. Each tensor must be
 * F32 with exactly the parameter's shape (the one equivalence: [] and [1]
 * for a single value) and hold only finite values. A missing tensor, a
 * wrong dtype or shape (QG_ERR_SHAPE, both shapes shown) or a NaN/Inf
 * (QG_ERR_FORMAT, with the element) names the tensor and the file. */
qg_status qg__checkpoint_load(qg_model *m, const qg_st_file *f, const char *path,
                              int with_optimizer);

#endif
