/* src/model/safetensors.h: the safetensors checkpoint format.
 *
 * File = 8-byte little-endian header length N, N bytes of JSON header
 * ({"name": {"dtype": "F32", "shape": [...], "data_offsets": [b, e]}, ...,
 * "__metadata__": {"key": "string", ...}}), then the raw little-endian
 * tensor bytes. Writes are atomic (temp + fsync + rename): a crash or
 * kill -9 during a save leaves the previous file intact. */
#ifndef QG_MODEL_SAFETENSORS_H
#define QG_MODEL_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>
#include "qgate/tensor.h"

typedef struct qg_st_tensor {
    const char *name;
    qg_dtype dtype;          /* F32, I32 (I64 not needed), U8 */
    int ndim;
    int64_t shape[QG_MAX_DIMS];
    const void *data;        /* host bytes, numel * dtype size */
} qg_st_tensor;

typedef struct qg_st_meta {
    const char *key;
    const char *value;
} qg_st_meta;

qg_status qg__safetensors_write(const char *path, const qg_st_tensor *tensors, size_t n,
                                const qg_st_meta *meta, size_t nmeta);

typedef struct qg_st_file qg_st_file;
/* Reads and validates a file (header JSON, dtypes, shapes, offsets in
 * bounds and non-overlapping); errors name the file and what is wrong.
 * Only regular files are read, and the header is checked against the
 * file size before any tensor data is read, so memory use is bounded by
 * what the header implies and the file holds. */
qg_status qg__safetensors_read(const char *path, qg_st_file **out);
/* The same parse on bytes in memory (copied; `name` stands for the file
 * in messages). For fuzzing and for callers that hold the bytes. */
qg_status qg__safetensors_read_memory(const char *name, const void *data, size_t len,
                                      qg_st_file **out);
void qg__safetensors_free(qg_st_file *f);
size_t qg__safetensors_count(const qg_st_file *f);
/* NULL when absent. The returned pointers live as long as f. */
const qg_st_tensor *qg__safetensors_get(const qg_st_file *f, const char *name);
const qg_st_tensor *qg__safetensors_at(const qg_st_file *f, size_t i);
const char *qg__safetensors_meta(const qg_st_file *f, const char *key);
/* All metadata entries, in file order (valid as long as f). */
const qg_st_meta *qg__safetensors_meta_all(const qg_st_file *f, size_t *n);

#endif
