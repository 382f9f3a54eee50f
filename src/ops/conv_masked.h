/* src/ops/conv_masked.h: an output-masked ("output-sparse") 3x3
 * convolution (internal API): y = conv(x, w) computed only on the tiles of
 * y where an output mask is on, for gated layers whose gate per output is
 * known before the conv runs (Channel Gating's conditional path,
 * src/model/nodes_cg.c). Kernels: cl/conv_masked.cl; C twin:
 * src/ref/ref_conv_masked.h; tests: tests/test_conv_masked.c; design and
 * measurements: docs/gate_skipping.md.
 *
 * Two forms (tunable MODE of program conv_masked, per shape class as
 * conv_direct's; the default picks by map width). Tiles: a tile is KT
 * output channels x one output row x VW columns of one image; the forward
 * lists, on the device, the tiles with any mask value on (nothing is read
 * back to the host), computes those and writes zeros into the others.
 * The per-output gather computes each output whose mask is on by itself
 * from a channels-last copy of x, so its work follows the gate's density
 * even where every tile holds an output on. Either way y = mask != 0 ?
 * conv(x, w) : 0 everywhere. The weight gradient (one form for both)
 * walks dy's non-zero values; the data gradient of a masked dy is an
 * ordinary transposed conv (the caller's dense plan).
 *
 * Shapes: 3x3 kernels, stride 1 or 2, any padding, groups 1
 * (qg__convm_takes). Layouts as src/ops/conv.h; mask has y's shape, any
 * non-zero float is "on". */
#ifndef QG_OPS_CONV_MASKED_H
#define QG_OPS_CONV_MASKED_H

#include "ops/conv.h"

typedef struct qg_convm qg_convm;

/* 3x3, stride 1 or 2, groups 1. */
int qg__convm_takes(const qg_conv_desc *d);

/* Whether skipping is expected to pay for c's shape and form. Where the
 * tuning database holds a PAY for c's shape class on this device
 * (measured by `qgate tune --shapes FILE`, src/tune/convm_pays.c), that
 * decides: PAY 0 keeps the dense path, PAY > 0 skips while the share of
 * work computed stays at or below PAY percent (qg__convm_keeps_paying).
 * Otherwise the rule measured once on one PoCL machine,
 * docs/gate_skipping.md: the per-output gather's forward
 * pays everywhere it is chosen; the tiles' forward on maps at least 12
 * outputs wide (on 8x8 maps a tile of VW columns is mostly padding and
 * the dense direct kernels' channel-vectorised form is faster). The
 * weight gradient (the gather's, for both forms) pays everywhere. The
 * caller keeps its dense path where it does not (and may free c); the
 * dense weight gradient of a masked dy is exact too. */
int qg__convm_pays(const qg_convm *c);
int qg__convm_wgrad_pays(const qg_convm *c);

/* 1 when c computes one output at a time (tunable MODE 1, or MODE 2 and
 * maps under 12 wide), 0 for tiles. */
int qg__convm_gathers(const qg_convm *c);

/* PAY of c's shape class (percent), -1 when the built-in rule decides. */
int qg__convm_pay_percent(const qg_convm *c);

/* The measured half of the rule: skipping a layer keeps paying while the
 * share of its work units (tiles, or outputs for the gather) a forward
 * computes, less the declared zero blocks' part, stays at or below PAY
 * percent when measured for this device, else QG_CONVM_MAX_TILES. A listed tile or gathered output costs about what
 * the dense direct kernel spends on as many outputs, plus the mask, list
 * and layout passes (measured on PoCL, docs/gate_skipping.md), so a
 * layer that computes more than this share runs dense; callers measure
 * it now and then (qg__convm_tiles, one read back) and hold the dense
 * path in between. */
#define QG_CONVM_MAX_TILES 0.8
/* The same for the gather's outputs: one computed by itself costs up to
 * 1.4x its share of the dense kernel's time (C = 16, no zero blocks), and
 * the layout passes cost a fifth of a dense forward. */
#define QG_CONVM_MAX_OUTPUTS 0.6
int qg__convm_keeps_paying(const qg_convm *c, long listed, long total);

