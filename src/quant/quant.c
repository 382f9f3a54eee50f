/* src/quant/quant.c: launchers for cl/quant.cl (contract and semantics in
 * src/quant/quant.h). C twins: src/ref/ref_quant.c; tests:
 * tests/test_quant.c.
 *
 * Every launcher checks dtypes and element counts before enqueueing, so a
 * kernel never runs on mismatched tensors. Grid-stride reductions use at
 * most MAX_GROUPS groups, so their partials fit QG_QUANT_WS_NUMEL. */
#include "config.h"

#include "core/error.h"
#include "cl/ctx.h"
#include "quant/quant.h"
#include "tensor/tensor_impl.h"

#define MAX_GROUPS 64
_Static_assert(2 * MAX_GROUPS <= QG_QUANT_WS_NUMEL, "workspace too small for the partials");

/* Output selectors of qg_quant_apply (same values as cl/quant.cl). */
enum { OUT_FULL = 1, OUT_MSB = 2, OUT_LSB = 4, OUT_CODES = 8 };

static qg_status need(qg_ctx *ctx, const char *op, const char *what, const qg_tensor *t,
                      size_t numel, qg_dtype dt)
{
    return qg__tensor_need(ctx, op, what, t, numel, dt);
}

static qg_status need_ws(qg_ctx *ctx, const char *op, const qg_tensor *ws)
{
    if (ws->dtype != QG_DTYPE_F32 || qg_tensor_numel(ws) < QG_QUANT_WS_NUMEL)
        return qg__error(ctx, QG_ERR_INVALID_ARG,
                         "%s: workspace '%s' must be F32 with at least %d elements", op,
                         ws->name, QG_QUANT_WS_NUMEL);
    return QG_OK;
}

static qg_status check_n(qg_ctx *ctx, const char *op, size_t n)
{
    if (n > (size_t)0x7fffffff)
        return qg__error(ctx, QG_ERR_SHAPE, "%s: %zu elements exceed the kernels' int indexing",
                         op, n);
    return QG_OK;
}

static qg_status get(qg_ctx *ctx, qg_kernel_id kernel, qg_kargs *a, size_t *wg)
{
    return qg__kargs_get(ctx, kernel, a, wg);
}

static qg_status launch1d(qg_kargs *a, size_t n, size_t wg)
{
    size_t g = n ? n : 1, l = wg;
    return qg__kargs_launch(a, 1, &g, &l);
}

/* Items of an elementwise kernel that takes VW elements per item. */
static qg_status vw_items(qg_ctx *ctx, size_t n, size_t *items)
{
    const long *v;
    qg_status st = qg__program_values(ctx, QG_PROG_QUANT, &v);
    if (st != QG_OK)
        return st;
    *items = (n + (size_t)v[QG_QUANT_VW] - 1) / (size_t)v[QG_QUANT_VW];
    return QG_OK;
}

/* Groups for a grid-stride pass over n elements. */
static size_t groups_for(size_t n, size_t wg)
{
    size_t g = (n + wg - 1) / wg;
    if (g > MAX_GROUPS)
        g = MAX_GROUPS;
    return g ? g : 1;
}

/* Binds `t`, or `stand_in` (never accessed by the kernel) when t is NULL. */
static void karg_opt(qg_kargs *a, const qg_tensor *t, const qg_tensor *stand_in)
{
    qg__karg_tensor(a, t ? t : stand_in);
}

static int bits_round_ok(int bits)
{
    return bits >= 2 && bits <= QG_QUANT_MAX_BITS;
}

/* ---- scales and round-to-bits ---- */

size_t qg__quant_scale_numel(const qg_tensor *x, qg_qscale mode)
{
    return mode == QG_QSCALE_TF_SAMPLE && x->ndim > 0 ? (size_t)x->shape[0] : 1;
}

qg_status qg__quant_scale(qg_ctx *ctx, const qg_tensor *x, qg_qscale mode, qg_tensor *s)
{
    const char *op = "quant_scale";
    if (mode != QG_QSCALE_PG && mode != QG_QSCALE_TF_TENSOR && mode != QG_QSCALE_TF_SAMPLE)
        return qg__error(ctx, QG_ERR_INVALID_ARG, "%s: unknown scale mode %d", op, (int)mode);
    size_t n = qg_tensor_numel(x), nseg = qg__quant_scale_numel(x, mode);
    qg_status st = need(ctx, op, "x", x, n, QG_DTYPE_F32);
    if (st == QG_OK)
        st = need(ctx, op, "scale", s, nseg, QG_DTYPE_F32);
    if (st == QG_OK)
        st = check_n(ctx, op, n);
    if (st != QG_OK)
        return st;
    if (n == 0 || nseg == 0 || n % nseg)
        return qg__error(ctx, QG_ERR_SHAPE, "%s: cannot split %zu elements into %zu samples", op,
                         n, nseg);
    qg_kargs a;
    size_t wg, seg_len = n / nseg;
    st = qg_tensor_zero(s);
    if (st == QG_OK)
        st = get(ctx, QG_K_QUANT_ABSMAX, &a, &wg);
    if (st != QG_OK)
        return st;
    qg__karg_tensor(&a, x);
    qg__karg_int(&a, (int)seg_len);
    qg__karg_int(&a, 0);
    qg__karg_tensor(&a, s);
    size_t g[2] = {groups_for(seg_len, wg) * wg, nseg}, l[2] = {wg, 1};
    st = qg__kargs_launch(&a, 2, g, l);
    if (st != QG_OK || mode != QG_QSCALE_PG)
        return st;
    st = get(ctx, QG_K_QUANT_SCALE_EPS, &a, &wg);
    if (st != QG_OK)
        return st;
    qg__karg_tensor(&a, s);
    qg__karg_int(&a, (int)nseg);
    qg__karg_float(&a, QG_QUANT_EPS);
    return launch1d(&a, nseg, wg);
}

