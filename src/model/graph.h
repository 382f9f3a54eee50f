/* src/model/graph.h: a model as an ordered list of nodes over numbered
 * activations (internal).
 *
 * Each node reads one or two activations and writes one. Forward runs the
 * nodes in order; backward runs them in reverse, each adding into the
 * gradient of its inputs (the first writer of a gradient overwrites, later
 * writers accumulate, so fan-out such as a residual input needs no zeroing
 * pass). Activation values and gradients are views into one device arena
 * sized once by qg__model_setup, so a training step allocates nothing;
 * gradients not live at the same time in backward share memory, so a node
 * may touch only the gradients of its own inputs and output.
 * Parameters belong to their node and carry PyTorch state-dict names. */
#ifndef QG_MODEL_GRAPH_H
#define QG_MODEL_GRAPH_H

#include <stddef.h>
#include <stdint.h>
#include <CL/cl.h>
#include "qgate/tensor.h"

typedef struct qg_model qg_model;
typedef struct qg_node qg_node;

typedef enum qg_param_kind {
    QG_PARAM_WEIGHT = 0,   /* conv / linear weights: weight decay applies */
    QG_PARAM_BIAS = 1,     /* biases */
    QG_PARAM_BN = 2,       /* batch-norm gamma / beta */
    QG_PARAM_GATE = 3,     /* gating thresholds */
    QG_PARAM_CLIP = 4,     /* PACT alpha */
    QG_PARAM_BUFFER = 5    /* not trained: running statistics, masks */
} qg_param_kind;

typedef struct qg_param {
    char name[96];           /* PyTorch state-dict name */
    qg_param_kind kind;
    qg_tensor *value;
    qg_tensor *grad;         /* NULL for buffers */
    qg_tensor *state[2];     /* optimizer state (momentum / Adam m, v) */
    int flex_last;           /* the last axis's length follows a loaded checkpoint
                                (BSQ's bit planes: each layer has its own precision) */
} qg_param;

typedef struct qg_act {
    int ndim;
    int64_t shape[QG_MAX_DIMS];  /* shape[0] is the batch */
    qg_tensor *value;
    qg_tensor *grad;
    int grad_written;        /* set during backward */
} qg_act;

typedef struct qg_node_ops {
    const char *type;
    /* Called once the batch size is known: output shape is already set;
     * nodes allocate private per-batch buffers here and report workspace
     * floats they need (shared scratch). */
    qg_status (*setup)(qg_node *n, qg_model *m, size_t *workspace_floats);
    qg_status (*forward)(qg_node *n, qg_model *m, int train);
    qg_status (*backward)(qg_node *n, qg_model *m);
    void (*destroy)(qg_node *n);
    /* Optional: gating counters since the last reset (outputs, outputs
     * updated in full precision) and how to reset them. */
    qg_status (*gate_counts)(qg_node *n, qg_model *m, long long *total, long long *on);
    qg_status (*gate_reset)(qg_node *n, qg_model *m);
    /* Optional: multiply-adds per sample of the dense layer (node types
     * nodes.c does not know), and, for gated nodes whose skipped work is
     * real compute (CG), the cost relative to dense when the share r of
     * the outputs is computed in full. */
    double (*macs)(const qg_model *m, const qg_node *n);
    double (*gated_cost)(const qg_node *n, double r);
    /* Optional, for nodes that skip work their gates turn off
     * (docs/gate_skipping.md): units of skippable work (tiles) computed and
     * in all, summed over the forwards since the last gate_reset; *total
     * is 0 when no forward skipped (dense gating, or a shape that keeps
     * the dense path). */
    qg_status (*skip_tiles)(qg_node *n, qg_model *m, long long *computed, long long *total);
} qg_node_ops;

struct qg_node {
    const qg_node_ops *ops;
    char name[80];           /* state-dict prefix, e.g. "layer1.0.conv1" */
    int in[2];               /* activation ids (-1 = none) */
    int out;
    void *priv;
};

/* An auxiliary loss term (a regulariser: PG's and CG's gating losses,
 * BSQ's bit-level group Lasso): adds its value into loss[0] and its
 * gradient into the parameters' grads, after backward. `node` is the node
 * index it belongs to (-1: none; passed as NULL), `user` its own state. */