/* That rule for a gated layer, in one place: call qg__convm_should_skip
 * before each forward the layer could skip; 0 means a held verdict says
 * compute it densely. After a skipping forward, qg__convm_after_skip
 * measures when one is due (the first, then every QG_CONVM_HOLD + 1-th:
 * one int read back) and holds that verdict for the next QG_CONVM_HOLD
 * forwards. */
#define QG_CONVM_HOLD 31
int qg__convm_should_skip(qg_convm *c);
qg_status qg__convm_after_skip(qg_convm *c);

/* Test hook: 1 makes qg__convm_pays, qg__convm_wgrad_pays and
 * qg__convm_keeps_paying true (so small test layers skip, always); 0
 * restores the rules. Process-wide; not for concurrent use. */
void qg__convm_pay_always(int on);

/* A masked conv of shape d (from qg__conv_desc_init): resolves its
 * parameters and allocates its buffers (input planes, prepared weights,
 * tile lists, weight-gradient partials). QG_ERR_UNSUPPORTED for shapes
 * qg__convm_takes refuses. */
qg_status qg__convm_new(qg_ctx *ctx, const qg_conv_desc *d, qg_convm **out);
void qg__convm_free(qg_convm *c); /* NULL-safe */

/* Declares that w is zero in blocks, as Channel Gating's conditional
 * weights W*(1-M) are on the base path's channels: output channel k has
 * zero weights on input channels [j*C/p, (j+1)*C/p), j = k/(K/p) when
 * `group` (the block-diagonal mask), else j = 0 (the first C/p channels).
 * Both passes then skip those products (a tile whose KT channels share
 * the block; p = 1: none), which leaves the forward's values unchanged
 * (they add exact zeros), and the weight gradient there is written as 0.
 * QG_ERR_INVALID_ARG when p does not divide C (and K with group). */
qg_status qg__convm_zero_blocks(qg_convm *c, int p, int group);

/* y = mask != 0 ? conv(x, w) : 0, computing only the tiles with any mask
 * value on. The list and x's planes stay for qg__convm_bwd_weight. */
qg_status qg__convm_fwd(qg_convm *c, const qg_tensor *x, const qg_tensor *w,
                        const qg_tensor *mask, qg_tensor *y);

/* dw (= or += when accumulate) = corr(x, dy), walking dy's non-zero
 * values only (a gradient masked by the forward's mask is zero elsewhere),
 * x being the last qg__convm_fwd's input (unchanged since: the gather
 * form reuses that forward's channels-last copy, the tiles form makes
 * one); 0 (or unchanged, when accumulate) on declared zero weight blocks.
 * Partial sums per image chunk, added in a fixed order: deterministic. */
qg_status qg__convm_bwd_weight(qg_convm *c, const qg_tensor *x, const qg_tensor *dy,
                               qg_tensor *dw, int accumulate);

/* dx (= or += when accumulate) = the transposed conv of dy with w,
 * walking dy's non-zero values only (one pass lists them per output
 * position): exact for any dy, and cheaper than the dense transposed conv
 * when dy is zero outside a sparse mask (CG's conditional path). The
 * products with declared zero weight blocks are skipped where they are
 * whole channel vectors. Buffers for it are made at the first call.
 * Summation order differs from the dense plan's (float rounding). */
qg_status qg__convm_bwd_data(qg_convm *c, const qg_tensor *dy, const qg_tensor *w,
                             qg_tensor *dx, int accumulate);

/* Whether qg__convm_bwd_data is expected to beat the dense transposed conv
 * at gate densities up to about half (measured on PoCL,
 * docs/gate_skipping.md): from 32 input channels on; with 16 a dy value
 * feeds too few products to pay for finding it. */
int qg__convm_dgrad_pays(const qg_convm *c);

/* The tiles the last forward listed and all tiles (reads one int back;
 * for statistics and tests). */
qg_status qg__convm_tiles(qg_convm *c, long *listed, long *total);

/* The same summed over the forwards since the last qg__convm_tiles_reset
 * (or the conv's creation): the share of the work computed. */
qg_status qg__convm_tiles_sum(qg_convm *c, long long *listed, long long *total);
qg_status qg__convm_tiles_reset(qg_convm *c);

#endif