qg_status qg__quant_apply(qg_ctx *ctx, const qg_tensor *x, const qg_tensor *s, int bits,
                          int msb_bits, qg_tensor *full, qg_tensor *msb, qg_tensor *lsb,
                          qg_tensor *codes)
{
    const char *op = "quant_apply";
    size_t n = qg_tensor_numel(x);
    qg_status st = need(ctx, op, "x", x, n, QG_DTYPE_F32);
    if (st != QG_OK)
        return st;
    if (!s || s->dtype != QG_DTYPE_F32)
        return qg__error(ctx, QG_ERR_INVALID_ARG, "%s: scale tensor must be F32", op);
    size_t nseg = qg_tensor_numel(s);
    if (nseg != 1 && !(x->ndim > 0 && nseg == (size_t)x->shape[0]))
        return qg__error(ctx, QG_ERR_SHAPE,
                         "%s: scale '%s' has %zu elements; expected 1 or dim 0 of '%s'", op,
                         s->name, nseg, x->name);
    if (!bits_round_ok(bits))
        return qg__error(ctx, QG_ERR_INVALID_ARG, "%s: bits=%d outside 2..%d", op, bits,
                         QG_QUANT_MAX_BITS);
    int outs = 0;
    if (full && (st = need(ctx, op, "full", full, n, QG_DTYPE_F32)) == QG_OK)
        outs |= OUT_FULL;
    if (st == QG_OK && msb && (st = need(ctx, op, "msb", msb, n, QG_DTYPE_F32)) == QG_OK)
        outs |= OUT_MSB;
    if (st == QG_OK && lsb && (st = need(ctx, op, "lsb", lsb, n, QG_DTYPE_F32)) == QG_OK)
        outs |= OUT_LSB;
    if (st == QG_OK && codes && (st = need(ctx, op, "codes", codes, n, QG_DTYPE_I32)) == QG_OK)
        outs |= OUT_CODES;
    if (st == QG_OK)
        st = check_n(ctx, op, n);
    if (st != QG_OK)
        return st;
    if ((outs & (OUT_MSB | OUT_LSB)) && (msb_bits < 1 || msb_bits >= bits))
        return qg__error(ctx, QG_ERR_INVALID_ARG, "%s: msb_bits=%d must be in 1..%d for bits=%d",
                         op, msb_bits, bits - 1, bits);
    if (n == 0 || !outs)
        return QG_OK;
    qg_kargs a;
    size_t wg;
    if ((st = get(ctx, QG_K_QUANT_APPLY, &a, &wg)) != QG_OK)
        return st;
    qg__karg_tensor(&a, x);
    qg__karg_int(&a, (int)n);
    qg__karg_int(&a, (int)(n / nseg));
    qg__karg_tensor(&a, s);
    qg__karg_int(&a, bits);
    qg__karg_int(&a, (outs & (OUT_MSB | OUT_LSB)) ? bits - msb_bits : 0);
    qg__karg_int(&a, outs);
    karg_opt(&a, full, x);
    karg_opt(&a, msb, x);
    karg_opt(&a, lsb, x);
    karg_opt(&a, codes, x);
    size_t items;
    if ((st = vw_items(ctx, n, &items)) != QG_OK)
        return st;
    return launch1d(&a, items, wg);
}

