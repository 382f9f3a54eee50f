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
 * for a single value; a parameter with flex_last takes the file's length
 * of its last axis: BSQ's per-layer precision) and hold only finite
 * values. A missing tensor, a wrong dtype or shape (QG_ERR_SHAPE, both
 * shapes shown) or a NaN/Inf (QG_ERR_FORMAT, with the element) names the
 * tensor and the file. */
qg_status qg__checkpoint_load(qg_model *m, const qg_st_file *f, const char *path,
                              int with_optimizer);
/* Tensors qgate writes for PyTorch's sake and never reads (a batch norm's
 * "*.num_batches_tracked"): loads skip them. */
int qg__checkpoint_ignored(const char *name);
/* Starts a model from another run's weights (`--init`): loads each model
 * parameter the file holds, with load's checks, and leaves the others at
 * their initial values (a method may add parameters, e.g. PG thresholds).
 * Refuses a file none of whose tensors the model has, and a tensor the
 * model has no place for (another architecture), naming the first one;
 * optimizer state in the file is ignored. *loaded and *kept count the
 * loaded and the untouched parameters; `kept_names` (may be NULL) gets a
 * comma-separated list of the untouched ones, truncated to cap. */
qg_status qg__checkpoint_init(qg_model *m, const qg_st_file *f, const char *path, int *loaded,
                              int *kept, char *kept_names, size_t cap);

#endif
