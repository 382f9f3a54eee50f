/* src/model/nodes.h: builders for the basic node types (conv, bn, relu,
 * residual add, global average pool, linear). Each adds its parameters to
 * the model under PyTorch state-dict names and returns the output
 * activation id, or -1 with the error recorded in the context. */
#ifndef QG_MODEL_NODES_H
#define QG_MODEL_NODES_H

#include "core/rng.h"
#include "model/graph.h"
#include "model/wquant.h"
#include "ops/conv.h"

int qg__node_conv(qg_model *m, const char *name, int in, int cout, int k, int stride, int pad,
                  int groups, int bias, qg_rng *rng);
/* The same with a method's weight quantizer (ops NULL: float weights);
 * an eval-mode BN fold is skipped for quantized weights. */
int qg__node_conv_wq(qg_model *m, const char *name, int in, int cout, int k, int stride,
                     int pad, int groups, int bias, const qg_wquant_ops *wq,
                     const void *wq_cfg, qg_rng *rng);
int qg__node_bn(qg_model *m, const char *name, int in);
/* Asks the batch norm node that produces activation `act` to write max |y|
 * + QG_QUANT_EPS (the PG scale of its output) into ymax in each training
 * forward and set *fresh then; the consumer clears *fresh when it has used
 * the value, and computes the scale itself when *fresh is 0 (eval, where
 * the BN may be folded away). 1 when accepted; 0 when `act` has no such
 * producer or it already serves another tensor. Call again after each
 * setup that recreates ymax. */
int qg__node_bn_offer_ymax(qg_model *m, int act, qg_tensor *ymax, int *fresh);
/* Asks the batch norm node that produces activation `act`, when its fused
 * ReLU or PACT writes it and the asker is its only reader, to pass
 * gradient only where act != 0 (the asker's quantizer STE) in its own
 * backward mask. 1 when it does (the asker then stores its data gradient
 * unmasked), 0 otherwise. */
int qg__node_bn_take_ste(qg_model *m, int act);
/* Batch norm with the block's residual add and ReLU fused in:
 * relu(bn(in) + shortcut(res_in)); res_in -1 for none (shapes as in
 * qg__node_residual, stride for option A); relu 0 for no clamp. The
 * parameters are named as qg__node_bn's. */
int qg__node_bn_act(qg_model *m, const char *name, int in, int res_in, int stride, int relu);
/* The same with PACT's clip to [0, alpha] instead of the ReLU: alpha is the
 * parameter `alpha_name` (shared when it exists, else added, init 6.0, as
 * qg__node_pact's). Equals qg__node_bn_act(.., relu 0) then qg__node_pact. */
int qg__node_bn_pact(qg_model *m, const char *name, int in, int res_in, int stride,
                     const char *alpha_name);
int qg__node_relu(qg_model *m, const char *name, int in);
/* out = main + shortcut(x): identity when shapes match, else option A
 * (stride-2 subsample, zero-padded channels). */
int qg__node_residual(qg_model *m, const char *name, int main_in, int x_in, int stride);
int qg__node_gap(qg_model *m, const char *name, int in);
int qg__node_linear(qg_model *m, const char *name, int in, int out_features, qg_rng *rng);
int qg__node_linear_wq(qg_model *m, const char *name, int in, int out_features,
                       const qg_wquant_ops *wq, const void *wq_cfg, qg_rng *rng);

/* Dropout with drop probability p in [0, 1) (src/model/nodes_dropout.c):
 * a training forward zeroes each element with probability p and scales the
 * rest by 1/(1-p), with a fresh mask each forward (a 64-bit key from the
 * node's seed, drawn from rng, and its count of training forwards; the
 * backward recomputes the last forward's mask from that key); an
 * evaluation forward is the identity. */
int qg__node_dropout(qg_model *m, const char *name, int in, float p, qg_rng *rng);
/* Tests: makes the dropout node `name` use the mask of `key` in every
 * training forward from now on. */
qg_status qg__node_dropout_hold(qg_model *m, const char *name, uint64_t key);

/* Parameter initialisation on the host (seeded), uploaded to the device. */
qg_status qg__param_init_normal(qg_param *p, double stddev, qg_rng *rng);
qg_status qg__param_init_const(qg_param *p, float v);

/* Private per-batch buffers of node setups: an F32 tensor shaped like the
 * activation `a` (any previous *t is freed first, so a new batch size
 * reallocates), and a 1-element tensor of dtype dt (kept if it exists). */
qg_status qg__node_tensor_like(qg_model *m, const qg_act *a, const char *name, qg_tensor **t);
qg_status qg__node_scalar(qg_model *m, qg_dtype dt, const char *name, qg_tensor **t);
/* The samples of the batch that hold data: m->active (a partial last
 * batch) or m->batch. */
int qg__model_rows(const qg_model *m);
/* For a partial batch (qg__model_rows(m) < m->batch), a view of the first
 * qg__model_rows(m) samples of `t` (an activation-shaped tensor, dim 0 the
 * batch) in *view; otherwise *view = NULL and the whole of t is meant.
 * Every reduction across samples (a whole-tensor scale) and every counter
 * over a batch takes this view, so the stale rows of the previous batch
 * change nothing; the caller frees *view. */
qg_status qg__node_rows_view(const qg_model *m, qg_tensor *t, qg_tensor **view);
/* The buffer a conv keeps its input's planes in from the training forward
 * to the weight gradient (qg__conv_enqueue_fwd's keep), created on the first
 * training forward, so inference never holds one; *keep stays NULL where
 * the plan cannot keep them (no QG_CONV_CAP_KEEP_PLANES). *asked (0 after
 * setup) makes it ask once, not every step. */
qg_status qg__node_keep_planes(qg_model *m, const qg_conv_plan *plan, qg_tensor **keep,
                               int *asked);

/* Counters of a gated node: outputs gated since the last reset (host)
 * and outputs computed in full (an I32 device tensor the gate kernels add
 * into; read only when asked). */
typedef struct qg_gate_counter {
    qg_tensor *count;
    long long outputs;
} qg_gate_counter;
qg_status qg__gate_counter_read(const qg_gate_counter *g, long long *total, long long *on);
qg_status qg__gate_counter_reset(qg_gate_counter *g);

/* Multiply-adds per sample of a node (0 for the cheap ones). */
double qg__node_macs(const qg_model *m, const qg_node *n);

#endif