qg_status qg__quant_fwd(qg_ctx *ctx, const qg_tensor *x, int bits, qg_qscale mode,
                        qg_tensor *s, qg_tensor *y)
{
    const char *op = "quant_fwd";
    size_t n = qg_tensor_numel(x);
    qg_status st = need(ctx, op, "x", x, n, QG_DTYPE_F32);
    if (st == QG_OK)
        st = need(ctx, op, "y", y, n, QG_DTYPE_F32);
    if (st != QG_OK)
        return st;
    if (bits >= 2 && mode == QG_QSCALE_PG && n > 0 && n <= QG_QUANT_SMALL_MAX &&
        bits_round_ok(bits)) {
        /* a conv's weights every step: one launch instead of a fill and three */
        qg_kargs a;
        size_t wg;
        if ((st = need(ctx, op, "scale", s, 1, QG_DTYPE_F32)) != QG_OK ||
            (st = get(ctx, QG_K_QUANT_SMALL_PG, &a, &wg)) != QG_OK)
            return st;
        qg__karg_tensor(&a, x);
        qg__karg_int(&a, (int)n);
        qg__karg_int(&a, bits);
        qg__karg_float(&a, QG_QUANT_EPS);
        qg__karg_tensor(&a, s);
        qg__karg_tensor(&a, y);
        return qg__kargs_launch(&a, 1, &wg, &wg);
    }
    if (bits >= 2) {
        if ((st = qg__quant_scale(ctx, x, mode, s)) != QG_OK)
            return st;
        return qg__quant_apply(ctx, x, s, bits, 0, y, NULL, NULL, NULL);
    }
    if (bits < 0)
        return qg__error(ctx, QG_ERR_INVALID_ARG, "%s: bits=%d is negative", op, bits);
    if ((st = check_n(ctx, op, n)) != QG_OK || n == 0)
        return st;
    qg_kargs a;
    size_t wg;
    if ((st = get(ctx, QG_K_QUANT_BINARIZE, &a, &wg)) != QG_OK)
        return st;
    qg__karg_tensor(&a, x);
    qg__karg_tensor(&a, y);
    qg__karg_int(&a, (int)n);
    qg__karg_int(&a, bits);
    return launch1d(&a, n, wg);
}

qg_status qg__quant_ste_bwd(qg_ctx *ctx, const qg_tensor *x, const qg_tensor *dy,
                            qg_tensor *dx, qg_ste mode, int accumulate)
{
    const char *op = "quant_ste_bwd";
    size_t n = qg_tensor_numel(x);
    qg_status st = need(ctx, op, "x", x, n, QG_DTYPE_F32);
    if (st == QG_OK)
        st = need(ctx, op, "dy", dy, n, QG_DTYPE_F32);
    if (st == QG_OK)
        st = need(ctx, op, "dx", dx, n, QG_DTYPE_F32);
    if (st == QG_OK)
        st = check_n(ctx, op, n);
    if (st != QG_OK || n == 0)
        return st;
    qg_kargs a;
    size_t wg;
    if ((st = get(ctx, QG_K_QUANT_STE_BWD, &a, &wg)) != QG_OK)
        return st;
    qg__karg_tensor(&a, x);
    qg__karg_tensor(&a, dy);
    qg__karg_tensor(&a, dx);
    qg__karg_int(&a, (int)n);
    qg__karg_int(&a, mode == QG_STE_NONZERO);
    qg__karg_int(&a, accumulate != 0);
    size_t items;
    if ((st = vw_items(ctx, n, &items)) != QG_OK)
        return st;
    return launch1d(&a, items, wg);
}

/* ---- DoReFa ---- */

static int dorefa_bits_ok(int bits)
{
    return (bits >= 1 && bits <= QG_QUANT_MAX_BITS) || bits >= 32;
}

qg_status qg__dorefa_fwd(qg_ctx *ctx, const qg_tensor *w, int bits, qg_tensor *aux,
                         qg_tensor *wq)
{
    const char *op = "dorefa_fwd";
    size_t n = qg_tensor_numel(w);
    qg_status st = need(ctx, op, "w", w, n, QG_DTYPE_F32);
    if (st == QG_OK)
        st = need(ctx, op, "wq", wq, n, QG_DTYPE_F32);
    if (st == QG_OK && bits < 32)
        st = need(ctx, op, "aux", aux, 1, QG_DTYPE_F32);
    if (st == QG_OK)
        st = check_n(ctx, op, n);
    if (st != QG_OK)
        return st;
    if (!dorefa_bits_ok(bits))
        return qg__error(ctx, QG_ERR_INVALID_ARG, "%s: bits=%d is not 1..%d or >= 32", op, bits,
                         QG_QUANT_MAX_BITS);
    if (n == 0)
        return QG_OK;
    qg_kargs a;
    size_t wg;
    if (bits == 1) {
        if ((st = get(ctx, QG_K_QUANT_DOREFA_MEAN, &a, &wg)) != QG_OK)
            return st;
        qg__karg_tensor(&a, w);
        qg__karg_int(&a, (int)n);
        qg__karg_tensor(&a, aux);
        size_t g = wg;
        if ((st = qg__kargs_launch(&a, 1, &g, &wg)) != QG_OK)
            return st;
    } else if (bits < 32) {
        if ((st = qg_tensor_zero(aux)) != QG_OK ||
            (st = get(ctx, QG_K_QUANT_ABSMAX, &a, &wg)) != QG_OK)
            return st;
        qg__karg_tensor(&a, w);
        qg__karg_int(&a, (int)n);
        qg__karg_int(&a, 1);
        qg__karg_tensor(&a, aux);
        size_t g[2] = {groups_for(n, wg) * wg, 1}, l[2] = {wg, 1};
        if ((st = qg__kargs_launch(&a, 2, g, l)) != QG_OK)
            return st;
    }
    if ((st = get(ctx, QG_K_QUANT_DOREFA_FWD, &a, &wg)) != QG_OK)
        return st;
    qg__karg_tensor(&a, w);
    qg__karg_int(&a, (int)n);
    qg__karg_int(&a, bits);
    karg_opt(&a, aux, w);
    qg__karg_tensor(&a, wq);
    return launch1d(&a, n, wg);
}

