/* src/ops/conv_impl.h: what the conv files share (private to src/ops/):
 * the plan's layout, the direct kernels' parameters and geometry, and the
 * entry points of each path. conv_plan.c decides and dispatches,
 * conv_direct.c (cl/conv_direct.cl) and conv_gemm.c (cl/im2col.cl) run
 * what it decided, linear.c borrows the GEMM path's helpers; see conv.h.
 * C twins: src/ref/ref_conv.h; tests: tests/test_conv.c. */
#ifndef QG_OPS_CONV_IMPL_H
#define QG_OPS_CONV_IMPL_H

#include <stddef.h>

#include "cl/ctx.h"
#include "gemm/gemm.h"
#include "ops/conv.h"
#include "tensor/tensor_impl.h"

/* Default workspace: enough for chunks of up to this many floats. */
#define QG_CONV_WS_TARGET ((size_t)16 << 20)

/* ---- direct kernels (conv_direct.c) ---- */

/* Parameters of program conv_direct, in its registry order. */
typedef struct qg_conv_dparams {
    long WG, VW, JT, KT, WKT, WN;
    qg_variant *v;            /* the program variant they resolved to */
} qg_conv_dparams;

/* Geometry of the prepared planes of one stride-1 pass: T x T taps over
 * planes of row stride Wd, J computed positions (multiple of `jm`), plane
 * length L covering every tap of every position (whole rows), plus QV, the
 * vector slots per output row when the forward kernel runs in slot mode
 * (0: flat mode; see qg_conv_direct_fwd). The slot reads of a row end at
 * most VW - 1 past it, inside the zero rows that close the plane. */
typedef struct qg_conv_dgeom {
    int T, Hd, Wd, J, L, QV;
    int ph;     /* phase planes of a stride-2 3x3 conv, read tap by tap */
} qg_conv_dgeom;

/* Where the whole-batch backward keeps what in its workspace, for all N
 * images; ok = 0 when the shape has no shared-dy form. */
typedef struct qg_conv_bwd_layout {
    int ok, s2, kv, kvw, Kt, T, Ci, TD, Kp, dKo, Hp, Wp, wn, nchunks;
    qg_conv_dgeom gw, gy;
    size_t dy_off, part1, o_ph, o_dy, o_x, o_part, o_dyt, total;
    size_t wgs; /* floats between the data gradient's weight layouts of two groups */
} qg_conv_bwd_layout;

/* What the direct kernels need of a shape under parameters p, for the plan
 * to decide with: workspace floats of one image of each chunked pass, the
 * whole-batch backward's layouts (both gradients, data only, weight only),
 * the kept planes' length (0: none) and the prepared weights' floats. */
typedef struct qg_conv_direct_needs {
    size_t fwd_one, bwd_data_one, bwd_weight_one;
    qg_conv_bwd_layout both, data, weight;
    int keep_L;
    size_t keep_floats, wprep_floats;
} qg_conv_direct_needs;

/* 3x3 convolutions with stride 1 or 2 and pad <= 2, grouped or not. */
int qg__conv_direct_takes(const qg_conv_desc *d);
/* The set tuned for d's shape class when there is one (qgate tune
 * --shapes FILE), else the program-wide one. */
qg_status qg__conv_direct_params(qg_ctx *ctx, const qg_conv_desc *d, qg_conv_dparams *p);
void qg__conv_direct_needs(const qg_conv_desc *d, const qg_conv_dparams *p,
                           qg_conv_direct_needs *n);
/* Workspace floats the direct kernels want under any valid parameters;
 * 0 for shapes they do not take. */
size_t qg__conv_direct_ws_bound(const qg_conv_desc *d);

/* x's input quantizer, applied while its planes are prepared: the table of
 * qg_conv_direct_qtable (32 floats at 0 of t) and the levels L; L = 0:
 * none. */
typedef struct qg_conv_dquant {
    cl_mem t;
    int L;
} qg_conv_dquant;

/* What a forward may keep across calls: x's planes for the backward
 * (keep) and the weights in the kernels' layout (wprep; prepared unless
 * wprep_ready). NULL members: the workspace serves. */
typedef struct qg_conv_fwd_cache {
    const qg_tensor *keep, *wprep;
    int wprep_ready;
    qg_conv_dquant q;
} qg_conv_fwd_cache;

/* The table of the quantizer by scale s at L levels, in the context's
 * scratch buffer (*q). */
qg_status qg__conv_direct_qtable(const qg_conv_plan *pl, const qg_tensor *s, int L,
                                 qg_conv_dquant *q);
/* The passes, in image chunks as large as ws holds (the plan checked that
 * one image fits): forward (y =/+= conv + bias (+ add), ReLU), data
 * gradient, weight gradient. */
qg_status qg__conv_direct_fwd(const qg_conv_plan *pl, const qg_tensor *x, const qg_tensor *w,
                              const qg_tensor *bias, qg_tensor *y, qg_tensor *ws, int accumulate,
                              const qg_tensor *add, int relu, const qg_conv_fwd_cache *fc);