typedef qg_status (*qg_aux_loss_fn)(qg_node *node, qg_model *m, void *user, qg_tensor *loss);
typedef struct qg_aux_loss {
    char name[80];
    qg_aux_loss_fn fn;
    int node;
    void *user;
} qg_aux_loss;

struct qg_method_cfg;
struct qg_qbits;

struct qg_model {
    qg_ctx *ctx;
    char arch[64];
    char shortcut;           /* the builder's shortcut option ('A', 'B'; 0 none) */
    struct qg_method_cfg *methods;  /* a copy of the build's methods (owned), or NULL */
    int in_c, in_h, in_w, classes;
    int batch;               /* set by setup */
    int active;              /* samples of the batch holding data (<= batch): a
                                partial last batch; gate counters count these */
    qg_node *nodes;
    int nnodes, cap_nodes;
    qg_act *acts;
    int nacts, cap_acts;
    qg_param **params;       /* each allocated alone: pointers stay valid */
    int nparams, cap_params;
    qg_aux_loss *aux;        /* auxiliary loss terms, in registration order */
    int naux, cap_aux;
    cl_mem arena;            /* activations and their gradients */
    size_t arena_floats;
    qg_tensor *workspace;    /* shared scratch (im2col...) */
    int train_mode;          /* forward(train) was the last forward */
    qg_tensor *grad_norm_acc; /* 1 float, for gradient clipping */
    double *prof_fwd, *prof_bwd;  /* per-node seconds when profiling (bench) */
    int no_eval_fold;        /* keep eval-mode BN out of the convs (tests compare) */
    int frozen;              /* parameters unchanged since qg__model_freeze(m, 1) */
    unsigned freeze_epoch;   /* counts freezes: what eval folds cached belongs to one */
    int eval_folds;          /* convs linked to their BN (qg__nodes_link_eval_folds) */
    /* Low-precision evaluation: weight quantizers of methods that train
     * float weights toward a grid (PSGD) compute an evaluation forward with
     * the quantized weights while this is set (src/model/wquant.h). */
    int lowp;
    /* With lowp: PSG-pytorch's activation quantization at evaluation
     * (eval.py --act_quant 1 --act_clipping 1): each batch norm whose ReLU
     * is fused into it quantizes that ReLU's output on an unsigned
     * lowp_abits grid over [0, max_c(beta_c + lowp_act_clip*gamma_c)]
     * (src/model/nodes.c; 0 bits: float activations). */
    int lowp_abits;
    float lowp_act_clip;
    int dense_gates;         /* gated layers compute their skipped work densely and mask it
                                (--dense-gates), for comparison with skipping */
    struct qg_wquant **wquants;  /* the layers' weight quantizers, in build order (a
                                    method's hooks walk them; src/model/wquant.h) */
    int nwquants, cap_wquants;
    int run_epochs;          /* epochs of the training run in progress (set by the
                                trainer; 0 outside one): a method's last-epoch work */
    struct qg_qbits *qbits;  /* per-quantizer bit widths (src/model/qbits.h), or NULL */
};

qg_status qg__model_new(qg_ctx *ctx, const char *arch, int in_c, int in_h, int in_w,
                        int classes, qg_model **out);
void qg__model_free(qg_model *m);

/* Adds an activation of per-sample shape (C, H, W) (H = W = 0: rank 2
 * [N, C]); returns its id. */
int qg__model_add_act(qg_model *m, int c, int h, int w);
/* Adds a node; returns its index or -1 on allocation failure. */
int qg__model_add_node(qg_model *m, const qg_node_ops *ops, const char *name, int in0,
                       int in1, int out, void *priv);
/* Creates a parameter tensor owned by the model (zeroed; grad too unless
 * kind is QG_PARAM_BUFFER) and returns it via *p. */
qg_status qg__model_add_param(qg_model *m, const char *name, qg_param_kind kind, int ndim,
                              const int64_t *shape, qg_param **p);
qg_param *qg__model_find_param(qg_model *m, const char *name);
/* Gives a parameter a new shape: value and grad become zeroed tensors of
 * that shape, and optimizer state, where it existed, zeroed state of that
 * shape (a method whose parameter set changes between steps: BSQ's
 * precision changes). The qg_param pointer stays valid. */