qg_status qg__dorefa_bwd(qg_ctx *ctx, const qg_tensor *w, int bits, const qg_tensor *aux,
                         const qg_tensor *dwq, qg_tensor *dw, qg_dorefa_grad mode,
                         qg_tensor *ws, int accumulate)
{
    const char *op = "dorefa_bwd";
    size_t n = qg_tensor_numel(w);
    qg_status st = need(ctx, op, "w", w, n, QG_DTYPE_F32);
    if (st == QG_OK)
        st = need(ctx, op, "dwq", dwq, n, QG_DTYPE_F32);
    if (st == QG_OK)
        st = need(ctx, op, "dw", dw, n, QG_DTYPE_F32);
    if (st == QG_OK && bits < 32)
        st = need(ctx, op, "aux", aux, 1, QG_DTYPE_F32);
    if (st == QG_OK)
        st = check_n(ctx, op, n);
    if (st != QG_OK)
        return st;
    if (!dorefa_bits_ok(bits))
        return qg__error(ctx, QG_ERR_INVALID_ARG, "%s: bits=%d is not 1..%d or >= 32", op, bits,
                         QG_QUANT_MAX_BITS);
    if (mode != QG_DOREFA_GRAD_DETACH && mode != QG_DOREFA_GRAD_AUTOGRAD)
        return qg__error(ctx, QG_ERR_INVALID_ARG, "%s: unknown gradient mode %d", op, (int)mode);
    int max_path = mode == QG_DOREFA_GRAD_AUTOGRAD && bits >= 2 && bits < 32;
    if (max_path) {
        if (!ws)
            return qg__error(ctx, QG_ERR_INVALID_ARG, "%s: the autograd mode needs a workspace",
                             op);
        if ((st = need_ws(ctx, op, ws)) != QG_OK)
            return st;
    }
    if (n == 0)
        return QG_OK;
    qg_kargs a;
    size_t wg, nparts = 0;
    if (max_path) {
        if ((st = get(ctx, QG_K_QUANT_DOREFA_BWD_PARTIAL, &a, &wg)) != QG_OK)
            return st;
        nparts = groups_for(n, wg);
        qg__karg_tensor(&a, w);
        qg__karg_tensor(&a, dwq);
        qg__karg_int(&a, (int)n);
        qg__karg_tensor(&a, aux);
        qg__karg_tensor(&a, ws);
        size_t g = nparts * wg;
        if ((st = qg__kargs_launch(&a, 1, &g, &wg)) != QG_OK)
            return st;
    }
    if ((st = get(ctx, QG_K_QUANT_DOREFA_BWD, &a, &wg)) != QG_OK)
        return st;
    qg__karg_tensor(&a, w);
    qg__karg_tensor(&a, dwq);
    qg__karg_int(&a, (int)n);
    qg__karg_int(&a, bits);
    karg_opt(&a, aux, w);
    karg_opt(&a, ws, w);
    qg__karg_int(&a, (int)nparts);
    qg__karg_tensor(&a, dw);
    qg__karg_int(&a, accumulate != 0);
    return launch1d(&a, n, wg);
}

/* ---- PACT ---- */

static qg_status pact_check(qg_ctx *ctx, const char *op, const qg_tensor *x,
                            const qg_tensor *alpha, const qg_tensor *y)
{
    size_t n = qg_tensor_numel(x);
    qg_status st = need(ctx, op, "x", x, n, QG_DTYPE_F32);
    if (st == QG_OK)
        st = need(ctx, op, "alpha", alpha, 1, QG_DTYPE_F32);
    if (st == QG_OK)
        st = need(ctx, op, "output", y, n, QG_DTYPE_F32);
    if (st == QG_OK)
        st = check_n(ctx, op, n);
    return st;
}

