/* src/interop/ckview.h: a read-only view of a checkpoint for `qgate
 * inspect` and `qgate plot` (internal; tests: tests/test_plot.c).
 *
 * Opens a qgate safetensors checkpoint, or a PyTorch .pth converted in
 * memory (src/interop/convert.h, no device needed), and describes its
 * weight layers: every conv (4-d "<layer>.weight") and linear (2-d) with
 * its parameters and the precision its weights are stored at, the
 * gating threshold statistics (PG, CG: "<layer>.threshold"), the PACT
 * clip of its block ("<block>.relu.upper_bound"; the stem's is
 * "relu.upper_bound") and the density of each weight bit plane.
 *
 * Precision: BSQ bit planes ("<layer>.pweight" / ".nweight", last axis
 * the bit, MSB first) give their own; otherwise a "layer_bits" metadata
 * JSON object {"layer1.0.conv1": 3, ...} wins; otherwise qgate's
 * quantized ResNets store the block convs (layerS.B.conv1/conv2) at
 * "wbits" and everything else in float32. Bit-plane density is the share
 * of weights whose magnitude code has that bit set, the code being the
 * sign-magnitude quantization qgate's weight quantizer uses (|w| / (max|w|
 * + 1e-7) * (2^b - 1), rounded half to even); BSQ layers use their planes
 * as stored (a plane bit counts when p - n is non-zero). */
#ifndef QG_INTEROP_CKVIEW_H
#define QG_INTEROP_CKVIEW_H

#include <stddef.h>
#include <stdint.h>
#include "qgate/status.h"

#define QG_CK_MAX_BITS 16

typedef struct qg_ck_tensor {
    const char *name;
    int ndim;
    int64_t shape[8];
    size_t numel;
    const float *data;       /* float32 (integer tensors converted) */
} qg_ck_tensor;

typedef struct qg_ck_layer {
    char name[96];
    int conv;                /* 1 conv, 0 linear */
    int ndim;
    int64_t shape[4];
    size_t params;           /* weight elements */
    int bits;                /* stored precision of the weights (32: float) */
    int bsq;                 /* bits from BSQ bit planes */
    const float *w;          /* weights (BSQ: sum (p - n) exps * scale) */
    int has_thr;
    size_t thr_n;
    double thr_mean, thr_min, thr_max;
    int has_alpha;
    double alpha;
    int nplanes;             /* bit planes with a density (0 for float) */
    double density[QG_CK_MAX_BITS];   /* MSB first */
} qg_ck_layer;

typedef struct qg_ckview qg_ckview;

qg_status qg__ckview_open(const char *path, qg_ckview **out);
void qg__ckview_free(qg_ckview *v);
const char *qg__ckview_meta(const qg_ckview *v, const char *key);
size_t qg__ckview_meta_count(const qg_ckview *v);
void qg__ckview_meta_at(const qg_ckview *v, size_t i, const char **key, const char **value);
size_t qg__ckview_count(const qg_ckview *v);
const qg_ck_tensor *qg__ckview_at(const qg_ckview *v, size_t i);
const qg_ck_tensor *qg__ckview_get(const qg_ckview *v, const char *name);
/* The weight layers in file order; valid as long as v. */
size_t qg__ckview_layers(const qg_ckview *v, const qg_ck_layer **layers);
/* Bit-plane densities of n weights at b bits (MSB first) as qgate codes them. */
void qg__ck_bitplanes(const float *w, size_t n, int bits, double *density);

#endif