qg_status qg__conv_direct_bwd_data(const qg_conv_plan *pl, const qg_tensor *dy,
                                   const qg_tensor *w, qg_tensor *dx, qg_tensor *ws,
                                   int accumulate);
qg_status qg__conv_direct_bwd_weight(const qg_conv_plan *pl, const qg_tensor *x,
                                     const qg_tensor *dy, qg_tensor *dw, qg_tensor *dbias,
                                     qg_tensor *ws, int accumulate);
/* The whole-batch backward in layout b (one of the plan's), dy prepared
 * once for both gradients; dx or dw may be NULL (as b was made for). */
qg_status qg__conv_direct_bwd(const qg_conv_plan *pl, const qg_conv_bwd_layout *b,
                              const qg_tensor *x, const qg_tensor *dy, const qg_tensor *w,
                              qg_tensor *dx, int acc_dx, const qg_tensor *mask, qg_tensor *dw,
                              qg_tensor *dbias, int acc_dw, const qg_tensor *wmask,
                              qg_tensor *ws, const qg_tensor *keep);

/* ---- im2col + GEMM (conv_gemm.c) ---- */

/* Workspace floats one image needs: col plus the CN-ordered output/grad. */
static inline size_t qg__conv_gemm_per_image(const qg_conv_desc *d)
{
    return ((size_t)d->C * d->R * d->S + (size_t)d->K) * (size_t)d->P * d->Q;
}

static inline int qg__conv_pointwise(const qg_conv_desc *d)
{
    return d->R == 1 && d->S == 1 && d->stride == 1 && d->pad == 0;
}

qg_status qg__conv_gemm_fwd(const qg_conv_plan *pl, const qg_tensor *x, const qg_tensor *w,
                            const qg_tensor *bias, qg_tensor *y, qg_tensor *ws);
qg_status qg__conv_gemm_bwd_data(const qg_conv_plan *pl, const qg_tensor *dy,
                                 const qg_tensor *w, qg_tensor *dx, qg_tensor *ws,
                                 int accumulate);
qg_status qg__conv_gemm_bwd_weight(const qg_conv_plan *pl, const qg_tensor *x,
                                   const qg_tensor *dy, qg_tensor *dw, qg_tensor *dbias,
                                   qg_tensor *ws, int accumulate);
/* y[n][k][pq] += bias[k] over the whole of y ([N][K][PQ]). */
qg_status qg__conv_bias_add(qg_ctx *ctx, qg_tensor *y, const qg_tensor *bias, int K, int PQ);
/* db[k] (+)= sum over n, pq of dy[n][k][pq]. */
qg_status qg__conv_bias_grad(qg_ctx *ctx, const qg_tensor *dy, int N, int K, int PQ,
                             qg_tensor *db, int accumulate);

/* ---- shared helpers ---- */

/* Binds tensor t starting `extra` elements into it. */
static inline void qg__conv_karg_at(qg_kargs *a, const qg_tensor *t, size_t extra)
{
    qg__karg_mem(a, t->mem);
    qg__karg_int(a, (int)(t->offset + extra));
}

static inline qg_gemm_operand qg__conv_opnd(const qg_tensor *t, size_t extra, size_t ld)
{
    return (qg_gemm_operand){.mem = t->mem, .offset = t->offset + extra, .ld = ld};
}

/* QG_OK when t is an F32 tensor of numel elements, else an error naming op
 * and what. */
qg_status qg__conv_check_tensor(qg_ctx *ctx, const char *op, const char *what,
                                const qg_tensor *t, size_t numel);

/* ---- the plan (conv_plan.c) ---- */

/* How one pass runs. */
typedef enum qg_conv_route {
    QG_CONV_ROUTE_GEMM,      /* im2col (or col2im) + GEMM per image chunk */
    QG_CONV_ROUTE_POINTWISE, /* 1x1 stride 1: GEMMs reading x and writing y in place */
    QG_CONV_ROUTE_DIRECT,    /* direct kernels per image chunk */
    QG_CONV_ROUTE_SHARED,    /* direct kernels, whole batch, dy prepared once */
} qg_conv_route;

#define QG_CONV_PLAN_NAME_MAX 160

struct qg_conv_plan {
    qg_ctx *ctx;
    qg_conv_desc d;
    unsigned caps;
    size_t ws_floats;
    int quant_levels;         /* 2^quant_bits - 1 with QG_CONV_CAP_FUSED_QUANT, else 0 */
    qg_conv_route fwd, bwd_data, bwd_weight;
    int bwd_shared;           /* both gradients in one whole-batch pass */
    qg_conv_dparams p;        /* direct kernels' parameters (direct shapes) */
    qg_conv_direct_needs dn;  /* and what they need (direct shapes) */
    char name[QG_CONV_PLAN_NAME_MAX];
};

#endif