qg_status qg__pact_fwd(qg_ctx *ctx, const qg_tensor *x, const qg_tensor *alpha, qg_tensor *y)
{
    size_t n = qg_tensor_numel(x);
    qg_status st = pact_check(ctx, "pact_fwd", x, alpha, y);
    if (st != QG_OK || n == 0)
        return st;
    qg_kargs a;
    size_t wg;
    if ((st = get(ctx, QG_K_QUANT_PACT_FWD, &a, &wg)) != QG_OK)
        return st;
    qg__karg_tensor(&a, x);
    qg__karg_tensor(&a, alpha);
    qg__karg_tensor(&a, y);
    qg__karg_int(&a, (int)n);
    size_t items;
    if ((st = vw_items(ctx, n, &items)) != QG_OK)
        return st;
    return launch1d(&a, items, wg);
}

/* Shared tail of the two PACT backwards: kernel `kernel` has been bound up
 * to (but not including) its (part, direct) arguments. With a workspace it
 * runs on several groups whose partials a second pass adds to dalpha. */
static qg_status pact_reduce_launch(qg_ctx *ctx, qg_kargs *a, size_t wg, size_t n,
                                    qg_tensor *dalpha, qg_tensor *ws)
{
    size_t groups = ws ? groups_for(n, wg) : 1;
    qg__karg_tensor(a, ws ? ws : dalpha);
    qg__karg_int(a, ws ? 0 : 1);
    size_t g = groups * wg;
    qg_status st = qg__kargs_launch(a, 1, &g, &wg);
    if (st != QG_OK || !ws)
        return st;
    qg_kargs b;
    if ((st = get(ctx, QG_K_QUANT_PARTIALS_ADD, &b, &wg)) != QG_OK)
        return st;
    qg__karg_tensor(&b, ws);
    qg__karg_int(&b, (int)groups);
    qg__karg_tensor(&b, dalpha);
    g = wg;
    return qg__kargs_launch(&b, 1, &g, &wg);
}

static qg_status pact_bwd_check(qg_ctx *ctx, const char *op, const qg_tensor *x,
                                const qg_tensor *alpha, const qg_tensor *dy, qg_tensor *dx,
                                qg_tensor *dalpha, qg_tensor *ws)
{
    qg_status st = pact_check(ctx, op, x, alpha, dx);
    if (st == QG_OK)
        st = need(ctx, op, "dy", dy, qg_tensor_numel(x), QG_DTYPE_F32);
    if (st == QG_OK)
        st = need(ctx, op, "dalpha", dalpha, 1, QG_DTYPE_F32);
    if (st == QG_OK && ws)
        st = need_ws(ctx, op, ws);
    return st;
}

qg_status qg__pact_bwd(qg_ctx *ctx, const qg_tensor *x, const qg_tensor *alpha,
                       const qg_tensor *dy, qg_tensor *dx, qg_tensor *dalpha,
                       qg_pact_mode mode, qg_tensor *ws, int accumulate)
{
    const char *op = "pact_bwd";
    size_t n = qg_tensor_numel(x);
    qg_status st = pact_bwd_check(ctx, op, x, alpha, dy, dx, dalpha, ws);
    if (st != QG_OK)
        return st;
    if (mode != QG_PACT_PG && mode != QG_PACT_TF && mode != QG_PACT_BSQ)
        return qg__error(ctx, QG_ERR_INVALID_ARG, "%s: unknown PACT mode %d", op, (int)mode);
    if (n == 0)
        return QG_OK;
    qg_kargs a;
    size_t wg;
    if ((st = get(ctx, QG_K_QUANT_PACT_BWD, &a, &wg)) != QG_OK)
        return st;
    qg__karg_tensor(&a, x);
    qg__karg_tensor(&a, alpha);
    qg__karg_tensor(&a, dy);
    qg__karg_tensor(&a, dx);
    qg__karg_int(&a, (int)n);
    qg__karg_int(&a, (int)mode);
    qg__karg_int(&a, accumulate != 0);
    return pact_reduce_launch(ctx, &a, wg, n, dalpha, ws);
}

static int pact_quant_bits_ok(int bits)
{
    return (bits >= 1 && bits <= QG_QUANT_MAX_BITS) || bits >= 32;
}

qg_status qg__pact_quant_fwd(qg_ctx *ctx, const qg_tensor *x, const qg_tensor *alpha,
                             int bits, qg_tensor *y)
{
    const char *op = "pact_quant_fwd";
    size_t n = qg_tensor_numel(x);
    qg_status st = pact_check(ctx, op, x, alpha, y);
    if (st != QG_OK)
        return st;
    if (!pact_quant_bits_ok(bits))
        return qg__error(ctx, QG_ERR_INVALID_ARG, "%s: bits=%d is not 1..%d or >= 32", op, bits,
                         QG_QUANT_MAX_BITS);
    if (n == 0)
        return QG_OK;
    qg_kargs a;
    size_t wg;
    if ((st = get(ctx, QG_K_QUANT_PACT_QUANT_FWD, &a, &wg)) != QG_OK)
        return st;
    qg__karg_tensor(&a, x);
    qg__karg_tensor(&a, alpha);
    qg__karg_int(&a, bits);
    qg__karg_tensor(&a, y);
    qg__karg_int(&a, (int)n);
    return launch1d(&a, n, wg);
}

