/* src/tune/shapes_file.h: the shapes file of `qgate tune --shapes FILE`
 * (internal). Format, schema 1:
 *
 *   {"schema": 1,
 *    "conv": [{"n": 128, "c": 16, "k": 16, "h": 32, "w": 32, "stride": 1}, ...]}
 *
 * Each conv entry is a 3x3 convolution with padding 1 of n images of
 * c x h x w into k channels, stride 1 or 2 (the shapes the direct kernels
 * take), ungrouped unless an optional "groups" (dividing c and k) says
 * otherwise. Every other field is required and unknown keys are
 * rejected, so a typo cannot silently drop a field. Two entries of one
 * shape class (qg__conv_shape_class: the batch is not part of it) are an
 * error, as the second would overwrite the first's result. */
#ifndef QG_TUNE_SHAPES_FILE_H
#define QG_TUNE_SHAPES_FILE_H

#include "ops/conv.h"
#include "tune/cases.h"

#define QG_TUNE_SHAPES_SCHEMA 1

typedef struct qg_tune_shapes {
    qg_tune_conv_shape *conv;                   /* r = 3, pad = 1 */
    char (*conv_class)[QG_CONV_SHAPE_CLASS_MAX];  /* shape class of each */
    size_t nconv;
} qg_tune_shapes;

/* Reads and validates `path`. On failure returns QG_ERR_IO or
 * QG_ERR_FORMAT with a message naming the file and, where one is at
 * fault, the entry ("conv[2]") and field; *out is then empty. ctx may be
 * NULL (the message then goes to qg_last_error only). */
qg_status qg__tune_shapes_load(qg_ctx *ctx, const char *path, qg_tune_shapes *out);
/* The same parse on bytes in memory (`name` stands for the file). */
qg_status qg__tune_shapes_load_memory(qg_ctx *ctx, const char *name, const void *data,
                                      size_t len, qg_tune_shapes *out);

/* Frees what load allocated; an empty or zeroed struct is fine. */
void qg__tune_shapes_free(qg_tune_shapes *s);

#endif
