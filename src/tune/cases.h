/* src/tune/cases.h: the tables of tune cases (one per kernel program)
 * and the helpers they share (internal). Each table lives in its own
 * file: cases.c (GEMM, conv, BN, elementwise, reduce), cases_quant.c
 * (quantizers, PACT, PG gate), cases_layers.c (pooling, shortcut, loss,
 * optimizer), cases_cg.c (channel gating). tuner.c walks them in that order. Every case works on
 * ResNet-20 training shapes (batch 128) and computes its C reference
 * once in prepare. */
#ifndef QG_TUNE_CASES_H
#define QG_TUNE_CASES_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "tune/tuner.h"

const qg_tune_case *qg__tune_cases_core(size_t *n);
const qg_tune_case *qg__tune_cases_quant(size_t *n);
const qg_tune_case *qg__tune_cases_layers(size_t *n);
const qg_tune_case *qg__tune_cases_cg(size_t *n);
/* chan and dwconv (cases_shuffle.c). */
const qg_tune_case *qg__tune_cases_shuffle(size_t *n);
/* psgd (cases_psgd.c). */
const qg_tune_case *qg__tune_cases_psgd(size_t *n);
/* bsq (cases_bsq.c). */
const qg_tune_case *qg__tune_cases_bsq(size_t *n);
/* conv_masked (cases_masked.c). */
const qg_tune_case *qg__tune_cases_masked(size_t *n);

/* The convolution case on any shape (case_conv.c): n images of c x h x w,
 * k output channels, r x r kernel, ungrouped. It times the forward pass
 * and both gradients (qg__conv_enqueue_bwd, as training calls it) and checks
 * all three outputs against src/ref/ref_conv.c. */
typedef struct qg_tune_conv_shape {
    int n, c, k, h, w, r, stride, pad;
    int groups; /* 0 or 1: ungrouped */
} qg_tune_conv_shape;

qg_status qg__tune_conv_prepare(qg_ctx *ctx, const qg_tune_conv_shape *s, void **state);
qg_status qg__tune_conv_run(qg_ctx *ctx, void *state);
qg_status qg__tune_conv_check(qg_ctx *ctx, void *state, double *err);
void qg__tune_conv_release(void *state);
/* Multiply-adds times two of one run (forward and both gradients). */
double qg__tune_conv_flops(const qg_tune_conv_shape *s);

/* Measures, on this device, up to which share of its work units the
 * output-masked conv of shape s (3x3, ungrouped, as qg__convm_takes) is
 * no slower than the dense forward (src/tune/convm_pays.c), prints one
 * line to `log` and, unless dry_run, stores it as PAY (percent; 0: the
 * dense conv wins outright) in the user database under s's shape class.
 * Each point is the median of `runs` timed runs. */
qg_status qg__tune_convm_pays(qg_ctx *ctx, const qg_tune_conv_shape *s, int runs, int dry_run,
                              FILE *log, int *pay);
/* The same for ResNet-20's gated shapes on 28x28 and 32x32 inputs, batch
 * 128 (`qgate tune` without a shapes file). */
qg_status qg__tune_convm_pays_builtin(qg_ctx *ctx, int runs, int dry_run, FILE *log);

/* The crossing of the masked times ms[j] at listed shares share[j]
 * (ascending, share[0] the smallest) with dense_ms, in percent, rounded
 * down: 0 when ms[0] is already slower, 100 when no point is, else
 * linear between the last point at or under dense_ms and the next
 * (at least 1). */
int qg__tune_pays_crossing(const double *share, const double *ms, int n, double dense_ms);

/* max_i |got_i - ref_i| / (floor + |ref_i|); INFINITY when a value is NaN.
 * `floor` sets the scale below which errors count as absolute. */
double qg__tune_max_rel_err(const float *got, const float *ref, size_t n, double floor_);

/* Reads n floats of t and raises *err to their error against ref (as
 * qg__tune_max_rel_err). */
qg_status qg__tune_check_f32(qg_ctx *ctx, const qg_tensor *t, const float *ref, size_t n,
                             double floor_, double *err);

/* Reads n I32 values of t; *err becomes INFINITY when any differs. */
qg_status qg__tune_check_i32(qg_ctx *ctx, const qg_tensor *t, const int32_t *ref, size_t n,
                             double *err);

/* A new F32 tensor of the given shape. With `host`, it is filled with
 * N(0,1)*scale values from `seed` (also returned in *host, malloc'd);
 * without, its contents are undefined. */
qg_status qg__tune_tensor(qg_ctx *ctx, int ndim, const int64_t *shape, const char *name,
                          uint64_t seed, float scale, float **host, qg_tensor **out);

#endif