qg_status qg__pact_quant_bwd(qg_ctx *ctx, const qg_tensor *x, const qg_tensor *alpha, int bits,
                             const qg_tensor *dy, qg_tensor *dx, qg_tensor *dalpha,
                             qg_tensor *ws, int accumulate)
{
    const char *op = "pact_quant_bwd";
    size_t n = qg_tensor_numel(x);
    qg_status st = pact_bwd_check(ctx, op, x, alpha, dy, dx, dalpha, ws);
    if (st != QG_OK)
        return st;
    if (!pact_quant_bits_ok(bits))
        return qg__error(ctx, QG_ERR_INVALID_ARG, "%s: bits=%d is not 1..%d or >= 32", op, bits,
                         QG_QUANT_MAX_BITS);
    if (n == 0)
        return QG_OK;
    qg_kargs a;
    size_t wg;
    if ((st = get(ctx, QG_K_QUANT_PACT_QUANT_BWD, &a, &wg)) != QG_OK)
        return st;
    qg__karg_tensor(&a, x);
    qg__karg_tensor(&a, alpha);
    qg__karg_int(&a, bits);
    qg__karg_tensor(&a, dy);
    qg__karg_tensor(&a, dx);
    qg__karg_int(&a, (int)n);
    qg__karg_int(&a, accumulate != 0);
    return pact_reduce_launch(ctx, &a, wg, n, dalpha, ws);
}

/* ---- ProQHA candidate score ---- */

qg_status qg__pq_score(qg_ctx *ctx, const qg_tensor *grad, float scale, float lr, float beta1,
                       float beta2, float eps, qg_tensor *score, qg_tensor *ws)
{
    const char *op = "pq_score";
    size_t n = qg_tensor_numel(grad);
    qg_status st = need(ctx, op, "grad", grad, n, QG_DTYPE_F32);
    if (st == QG_OK)
        st = need(ctx, op, "score", score, 1, QG_DTYPE_F32);
    if (st == QG_OK && ws)
        st = need_ws(ctx, op, ws);
    if (st == QG_OK)
        st = check_n(ctx, op, n);
    if (st != QG_OK || n == 0)
        return st;
    if (!(beta1 < 1.0f && beta2 < 1.0f))
        return qg__error(ctx, QG_ERR_INVALID_ARG, "%s: betas (%g, %g) must be below 1", op,
                         beta1, beta2);
    qg_kargs a;
    size_t wg;
    if ((st = get(ctx, QG_K_QUANT_PQ_SCORE, &a, &wg)) != QG_OK)
        return st;
    qg__karg_tensor(&a, grad);
    qg__karg_int(&a, (int)n);
    qg__karg_float(&a, scale);
    qg__karg_float(&a, lr);
    qg__karg_float(&a, beta1);
    qg__karg_float(&a, beta2);
    qg__karg_float(&a, eps);
    return pact_reduce_launch(ctx, &a, wg, n, score, ws);
}

/* ---- PG gate ---- */

static qg_status gate_check(qg_ctx *ctx, const char *op, const qg_tensor *o_msb,
                            const qg_tensor *delta, const qg_tensor *o_lsb, int *C, int *HW)
{
    if (!o_msb || o_msb->ndim != 4)
        return qg__error(ctx, QG_ERR_SHAPE, "%s: O_msb must be NCHW (rank 4)", op);
    size_t n = qg_tensor_numel(o_msb);
    *C = (int)o_msb->shape[1];
    *HW = (int)(o_msb->shape[2] * o_msb->shape[3]);
    qg_status st = need(ctx, op, "O_msb", o_msb, n, QG_DTYPE_F32);
    if (st == QG_OK)
        st = need(ctx, op, "delta", delta, (size_t)*C, QG_DTYPE_F32);
    if (st == QG_OK)
        st = need(ctx, op, "O_lsb", o_lsb, n, QG_DTYPE_F32);
    if (st == QG_OK)
        st = check_n(ctx, op, n);
    return st;
}

