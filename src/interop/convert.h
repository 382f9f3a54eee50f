/* src/interop/convert.h: PyTorch state dicts to qgate checkpoints
 * (internal; `qgate convert`, tests/test_pth.c).
 *
 * Names are mapped from the PyTorch families of CIFAR ResNets to qgate's
 * (src/model/resnet.h): DataParallel's "module." prefix goes; "fc.*"
 * (bearpaw, BSQ, PSG) becomes "linear.*" (Idelbayev, qgate); "downsample.*"
 * becomes "shortcut.*"; buffers qgate does not keep are dropped
 * (num_batches_tracked; PSG's scale_value / wscale_value / bscale_value,
 * which its forward recomputes). The architecture comes from the tensors
 * (blocks per stage, option-B shortcut convs, input channels, classes) or
 * from the options; method flags from their tensors (".threshold" with
 * ".mask": channel gating, without: precision gating; "relu.upper_bound":
 * PACT). Float tensors of any width become float32. */
#ifndef QG_INTEROP_CONVERT_H
#define QG_INTEROP_CONVERT_H

#include <stddef.h>
#include "interop/pth.h"
#include "model/graph.h"
#include "model/safetensors.h"

typedef struct qg_convert_opts {
    const char *arch;        /* "resnet32"; NULL infers */
    char shortcut;           /* 'A' / 'B'; 0 infers */
    int in_c, in_h, in_w;    /* 0 infers (conv1's channels; 32x32 RGB, 28x28 gray) */
    const char *dataset;     /* NULL guesses from channels and classes */
    int wbits, abits, pred_bits;   /* quantized / PG checkpoints; 0 = unset */
    const char *const *extra_meta; /* "key=value" pairs added as metadata */
    size_t nextra;
    const char *source;      /* file name recorded in the metadata */
} qg_convert_opts;

/* A checkpoint in memory: named float32 (or int32) tensors + metadata. */
typedef struct qg_conv_result {
    qg_st_tensor *tensors;
    size_t n;
    qg_st_meta *meta;
    size_t nmeta;
    size_t renamed, dropped;     /* statistics for the user */
    char dropped_names[512];     /* the first dropped names */
    void *priv;                  /* owned strings and buffers */
} qg_conv_result;

/* Maps one PyTorch name to qgate's; returns 0 when the tensor is dropped.
 * `out` receives at most cap bytes. */
int qg__convert_map_name(const char *in, char *out, size_t cap);

qg_status qg__convert_pth(const qg_pth *p, const qg_convert_opts *o, qg_conv_result **out);
void qg__convert_free(qg_conv_result *r);
/* Keeps only the tensors the predicate accepts (after verification). */
void qg__convert_filter(qg_conv_result *r, int (*keep)(const char *name, void *arg), void *arg);
qg_status qg__convert_write(const qg_conv_result *r, const char *path);
const char *qg__convert_meta(const qg_conv_result *r, const char *key);

/* Builds the model that a checkpoint's metadata describes (arch, shortcut,
 * input shape, classes, method flags) with zero-initialised weights. A
 * copy of the metadata-to-model logic of qgate eval (src/train/trainer.c)
 * that needs no dataset. */
qg_status qg__interop_model_from_meta(qg_ctx *ctx, const qg_st_file *f, const char *path,
                                      qg_model **out);

/* Runs a model in eval mode on `check`'s "input" [N, C, H, W] and compares
 * with its "logits" [N, K]: *max_abs gets the largest difference. */
qg_status qg__convert_check_logits(qg_model *m, const char *check, double *max_abs,
                                   double *max_ref);

#endif