qg_status qg__model_param_resize(qg_model *m, qg_param *p, int ndim, const int64_t *shape);
/* Zeroes every parameter's optimizer state: the next step starts as a
 * freshly built optimizer (SGD momentum buffers empty). For methods that
 * rebuild the optimizer mid-run (BSQ after re-quantization). Adam's step
 * count is the trainer's and is not reset. */
qg_status qg__model_reset_optim_state(qg_model *m);
/* The model's list of weight quantizers (kept by src/model/wquant.c). */
struct qg_wquant;
qg_status qg__model_add_wquant(qg_model *m, struct qg_wquant *q);
void qg__model_remove_wquant(qg_model *m, struct qg_wquant *q);

/* Gradient offsets (floats, from 0) for activations of `sizes` floats,
 * sharing memory between gradients that are never live at once in
 * backward; returns the floats needed (0: out of memory). grad_plan.c. */
size_t qg__grad_plan(const qg_model *m, const size_t *sizes, size_t *off);
/* Sizes the arena and the workspace for `batch` samples. Idempotent for
 * the same batch; a different batch reallocates. */
qg_status qg__model_setup(qg_model *m, int batch);
/* Input activation is id 0; the logits are the last activation. */
qg_tensor *qg__model_input(qg_model *m);
qg_tensor *qg__model_logits(qg_model *m);
qg_tensor *qg__model_logits_grad(qg_model *m);
/* Promises (on = 1) that no parameter changes until qg__model_freeze(m, 0)
 * or a training forward: eval-mode folds then prepare their weights on the
 * first batch and reuse them for the rest (an evaluation pass over a test
 * set). Changing a parameter while frozen is a caller error. */
void qg__model_freeze(qg_model *m, int on);
/* Runs the first `n` samples' worth of the batch (n <= batch). */
qg_status qg__model_forward(qg_model *m, int train);
/* Backward from the logits gradient; parameter grads are overwritten. */
qg_status qg__model_backward(qg_model *m);

/* Registers an auxiliary loss term (see qg_aux_loss). */
qg_status qg__model_add_aux_loss(qg_model *m, const char *name, qg_aux_loss_fn fn, int node,
                                 void *user);
/* Adds every auxiliary loss term (gating) into loss[0] (1 float, zeroed
 * here first) and its gradients; call after qg__model_backward. */
qg_status qg__model_aux_loss(qg_model *m, qg_tensor *loss);
/* Gate statistics over the gated nodes since the last reset. `on` counts
 * outputs computed in full (PG: LSB update done). Per-node values go to
 * the arrays when not NULL (capacity m->nnodes; *ngated entries). */
qg_status qg__model_gate_stats(qg_model *m, long long *total, long long *on, int *ngated,
                               const char **names, long long *node_total, long long *node_on);
qg_status qg__model_gate_reset(qg_model *m);

/* A node's gate counters; in a data-parallel run (ctx->dist_counts) the
 * sums over all processes (collective: every process asks for the same
 * nodes in the same order). */
qg_status qg__node_gate_counts(qg_node *n, qg_model *m, long long *total, long long *on);
/* Compute of the gated model relative to its dense twin, from the gate
 * counters: *full and *effective are multiply-adds per sample summed over
 * every node (non-gated ones at full cost); *ncost is the number of nodes
 * with a gated_cost, whose relative costs go to node_cost (capacity
 * m->nnodes; may be NULL) in node order. *ncost == 0: nothing to report. */
qg_status qg__model_gate_flops(qg_model *m, double *full, double *effective, int *ncost,
                               double *node_cost);

/* Activation helpers for node implementations. */
static inline qg_act *qg__act(qg_model *m, int id) { return &m->acts[id]; }
/* Gradient accumulation flag for input `id`, then marks it written. */
int qg__act_grad_begin(qg_model *m, int id);

/* Links each conv whose output only feeds a batch-norm node to that node,
 * so eval-mode forward folds the BN (and its residual add and ReLU) into
 * the conv's weights and epilogue: one pass instead of three. Called by
 * qg__model_setup once the nodes are set up. */
qg_status qg__nodes_link_eval_folds(qg_model *m);

/* Parameter count (trainable elements) and multiply-adds per sample of
 * the nodes that report them (conv, linear). */
size_t qg__model_param_count(const qg_model *m);

/* Per-node timing: every node is followed by clFinish and its wall time
 * added to prof_fwd/prof_bwd (slows the run; for bench --profile). */
qg_status qg__model_profile_enable(qg_model *m);

#endif