qg_status qg__pg_gate_fwd(qg_ctx *ctx, const qg_tensor *o_msb, const qg_tensor *delta,
                          const qg_tensor *o_lsb, float slope, qg_tensor *y,
                          qg_tensor *count)
{
    const char *op = "pg_gate_fwd";
    int C, HW;
    qg_status st = gate_check(ctx, op, o_msb, delta, o_lsb, &C, &HW);
    size_t n = st == QG_OK ? qg_tensor_numel(o_msb) : 0;
    if (st == QG_OK)
        st = need(ctx, op, "Y", y, n, QG_DTYPE_F32);
    if (st == QG_OK)
        st = need(ctx, op, "count", count, 1, QG_DTYPE_I32);
    if (st != QG_OK || n == 0)
        return st;
    qg_kargs a;
    size_t wg;
    if ((st = get(ctx, QG_K_QUANT_PG_GATE_FWD, &a, &wg)) != QG_OK)
        return st;
    qg__karg_tensor(&a, o_msb);
    qg__karg_tensor(&a, delta);
    qg__karg_tensor(&a, o_lsb);
    qg__karg_tensor(&a, y);
    qg__karg_tensor(&a, count);
    qg__karg_int(&a, (int)n);
    qg__karg_int(&a, C);
    qg__karg_int(&a, HW);
    qg__karg_float(&a, slope);
    /* CHUNK 1 (see cl/quant.cl): a few groups share the elements, so the
     * count's tree and atomic run once per group, not per WG elements. */
    const long *v;
    if ((st = qg__program_values(ctx, QG_PROG_QUANT, &v)) != QG_OK)
        return st;
    return launch1d(&a, v[QG_QUANT_CHUNK] ? groups_for(n, wg) * wg : n, wg);
}

qg_status qg__pg_gate_bwd(qg_ctx *ctx, const qg_tensor *o_msb, const qg_tensor *delta,
                          const qg_tensor *o_lsb, const qg_tensor *dy, float slope, int spbp,
                          qg_tensor *d_msb, qg_tensor *d_lsb, qg_tensor *delta_grad)
{
    const char *op = "pg_gate_bwd";
    int C, HW;
    qg_status st = gate_check(ctx, op, o_msb, delta, o_lsb, &C, &HW);
    size_t n = st == QG_OK ? qg_tensor_numel(o_msb) : 0;
    if (st == QG_OK)
        st = need(ctx, op, "dY", dy, n, QG_DTYPE_F32);
    if (st == QG_OK)
        st = need(ctx, op, "dO_msb", d_msb, n, QG_DTYPE_F32);
    if (st == QG_OK && d_lsb)
        st = need(ctx, op, "dO_lsb", d_lsb, n, QG_DTYPE_F32);
    if (st == QG_OK)
        st = need(ctx, op, "delta_grad", delta_grad, (size_t)C, QG_DTYPE_F32);
    if (st != QG_OK || C == 0)
        return st;
    qg_kargs a;
    size_t wg;
    if ((st = get(ctx, QG_K_QUANT_PG_GATE_BWD, &a, &wg)) != QG_OK)
        return st;
    qg__karg_tensor(&a, o_msb);
    qg__karg_tensor(&a, delta);
    qg__karg_tensor(&a, o_lsb);
    qg__karg_tensor(&a, dy);
    qg__karg_int(&a, (int)o_msb->shape[0]);
    qg__karg_int(&a, C);
    qg__karg_int(&a, HW);
    qg__karg_float(&a, slope);
    qg__karg_int(&a, spbp != 0);
    qg__karg_tensor(&a, d_msb);
    karg_opt(&a, d_lsb, d_msb);
    qg__karg_int(&a, d_lsb != NULL);
    qg__karg_tensor(&a, delta_grad);
    size_t g = (size_t)C * wg;
    return qg__kargs_launch(&a, 1, &g, &wg);
}

qg_status qg__pgtf_gate_fwd(qg_ctx *ctx, const qg_tensor *h_hb, const qg_tensor *delta,
                            const qg_tensor *h_full, qg_tensor *y, qg_tensor *count)
{
    const char *op = "pgtf_gate_fwd";
    int C, HW;
    qg_status st = gate_check(ctx, op, h_hb, delta, h_full, &C, &HW);
    size_t n = st == QG_OK ? qg_tensor_numel(h_hb) : 0;
    if (st == QG_OK)
        st = need(ctx, op, "Y", y, n, QG_DTYPE_F32);
    if (st == QG_OK)
        st = need(ctx, op, "count", count, 1, QG_DTYPE_I32);
    if (st != QG_OK || n == 0)
        return st;
    qg_kargs a;
    size_t wg, items;
    if ((st = get(ctx, QG_K_QUANT_PGTF_GATE_FWD, &a, &wg)) != QG_OK ||
        (st = vw_items(ctx, n, &items)) != QG_OK)
        return st;
    qg__karg_tensor(&a, h_hb);
    qg__karg_tensor(&a, delta);
    qg__karg_tensor(&a, h_full);
    qg__karg_tensor(&a, y);
    qg__karg_tensor(&a, count);
    qg__karg_int(&a, (int)n);
    qg__karg_int(&a, C);
    qg__karg_int(&a, HW);
    /* as qg__pg_gate_fwd: CHUNK 1 lets a few groups share the items */
    const long *v;
    if ((st = qg__program_values(ctx, QG_PROG_QUANT, &v)) != QG_OK)
        return st;
    size_t g = v[QG_QUANT_CHUNK] ? groups_for(items, wg) * wg : (items + wg - 1) / wg * wg;
    return launch1d(&a, g, wg);
}

qg_status qg__pgtf_gate_bwd(qg_ctx *ctx, const qg_tensor *h_hb, const qg_tensor *delta,
                            const qg_tensor *h_full, const qg_tensor *dy, float slope,
                            qg_tensor *d_hb, qg_tensor *d_full, qg_tensor *delta_grad)
{
    const char *op = "pgtf_gate_bwd";
    int C, HW;
    qg_status st = gate_check(ctx, op, h_hb, delta, h_full, &C, &HW);
    size_t n = st == QG_OK ? qg_tensor_numel(h_hb) : 0;
    if (st == QG_OK)
        st = need(ctx, op, "dY", dy, n, QG_DTYPE_F32);
    if (st == QG_OK)
        st = need(ctx, op, "d_hb", d_hb, n, QG_DTYPE_F32);
    if (st == QG_OK)
        st = need(ctx, op, "d_full", d_full, n, QG_DTYPE_F32);
    if (st == QG_OK)
        st = need(ctx, op, "delta_grad", delta_grad, (size_t)C, QG_DTYPE_F32);
    if (st != QG_OK || C == 0)
        return st;
    qg_kargs a;
    size_t wg;
    if ((st = get(ctx, QG_K_QUANT_PGTF_GATE_BWD, &a, &wg)) != QG_OK)
        return st;
    qg__karg_tensor(&a, h_hb);
    qg__karg_tensor(&a, delta);
    qg__karg_tensor(&a, h_full);
    qg__karg_tensor(&a, dy);
    qg__karg_int(&a, (int)h_hb->shape[0]);
    qg__karg_int(&a, C);
    qg__karg_int(&a, HW);
    qg__karg_float(&a, slope);
    qg__karg_tensor(&a, d_hb);
    qg__karg_tensor(&a, d_full);
    qg__karg_tensor(&a, delta_grad);
    size_t g = (size_t)C * wg;
    return qg__kargs_launch(&a, 1, &g, &wg);
}

qg_status qg__quant_clip(qg_ctx *ctx, qg_tensor *x, float lo, float hi)
{
    const char *op = "quant_clip";
    if (!x)
        return qg__error(ctx, QG_ERR_INVALID_ARG, "%s: tensor is NULL", op);
    size_t n = qg_tensor_numel(x);
    qg_status st = need(ctx, op, "x", x, n, QG_DTYPE_F32);
    if (st == QG_OK)
        st = check_n(ctx, op, n);
    if (st == QG_OK && !(lo <= hi))
        st = qg__error(ctx, QG_ERR_INVALID_ARG, "%s: range [%g, %g] is empty", op, lo, hi);
    if (st != QG_OK || n == 0)
        return st;
    qg_kargs a;
    size_t wg, items;
    if ((st = get(ctx, QG_K_QUANT_CLIP, &a, &wg)) != QG_OK ||
        (st = vw_items(ctx, n, &items)) != QG_OK)
        return st;
    qg__karg_tensor(&a, x);
    qg__karg_int(&a, (int)n);
    qg__karg_float(&a, lo);
    qg__karg_float(&a, hi);
    return launch1d(&a, (items + wg - 1) / wg * wg, wg);
}

qg_status qg__gate_loss(qg_ctx *ctx, const qg_tensor *delta, float target, float coef,
                        qg_gate_loss kind, qg_tensor *loss, qg_tensor *delta_grad)
{
    const char *op = "gate_loss";
    if (!delta)
        return qg__error(ctx, QG_ERR_INVALID_ARG, "%s: delta tensor is NULL", op);
    size_t C = qg_tensor_numel(delta);
    qg_status st = need(ctx, op, "delta", delta, C, QG_DTYPE_F32);
    if (st == QG_OK)
        st = need(ctx, op, "loss", loss, 1, QG_DTYPE_F32);
    if (st == QG_OK && delta_grad)
        st = need(ctx, op, "delta_grad", delta_grad, C, QG_DTYPE_F32);
    if (st == QG_OK)
        st = check_n(ctx, op, C);
    if (st != QG_OK)
        return st;
    if (kind != QG_GATE_LOSS_PG && kind != QG_GATE_LOSS_TF && kind != QG_GATE_LOSS_CG)
        return qg__error(ctx, QG_ERR_INVALID_ARG, "%s: unknown loss kind %d", op, (int)kind);
    qg_kargs a;
    size_t wg;
    if ((st = get(ctx, QG_K_QUANT_GATE_LOSS, &a, &wg)) != QG_OK)
        return st;
    qg__karg_tensor(&a, delta);
    qg__karg_int(&a, (int)C);
    qg__karg_float(&a, target);
    qg__karg_float(&a, coef);
    qg__karg_int(&a, (int)kind);
    qg__karg_tensor(&a, loss);
    karg_opt(&a, delta_grad, loss);
    qg__karg_int(&a, delta_grad != NULL);
    size_t g = wg;
    return qg__kargs_launch(&a, 1, &g, &wg);
}
