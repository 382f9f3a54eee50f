/* src/ops/conv_direct.c: the host side of the direct 3x3 convolutions of
 * cl/conv_direct.cl (stride 1 or 2, pad <= 2: ResNet's layers), about 10x
 * faster than im2col + GEMM on a CPU device. A grouped conv runs as N*groups
 * images of one group's channels: the planes and outputs are laid out so
 * already, the weights are prepared once per group (wgs floats apart) and
 * the weight gradient's partials are kept per group (its channel-vectorised
 * kernels take ungrouped convs only). It sizes their
 * planes and workspace layouts for the plan (qg__conv_direct_needs) and
 * runs the passes the plan routes here; which pass runs how is decided in
 * src/ops/conv_plan.c. C twin: src/ref/ref_conv.c; tests: tests/test_conv.c,
 * tests/test_tune_shapes.c.
 *
 * The workspace holds zero-padded copies of the input planes (or of dy's),
 * the weights repacked to the kernels' layout, and the weight gradient's
 * per-chunk partial sums. */
#include "config.h"

#include <limits.h>
#include <stdint.h>
#include <stdio.h>

#include "core/error.h"
#include "ops/conv_impl.h"

qg_status qg__conv_direct_params(qg_ctx *ctx, const qg_conv_desc *d, qg_conv_dparams *p)
{
    qg_variant *var;
    char shape[QG_CONV_SHAPE_CLASS_MAX];
    qg__conv_shape_class(d, shape, sizeof shape);
    qg_status st = qg__variant_shape(ctx, QG_PROG_CONV_DIRECT, shape, &var);
    if (st != QG_OK)
        return st;
    const long *v = var->values;
    *p = (qg_conv_dparams){v[QG_DIRECT_WG], v[QG_DIRECT_VW], v[QG_DIRECT_JT], v[QG_DIRECT_KT],
                           v[QG_DIRECT_WKT], v[QG_DIRECT_WN], var};
    return QG_OK;
}

/* Backward data pads dy by 2 - pad, hence pad <= 2; everything else takes
 * im2col + GEMM. Grouped convs run as N*groups images of one group's
 * channels (see the kernels' G). */
int qg__conv_direct_takes(const qg_conv_desc *d)
{
    return d->R == 3 && d->S == 3 && (d->stride == 1 || d->stride == 2) && d->pad <= 2;
}

/* One group's input and output channels. */
#define CG_(d) ((d)->C / (d)->groups)
#define KG_(d) ((d)->K / (d)->groups)

/* The planes of a pass of T x T taps over Po x Qo positions (see
 * qg_conv_dgeom). */
static qg_conv_dgeom direct_geom(int T, int Po, int Qo, int jm, int vw)
{
    qg_conv_dgeom g = {.T = T, .Hd = Po + T - 1, .Wd = Qo + T - 1};
    g.J = (int)qg__round_up((size_t)Po * g.Wd, (size_t)jm);
    size_t need = (size_t)g.J + (size_t)(T - 1) * g.Wd + (size_t)(T - 1);
    size_t hw = (size_t)g.Hd * g.Wd + (size_t)vw;
    g.L = (int)qg__round_up(need > hw ? need : hw, (size_t)g.Wd); /* whole rows */
    return g;
}

/* Slot mode computes ceil(Qo/VW)*VW columns per row and stores whole
 * vectors; flat mode computes J positions and stores lane by lane, which
 * costs about as much as a quarter of the positions again (measured on
 * PoCL). Slots win unless they waste much more of the vector width. */
static int direct_slots(const qg_conv_dgeom *g, int Po, int Qo, int vw)
{
    double slot = (double)Po * qg__round_up((size_t)Qo, (size_t)vw);
    double flat = 1.25 * g->J;
    return slot <= flat ? (Qo + vw - 1) / vw : 0;
}

/* Images per chunk when `fixed` floats are reserved and each image needs
 * `per`; 0 when not even one fits. */
static int direct_nb(const qg_conv_desc *d, const qg_tensor *ws, size_t fixed, size_t per)
{
    if (!ws || ws->dtype != QG_DTYPE_F32)
        return 0;
    size_t have = qg_tensor_numel(ws);
    if (have < fixed + per)
        return 0;
    if (per == 0) /* the planes live elsewhere (kept for the backward) */
        return d->N;
    size_t n = (have - fixed) / per;
    if (n > (size_t)INT_MAX / per)
        n = (size_t)INT_MAX / per;
    return n < (size_t)d->N ? (int)n : d->N;
}

/* Images per weight-gradient partial: at least WN, and enough that an
 * item sums about as many positions as WN images of a 32x32 map give it
 * (small maps otherwise make items too short to pay for their launch). */
static int direct_wn(const qg_conv_dparams *p, int J, int nb)
{
    long wn = (4L * 34 * 32 + J - 1) / J;
    if (wn < p->WN)
        wn = p->WN;
    return wn < nb ? (int)wn : (nb > 0 ? nb : 1);
}

/* Built from the p its caller looked up (a lookup per launch could mix
 * sets within one conv, and the geometry follows p). */
static qg_status dget(qg_ctx *ctx, const qg_conv_dparams *p, qg_kernel_id kernel, qg_kargs *a)
{
    QG_ASSERT(p->v);
    return qg__kargs_variant(ctx, p->v, kernel, a);
}

/* The TxT variant of a kernel that comes as 3x3 and 2x2 (QG_K_COUNT,
 * which dget refuses, for other T). */
static qg_kernel_id by_tile(int T, qg_kernel_id k3, qg_kernel_id k2)
{
    return T == 3 ? k3 : T == 2 ? k2 : QG_K_COUNT;
}

/* Planes dst (at dst_extra in ws) from images n0..n0+nb-1 of src [N][Cs][Hs][Ws], rounded
 * by q when q->L > 0; see qg_conv_direct_prep for mul, div and the offsets. */
static qg_status dprep_q(qg_ctx *ctx, const qg_conv_dparams *p, const qg_tensor *src, int n0,
                         int nb, int Cs, int Hs, int Ws, int PH, int mul, int div, int off,
                         const qg_conv_dgeom *g, int Hd, const qg_tensor *ws, size_t dst_extra,
                         qg_conv_dquant q)
{
    qg_kargs a;
    qg_status st = dget(ctx, p, QG_K_CONV_DIRECT_PREP, &a);
    if (st != QG_OK)
        return st;
    int planes = nb * Cs * PH * PH;
    qg__conv_karg_at(&a, src, (size_t)n0 * Cs * Hs * Ws);
    qg__karg_int(&a, Hs);
    qg__karg_int(&a, Ws);
    qg__karg_int(&a, PH);
    qg__karg_int(&a, mul);
    qg__karg_int(&a, div);
    qg__karg_int(&a, off);
    qg__karg_int(&a, off);
    qg__karg_int(&a, Hd);
    qg__karg_int(&a, g->Wd);
    qg__karg_int(&a, g->L / g->Wd);
    qg__karg_int(&a, planes);
    qg__conv_karg_at(&a, ws, dst_extra);
    if (q.L > 0) {
        qg__karg_mem(&a, q.t);
        qg__karg_int(&a, 0);
    } else {
        qg__conv_karg_at(&a, ws, 0); /* not read */
    }
    qg__karg_int(&a, q.L);
    size_t gl = (size_t)planes, l = 1;
    return qg__kargs_launch(&a, 1, &gl, &l);
}

static qg_status dprep(qg_ctx *ctx, const qg_conv_dparams *p, const qg_tensor *src, int n0, int nb,
                       int Cs, int Hs, int Ws, int PH, int mul, int div, int off,
                       const qg_conv_dgeom *g, int Hd, const qg_tensor *ws, size_t dst_extra)
{
    return dprep_q(ctx, p, src, n0, nb, Cs, Hs, Ws, PH, mul, div, off, g, Hd, ws, dst_extra,
                   (qg_conv_dquant){0, 0});
}

/* The forward kernels' last arguments: the output (at out_extra) and the
 * optional mask and addend of its epilogue, both in the output's layout
 * and offset (bound to the output, and ignored, when NULL). */
static void karg_out(qg_kargs *a, const qg_tensor *out, size_t out_extra,
                     const qg_tensor *mask, const qg_tensor *add)
{
    qg__conv_karg_at(a, out, out_extra);
    qg__conv_karg_at(a, mask ? mask : out, mask ? out_extra : 0);
    qg__karg_int(a, mask != NULL);
    qg__conv_karg_at(a, add ? add : out, add ? out_extra : 0);
    qg__karg_int(a, add != NULL);
}

/* wp [Kp/KT][Ci][T][T][KT] (trans: [Ci][T][T][Kp]) at offset 0 of ws; see
 * qg_conv_direct_wprep. */
static qg_status dwprep_t(qg_ctx *ctx, const qg_conv_dparams *p, const qg_conv_desc *d,
                          const qg_tensor *w, int T, int flip, int Kp, int Ci, int trans,
                          const qg_tensor *ws, size_t wgs)
{
    qg_kargs a;
    qg_status st = dget(ctx, p, QG_K_CONV_DIRECT_WPREP, &a);
    if (st != QG_OK)
        return st;
    qg__karg_tensor(&a, w);
    qg__karg_int(&a, KG_(d));
    qg__karg_int(&a, CG_(d));
    qg__karg_int(&a, d->R);
    qg__karg_int(&a, d->S);
    qg__karg_int(&a, 1); /* stride-2 forwards read phase planes tap by tap */
    qg__karg_int(&a, T);
    qg__karg_int(&a, T);
    qg__karg_int(&a, flip);
    qg__karg_int(&a, Kp);
    qg__karg_int(&a, Ci);
    qg__karg_int(&a, trans);
    qg__conv_karg_at(&a, ws, 0);
    qg__karg_int(&a, (int)wgs);
    size_t l[2] = {64, 1}, n[2] = {qg__round_up((size_t)Kp * Ci, 64), (size_t)d->groups};
    return qg__kargs_launch(&a, 2, n, l);
}

static qg_status dwprep(qg_ctx *ctx, const qg_conv_dparams *p, const qg_conv_desc *d,
                        const qg_tensor *w, int T, int flip, int Kp, int Ci, const qg_tensor *ws,
                        size_t wgs)
{
    return dwprep_t(ctx, p, d, w, T, flip, Kp, Ci, 0, ws, wgs);
}

/* Output channels per fwd_kv item (KVN vectors of 16 in the .cl). */
#define QG_KV_CH 32

/* out[n0..][Ko][Po][Qo] (=/+=, + bias, ReLU) by qg_conv_direct_fwd_kv_TxT
 * (T = g->T) from plain padded planes (geometry g, read at `stride`) at
 * xp_extra in ws and wk [Ci][T][T][Kp] at 0. */
static qg_status dfwd_kv(qg_ctx *ctx, const qg_conv_dparams *p, const qg_conv_dgeom *g, int Ci,
                         int stride, int nb, const qg_tensor *ws, const qg_tensor *xs,
                         size_t xp_extra, int Kp, const qg_tensor *bias, int Ko, int Po, int Qo,
                         int accumulate, int relu, const qg_tensor *out, size_t out_extra,
                         const qg_tensor *mask, const qg_tensor *add)
{
    qg_kargs a;
    qg_kernel_id name = by_tile(g->T, QG_K_CONV_DIRECT_FWD_KV_3X3, QG_K_CONV_DIRECT_FWD_KV_2X2);
    qg_status st = dget(ctx, p, name, &a);
    if (st != QG_OK)
        return st;
    qg__conv_karg_at(&a, xs, xp_extra);
    qg__karg_int(&a, Ci);
    qg__karg_int(&a, g->L);
    qg__karg_int(&a, g->Wd);
    qg__karg_int(&a, stride);
    qg__conv_karg_at(&a, ws, 0);
    qg__karg_int(&a, Kp);
    qg__karg_tensor(&a, bias ? bias : ws); /* not read without bias */
    qg__karg_int(&a, bias != NULL);
    qg__karg_int(&a, Ko);
    qg__karg_int(&a, Po);
    qg__karg_int(&a, Qo);
    qg__karg_int(&a, accumulate != 0);
    qg__karg_int(&a, relu != 0);
    karg_out(&a, out, out_extra, mask, add);
    size_t gl[3] = {((size_t)Po * Qo + 7) / 8, (size_t)Kp / QG_KV_CH, (size_t)nb};
    size_t l[3] = {(size_t)p->WG, 1, 1};
    return qg__kargs_launch(&a, 3, gl, l);
}

/* The channel-vectorised forward takes 3x3 convs on maps at most 8
 * wide, where a 16-lane position vector is mostly padding (ResNet-20's
 * 8x8 stage and its stride-2 entry: measured 1.3-1.6x faster there, but
 * slower on 16x16 outputs, so not beyond). */
static int use_kv(const qg_conv_desc *d)
{
    return d->groups == 1 && d->R == 3 && d->S == 3 && d->Q <= 8;
}

/* Plain padded planes (whole rows) of the input for fwd_kv; *Kp the
 * output channels padded to its tile. */
static qg_conv_dgeom kv_geom(const qg_conv_desc *d, int *Kp)
{
    qg_conv_dgeom g = {.T = 3, .Hd = d->H + 2 * d->pad, .Wd = d->W + 2 * d->pad};
    g.L = g.Hd * g.Wd;
    *Kp = (int)qg__round_up((size_t)d->K, QG_KV_CH);
    return g;
}

/* out[n0..][Ko][Po][Qo] (=/+=, + bias) from the planes at xp_extra in ws and
 * the weights at 0; a grouped conv's G groups as G*nb images of Ci input
 * and Ko output channels each, group g's weights at g*wgs. */
static qg_status dfwd(qg_ctx *ctx, const qg_conv_dparams *p, const qg_conv_dgeom *g, int Ci, int nb,
                      const qg_tensor *ws, const qg_tensor *xs, size_t xp_extra,
                      const qg_tensor *bias, int Ko,
                      int Po, int Qo, int accumulate, int relu, const qg_tensor *out,
                      size_t out_extra, const qg_tensor *mask, const qg_tensor *add, int G,
                      size_t wgs)
{
    qg_kargs a;
    qg_kernel_id name;
    if (g->ph)
        name = QG_K_CONV_DIRECT_FWD_S2_3X3;
    else
        name = by_tile(g->T, QG_K_CONV_DIRECT_FWD_3X3, QG_K_CONV_DIRECT_FWD_2X2);
    qg_status st = dget(ctx, p, name, &a);
    if (st != QG_OK)
        return st;
    qg__conv_karg_at(&a, xs, xp_extra);
    qg__karg_int(&a, Ci);
    qg__karg_int(&a, g->L);
    qg__karg_int(&a, g->Wd);
    qg__karg_int(&a, g->J);
    qg__conv_karg_at(&a, ws, 0);
    qg__karg_tensor(&a, bias ? bias : ws); /* not read without bias */
    qg__karg_int(&a, bias != NULL);
    qg__karg_int(&a, Ko);
    qg__karg_int(&a, Po);
    qg__karg_int(&a, Qo);
    qg__karg_int(&a, accumulate != 0);
    qg__karg_int(&a, g->QV);
    qg__karg_int(&a, relu != 0);
    karg_out(&a, out, out_extra, mask, add);
    qg__karg_int(&a, G);
    qg__karg_int(&a, (int)wgs);
    size_t items = g->QV ? ((size_t)Po * g->QV + (size_t)p->JT - 1) / (size_t)p->JT
                         : (size_t)g->J / (size_t)(p->VW * p->JT);
    size_t gl[3] = {items,
                    qg__round_up((size_t)Ko, (size_t)p->KT) / (size_t)p->KT, (size_t)nb * G};
    size_t l[3] = {(size_t)p->WG, 1, 1};
    return qg__kargs_launch(&a, 3, gl, l);
}

/* The whole-batch backward's layout (see qg_conv_bwd_layout) for the
 * gradients wanted. */
static qg_conv_bwd_layout direct_bwd_layout(const qg_conv_desc *d, const qg_conv_dparams *p,
                                            int want_dx, int want_dw)
{
    qg_conv_bwd_layout b = {0};
    b.s2 = d->stride == 2 && d->pad == 1 && d->R == 3 && d->S == 3;
    int s1 = d->stride == 1 && d->R == d->S && d->R - 1 == 2 * d->pad;
    if (!s1 && !b.s2)
        return b;
    const int N = d->N, VW = (int)p->VW, stv = d->stride, G = d->groups;
    const int Cg = CG_(d), Kg = KG_(d);
    b.T = (d->R + stv - 1) / stv;
    b.Ci = d->C * stv * stv;
    b.Hp = (d->H + 1) / 2;
    b.Wp = (d->W + 1) / 2;
    b.gw = direct_geom(b.T, d->P, d->Q, VW, VW);
    b.gw.ph = b.s2;
    qg_conv_dgeom gd = b.s2 ? direct_geom(2, b.Hp, b.Wp, (int)(p->VW * p->JT), VW)
                            : direct_geom(d->R, d->H, d->W, (int)(p->VW * p->JT), VW);
    b.dKo = b.s2 ? 4 * Cg : Cg; /* one group's */
    gd.QV = direct_slots(&gd, b.s2 ? b.Hp : d->H, b.s2 ? b.Wp : d->W, VW);
    if (gd.Wd != b.gw.Wd || (b.s2 && (b.Hp != d->P || b.Wp != d->Q)))
        return b;
    b.dy_off = b.s2 ? 0 : (size_t)d->pad * (gd.Wd + 1);
    size_t need = b.dy_off + (size_t)b.gw.J;
    b.gy = gd; /* the shared dy planes: long enough for both readers */
    if ((size_t)b.gy.L < need)
        b.gy.L = (int)qg__round_up(need, (size_t)b.gy.Wd);
    b.TD = b.s2 ? 2 : d->R;
    /* channel-vectorised data gradient: 3x3 on narrow maps, or the stride-2
     * phases (2x2) when they are that narrow */
    b.kv = b.s2 ? G == 1 && b.Wp <= 8 : use_kv(d);
    b.Kp = (int)qg__round_up((size_t)b.dKo, b.kv ? QG_KV_CH : (size_t)p->KT);
    b.wn = direct_wn(p, b.gw.J, N);
    b.nchunks = (N + b.wn - 1) / b.wn;
    b.part1 = (size_t)d->K * Cg * d->R * d->S;
    b.wgs = qg__round_up((size_t)b.Kp * Kg * b.TD * b.TD, 16);
    b.o_ph = (size_t)G * b.wgs;
    b.o_dy = b.o_ph + (b.s2 && want_dx ? qg__round_up((size_t)N * G * b.dKo * b.Hp * b.Wp, 16)
                                       : 0);
    b.o_x = b.o_dy + qg__round_up((size_t)N * d->K * b.gy.L, 16);
    b.o_part = b.o_x + (want_dw ? qg__round_up((size_t)N * b.Ci * b.gw.L, 16) : 0);
    b.o_dyt = b.o_part + (want_dw ? qg__round_up((size_t)b.nchunks * b.part1, 16) : 0);
    /* channel-vectorised weight gradient on the same narrow output maps,
     * from dy transposed to channels-innermost */
    b.kvw = want_dw && use_kv(d);
    b.Kt = (int)qg__round_up((size_t)d->K, QG_KV_CH);
    b.total = b.o_dyt + (b.kvw ? (size_t)N * d->P * d->Q * b.Kt : 0);
    b.ok = 1;
    return b;
}

/* The forward's input planes kept for the backward's weight gradient:
 * both read the same planes (same phases, row stride and rows) and differ
 * only in the zero rows that close a plane, so a kept plane takes the
 * longer of the two. The plane length, or 0 where the two passes read
 * different planes (the channel-vectorised forward at stride 2 reads
 * plain planes, the weight gradient phase planes) or the backward has no
 * shared-dy form. */
static int keep_plane(const qg_conv_desc *d, const qg_conv_dparams *p)
{
    if (!qg__conv_direct_takes(d))
        return 0;
    qg_conv_bwd_layout b = direct_bwd_layout(d, p, 1, 1);
    if (!b.ok)
        return 0;
    qg_conv_dgeom g;
    if (use_kv(d)) {
        int Kp;
        if (d->stride != 1)
            return 0;
        g = kv_geom(d, &Kp);
    } else {
        int T = (d->R + d->stride - 1) / d->stride;
        g = direct_geom(T, d->P, d->Q, (int)(p->VW * p->JT), (int)p->VW);
    }
    if (g.Wd != b.gw.Wd || g.Hd != b.gw.Hd)
        return 0;
    return g.L > b.gw.L ? g.L : b.gw.L;
}

static size_t keep_floats(const qg_conv_desc *d, int L)
{
    return L ? (size_t)d->N * d->C * d->stride * d->stride * (size_t)L : 0;
}

/* The forward kernels' weight layout: floats and output channels padded to
 * the tile (Kp), for the channel-vectorised (kv) or the position kernels. */
static size_t fwd_wsz(const qg_conv_desc *d, const qg_conv_dparams *p, int *Kp, size_t *wgs)
{
    if (use_kv(d)) {
        kv_geom(d, Kp);
        *wgs = qg__round_up((size_t)*Kp * d->C * 9, 16);
        return *wgs;
    }
    /* a grouped conv: one such layout per group, wgs floats apart */
    int stv = d->stride, T = (d->R + stv - 1) / stv, Cg = CG_(d);
    int Tw = stv == 2 ? d->R : T, Cw = stv == 2 ? Cg : Cg * stv * stv;
    *Kp = (int)qg__round_up((size_t)KG_(d), (size_t)p->KT);
    *wgs = qg__round_up((size_t)*Kp * Cw * Tw * Tw, 16);
    return *wgs * (size_t)d->groups;
}

/* One image's planes of the forward (x's, or dy's for the data
 * gradient) and the weights before them: the workspace a chunk of one
 * needs. */
static size_t fwd_one(const qg_conv_desc *d, const qg_conv_dparams *p)
{
    int Kp;
    size_t wgs, wsz = fwd_wsz(d, p, &Kp, &wgs);
    if (use_kv(d))
        return wsz + (size_t)d->C * kv_geom(d, &Kp).L;
    int stv = d->stride, T = (d->R + stv - 1) / stv, Ci = d->C * stv * stv;
    return wsz + (size_t)Ci * direct_geom(T, d->P, d->Q, (int)(p->VW * p->JT), (int)p->VW).L;
}

/* The forward kernels read x's planes and the weights of the chunk (or the
 * caller's kept planes and prepared weights) from the workspace. */
qg_status qg__conv_direct_fwd(const qg_conv_plan *pl, const qg_tensor *x, const qg_tensor *w,
                              const qg_tensor *bias, qg_tensor *y, qg_tensor *ws, int accumulate,
                              const qg_tensor *add, int relu, const qg_conv_fwd_cache *fc)
{
    qg_ctx *ctx = pl->ctx;
    const qg_conv_desc *d = &pl->d;
    const qg_conv_dparams p = pl->p;
    qg_status st = QG_OK;
    const qg_tensor *keep = fc ? fc->keep : NULL;
    int Lk = keep ? pl->dn.keep_L : 0; /* (the plan checked keep's size) */
    int Kp;
    size_t wgs, wsz = fwd_wsz(d, &p, &Kp, &wgs);
    /* the prepared weights: in the caller's buffer when it has one */
    const qg_tensor *wt = fc && fc->wprep ? fc->wprep : ws;
    int wready = wt != ws && fc->wprep_ready;
    qg_conv_dquant q = fc ? fc->q : (qg_conv_dquant){0, 0};
    if (use_kv(d)) {
        qg_conv_dgeom g = kv_geom(d, &Kp);
        size_t per = (size_t)d->C * g.L;
        int nb = direct_nb(d, ws, wsz, Lk ? 0 : per);
        QG_ASSERT(nb >= 1); /* the plan's workspace holds fwd_one */
        size_t PQ = (size_t)d->P * d->Q;
        if (!wready)
            QG_TRY(dwprep_t(ctx, &p, d, w, 3, 0, Kp, d->C, 1, wt, wgs));
        if (Lk) {
            g.L = Lk;
            QG_TRY(dprep_q(ctx, &p, x, 0, d->N, d->C, d->H, d->W, 1, 1, 1, d->pad, &g, g.Hd,
                           keep, 0, q));
            QG_TRY(dfwd_kv(ctx, &p, &g, d->C, d->stride, d->N, wt, keep, 0, Kp, bias, d->K,
                           d->P, d->Q, accumulate, relu, y, 0, NULL, add));
            return QG_OK;
        }
        for (int n0 = 0; n0 < d->N; n0 += nb) {
            int cnt = d->N - n0 < nb ? d->N - n0 : nb;
            QG_TRY(dprep_q(ctx, &p, x, n0, cnt, d->C, d->H, d->W, 1, 1, 1, d->pad, &g, g.Hd,
                           ws, wsz, q));
            QG_TRY(dfwd_kv(ctx, &p, &g, d->C, d->stride, cnt, wt, ws, wsz, Kp, bias, d->K, d->P,
                           d->Q, accumulate, relu, y, (size_t)n0 * d->K * PQ, NULL, add));
        }
        return QG_OK;
    }
    /* stride 2: the 3x3 kernel over the four phase planes of each channel
     * (planes of a 2x2 tile's geometry) */
    int stv = d->stride, T = (d->R + stv - 1) / stv, Ci = d->C * stv * stv;
    qg_conv_dgeom g = direct_geom(T, d->P, d->Q, (int)(p.VW * p.JT), (int)p.VW);
    g.QV = direct_slots(&g, d->P, d->Q, (int)p.VW);
    g.ph = stv == 2;
    int Tw = g.ph ? d->R : T, Cw = g.ph ? CG_(d) : Ci / d->groups; /* one group's */
    size_t per = (size_t)Ci * g.L;
    int nb = direct_nb(d, ws, wsz, Lk ? 0 : per);
    QG_ASSERT(nb >= 1);
    size_t PQ = (size_t)d->P * d->Q;
    if (!wready)
        QG_TRY(dwprep(ctx, &p, d, w, Tw, 0, Kp, Cw, wt, wgs));
    if (Lk) {
        g.L = Lk;
        QG_TRY(dprep_q(ctx, &p, x, 0, d->N, d->C, d->H, d->W, stv, stv, 1, d->pad, &g, g.Hd,
                       keep, 0, q));
        QG_TRY(dfwd(ctx, &p, &g, Cw, d->N, wt, keep, 0, bias, KG_(d), d->P, d->Q, accumulate,
                    relu, y, 0, NULL, add, d->groups, wgs));
        return QG_OK;
    }
    for (int n0 = 0; n0 < d->N; n0 += nb) {
        int cnt = d->N - n0 < nb ? d->N - n0 : nb;
        QG_TRY(dprep_q(ctx, &p, x, n0, cnt, d->C, d->H, d->W, stv, stv, 1, d->pad, &g, g.Hd,
                       ws, wsz, q));
        QG_TRY(dfwd(ctx, &p, &g, Cw, cnt, wt, ws, wsz, bias, KG_(d), d->P, d->Q, accumulate, relu,
                    y, (size_t)n0 * d->K * PQ, NULL, add, d->groups, wgs));
    }
    return QG_OK;
fail:
    return st;
}

/* The data gradient in image chunks: dy dilated by the stride and padded
 * by R-1-pad, through the forward kernel with flipped weights. */
static qg_conv_dgeom bwd_data_geom(const qg_conv_desc *d, const qg_conv_dparams *p, size_t *wsz,
                                   int *Kp, size_t *wgs)
{
    qg_conv_dgeom g = direct_geom(d->R, d->H, d->W, (int)(p->VW * p->JT), (int)p->VW);
    g.QV = direct_slots(&g, d->H, d->W, (int)p->VW);
    *Kp = (int)qg__round_up((size_t)CG_(d), (size_t)p->KT);
    *wgs = qg__round_up((size_t)*Kp * KG_(d) * d->R * d->S, 16);
    *wsz = *wgs * (size_t)d->groups;
    return g;
}

qg_status qg__conv_direct_bwd_data(const qg_conv_plan *pl, const qg_tensor *dy,
                                   const qg_tensor *w, qg_tensor *dx, qg_tensor *ws,
                                   int accumulate)
{
    qg_ctx *ctx = pl->ctx;
    const qg_conv_desc *d = &pl->d;
    const qg_conv_dparams p = pl->p;
    qg_status st = QG_OK;
    size_t wsz, wgs;
    int Kp;
    qg_conv_dgeom g = bwd_data_geom(d, &p, &wsz, &Kp, &wgs);
    int nb = direct_nb(d, ws, wsz, (size_t)d->K * g.L);
    QG_ASSERT(nb >= 1); /* the plan's workspace holds bwd_data_one */
    size_t HW = (size_t)d->H * d->W;
    QG_TRY(dwprep(ctx, &p, d, w, d->R, 1, Kp, KG_(d), ws, wgs));
    for (int n0 = 0; n0 < d->N; n0 += nb) {
        int cnt = d->N - n0 < nb ? d->N - n0 : nb;
        QG_TRY(dprep(ctx, &p, dy, n0, cnt, d->K, d->P, d->Q, 1, 1, d->stride, d->R - 1 - d->pad,
                     &g, g.Hd, ws, wsz));
        QG_TRY(dfwd(ctx, &p, &g, KG_(d), cnt, ws, ws, wsz, NULL, CG_(d), d->H, d->W, accumulate, 0,
                    dx, (size_t)n0 * d->C * HW, NULL, NULL, d->groups, wgs));
    }
    return QG_OK;
fail:
    return st;
}

/* dw (=|+=) the fixed-order sum of nchunks partials [chunk][K][C*st*st]
 * [T][T] at part_extra (qg_conv_direct_wgrad_sum), then 0 where wmask (w's
 * shape, or NULL) is 0. */
static qg_status dwsum(qg_ctx *ctx, const qg_conv_desc *d, const qg_conv_dparams *p,
                       const qg_tensor *ws, size_t part_extra, int nchunks, int st, int T,
                       int accumulate, qg_tensor *dw, const qg_tensor *wmask)
{
    qg_kargs a;
    qg_status s = dget(ctx, p, QG_K_CONV_DIRECT_WGRAD_SUM, &a);
    if (s != QG_OK)
        return s;
    qg__conv_karg_at(&a, ws, part_extra);
    qg__karg_int(&a, nchunks);
    qg__karg_int(&a, d->K);
    qg__karg_int(&a, CG_(d)); /* dw [K][C/groups][R][S] */
    qg__karg_int(&a, d->R);
    qg__karg_int(&a, d->S);
    qg__karg_int(&a, st);
    qg__karg_int(&a, T);
    qg__karg_int(&a, T);
    qg__karg_int(&a, accumulate != 0);
    qg__karg_tensor(&a, dw);
    qg__karg_tensor(&a, wmask ? wmask : dw);
    qg__karg_int(&a, wmask != NULL);
    size_t n = (size_t)d->K * CG_(d) * d->R * d->S, l1 = 64;
    return qg__kargs_launch(&a, 1, &n, &l1);
}

/* dw (=|+= when accumulate) from the x planes (xp_extra in ws, geometry g)
 * and the dy planes (dyp_extra, plane length Ly) of nb images: per-chunk
 * partials at part_extra (wn images each), then their fixed-order sum. */
static qg_status dwgrad(qg_ctx *ctx, const qg_conv_desc *d, const qg_conv_dparams *p,
                        const qg_conv_dgeom *g, int T, int Ci, int nb, int wn, const qg_tensor *ws,
                        const qg_tensor *xs, size_t xp_extra, size_t dyp_extra, int Ly,
                        size_t part_extra, int accumulate, qg_tensor *dw, const qg_tensor *wmask)
{
    qg_kernel_id name;
    qg_kargs a;
    int nchunks = (nb + wn - 1) / wn;
    /* g->ph: Ci = 4C phase planes read as C channels of 3x3 taps */
    int Ck = g->ph ? d->C : Ci, Tk = g->ph ? d->R : T, stk = g->ph ? 1 : d->stride;
    /* stride-1 3x3: the row walk over column strips */
    int QB = (d->Q + (int)p->VW - 1) / (int)p->VW;
    int rows = !g->ph && T == 3 && d->stride == 1;
    if (g->ph)
        name = QG_K_CONV_DIRECT_WGRAD_S2_3X3;
    else if (rows)
        name = QG_K_CONV_DIRECT_WGRAD_ROWS_3X3;
    else if (T == 3)
        name = QG_K_CONV_DIRECT_WGRAD_3X3;
    else
        return qg__error(ctx, QG_ERR_UNSUPPORTED, "conv_direct: no %dx%d wgrad kernel", T, T);
    qg_status st = dget(ctx, p, name, &a);
    if (st != QG_OK)
        return st;
    qg__conv_karg_at(&a, xs, xp_extra);
    qg__karg_int(&a, Ck);
    qg__karg_int(&a, g->L);
    qg__karg_int(&a, g->Wd);
    qg__conv_karg_at(&a, ws, dyp_extra);
    qg__karg_int(&a, KG_(d)); /* one group's (all of them without groups) */
    qg__karg_int(&a, Ly);
    qg__karg_int(&a, g->J);
    qg__karg_int(&a, nb);
    qg__karg_int(&a, wn);
    qg__conv_karg_at(&a, ws, part_extra);
    if (rows) {
        qg__karg_int(&a, d->P);
        qg__karg_int(&a, QB);
        qg__karg_int(&a, d->Q);
    }
    qg__karg_int(&a, d->groups);
    size_t kt = rows && p->WKT > 2 ? 2 : (size_t)p->WKT; /* RKT of the .cl */
    size_t gl[3] = {(size_t)Ck, qg__round_up((size_t)KG_(d), kt) / kt, (size_t)nchunks};
    size_t l[3] = {(size_t)p->WG, 1, 1};
    if ((st = qg__kargs_launch(&a, 3, gl, l)) != QG_OK)
        return st;
    return dwsum(ctx, d, p, ws, part_extra, nchunks, stk, Tk, accumulate, dw, wmask);
}

/* dw (=|+=) the weight gradient of a 3x3 conv on a narrow map by the
 * channel-vectorised kernel: dy transposed to channels-innermost at
 * dyt_extra, partials from the x planes (xp_extra, geometry g; phase
 * planes when g->ph) at part_extra, then their sum. */
static qg_status dwgrad_kv(qg_ctx *ctx, const qg_conv_desc *d, const qg_conv_dparams *p,
                           const qg_conv_dgeom *g, const qg_tensor *dy, int nb, int wn,
                           const qg_tensor *ws, const qg_tensor *xs, size_t xp_extra,
                           size_t dyt_extra, int Kt, size_t part_extra, int accumulate,
                           qg_tensor *dw, const qg_tensor *wmask)
{
    qg_kargs a;
    int PQ = d->P * d->Q, nchunks = (nb + wn - 1) / wn;
    qg_status st = dget(ctx, p, QG_K_CONV_DIRECT_PREP_T, &a);
    if (st != QG_OK)
        return st;
    qg__karg_tensor(&a, dy);
    qg__karg_int(&a, d->K);
    qg__karg_int(&a, PQ);
    qg__karg_int(&a, Kt);
    qg__karg_int(&a, nb * PQ);
    qg__conv_karg_at(&a, ws, dyt_extra);
    size_t n = (size_t)nb * PQ, l = 16;
    if ((st = qg__kargs_launch(&a, 1, &n, &l)) != QG_OK)
        return st;
    if ((st = dget(ctx, p, g->ph ? QG_K_CONV_DIRECT_WGRAD_KV_S2 : QG_K_CONV_DIRECT_WGRAD_KV,
                    &a)) != QG_OK)
        return st;
    qg__conv_karg_at(&a, xs, xp_extra);
    qg__karg_int(&a, d->C);
    qg__karg_int(&a, g->L);
    qg__karg_int(&a, g->Wd);
    qg__conv_karg_at(&a, ws, dyt_extra);
    qg__karg_int(&a, Kt);
    qg__karg_int(&a, d->K);
    qg__karg_int(&a, d->P);
    qg__karg_int(&a, d->Q);
    qg__karg_int(&a, nb);
    qg__karg_int(&a, wn);
    qg__conv_karg_at(&a, ws, part_extra);
    size_t gl[3] = {(size_t)d->C, (size_t)Kt / QG_KV_CH, (size_t)nchunks};
    size_t lw[3] = {(size_t)p->WG, 1, 1};
    if ((st = qg__kargs_launch(&a, 3, gl, lw)) != QG_OK)
        return st;
    return dwsum(ctx, d, p, ws, part_extra, nchunks, 1, 3, accumulate, dw, wmask);
}

/* The weight gradient in image chunks: per image the x planes, the dy
 * planes (same geometry) and a chunk's partials. */
static size_t bwd_weight_per(const qg_conv_desc *d, const qg_conv_dparams *p, qg_conv_dgeom *g)
{
    int stv = d->stride, T = (d->R + stv - 1) / stv, Ci = d->C * stv * stv;
    *g = direct_geom(T, d->P, d->Q, (int)p->VW, (int)p->VW);
    g->ph = stv == 2;
    size_t part1 = (size_t)d->K * CG_(d) * d->R * d->S; /* one chunk's partials */
    return (size_t)Ci * g->L + (size_t)d->K * g->L + part1;
}

qg_status qg__conv_direct_bwd_weight(const qg_conv_plan *pl, const qg_tensor *x,
                                     const qg_tensor *dy, qg_tensor *dw, qg_tensor *dbias,
                                     qg_tensor *ws, int accumulate)
{
    qg_ctx *ctx = pl->ctx;
    const qg_conv_desc *d = &pl->d;
    const qg_conv_dparams p = pl->p;
    qg_status st = QG_OK;
    int stv = d->stride, T = (d->R + stv - 1) / stv, Ci = d->C * stv * stv;
    qg_conv_dgeom g;
    size_t per = bwd_weight_per(d, &p, &g);
    size_t part1 = (size_t)d->K * CG_(d) * d->R * d->S;
    int nb = direct_nb(d, ws, 0, per);
    QG_ASSERT(nb >= 1); /* the plan's workspace holds bwd_weight_one */
    /* partials first, then the x planes, then the dy planes */
    int wn = direct_wn(&p, g.J, nb);
    int max_chunks = (nb + wn - 1) / wn;
    size_t xp_extra = qg__round_up(part1 * max_chunks, 16);
    size_t dyp_extra = xp_extra + (size_t)nb * Ci * g.L;
    for (int n0 = 0; n0 < d->N; n0 += nb) {
        int cnt = d->N - n0 < nb ? d->N - n0 : nb;
        QG_TRY(dprep(ctx, &p, x, n0, cnt, d->C, d->H, d->W, stv, stv, 1, d->pad, &g, g.Hd, ws,
                     xp_extra));
        QG_TRY(dprep(ctx, &p, dy, n0, cnt, d->K, d->P, d->Q, 1, 1, 1, 0, &g, d->P, ws,
                     dyp_extra));
        QG_TRY(dwgrad(ctx, d, &p, &g, T, Ci, cnt, wn, ws, ws, xp_extra, dyp_extra, g.L, 0,
                      n0 > 0 || accumulate, dw, NULL));
    }
    if (dbias)
        QG_TRY(qg__conv_bias_grad(ctx, dy, d->N, d->K, d->P * d->Q, dbias, accumulate));
    return QG_OK;
fail:
    return st;
}

/* dx (+)= the phases ph [nb][4C][Hp][Wp] of a stride-2 data gradient put
 * back in place (qg_conv_direct_unphase). */
static qg_status dunphase(qg_ctx *ctx, const qg_conv_dparams *p, const qg_conv_desc *d,
                          const qg_tensor *ws, size_t ph_extra, int Hp, int Wp, int nb,
                          qg_tensor *dx, int accumulate, const qg_tensor *mask)
{
    qg_kargs a;
    qg_status st = dget(ctx, p, QG_K_CONV_DIRECT_UNPHASE, &a);
    if (st != QG_OK)
        return st;
    int rows = nb * d->C * d->H;
    qg__conv_karg_at(&a, ws, ph_extra);
    qg__karg_int(&a, d->C);
    qg__karg_int(&a, d->H);
    qg__karg_int(&a, d->W);
    qg__karg_int(&a, Hp);
    qg__karg_int(&a, Wp);
    qg__karg_int(&a, rows);
    qg__karg_int(&a, accumulate != 0);
    qg__karg_tensor(&a, dx);
    qg__karg_tensor(&a, mask ? mask : dx);
    qg__karg_int(&a, mask != NULL);
    size_t gl = (size_t)rows, l = 16;
    return qg__kargs_launch(&a, 1, &gl, &l);
}

/* Workspace floats the direct kernels want for the whole batch under any
 * valid parameters (the widest tiles): the forward planes and the shared-dy
 * backward, so neither falls back to slower paths for want of room; when
 * that passes 4x the usual target, one image's forward planes (the rest
 * then runs in chunks). 0 for shapes the direct kernels do not take. */
size_t qg__conv_direct_ws_bound(const qg_conv_desc *d)
{
    if (!qg__conv_direct_takes(d))
        return 0;
    const qg_conv_dparams wp = {.WG = 8, .VW = 16, .JT = 4, .KT = 8, .WKT = 3, .WN = 1};
    int stv = d->stride, T = (d->R + stv - 1) / stv, Ci = d->C * stv * stv;
    qg_conv_dgeom g = direct_geom(T, d->P, d->Q, (int)(wp.VW * wp.JT), (int)wp.VW);
    size_t wsz = (size_t)d->groups *
                 qg__round_up(qg__round_up((size_t)KG_(d), 8) * (Ci / d->groups) * T * T, 16);
    size_t one = wsz + (size_t)Ci * g.L, all = wsz + (size_t)d->N * Ci * g.L;
    if (use_kv(d)) {
        int Kp;
        qg_conv_dgeom gk = kv_geom(d, &Kp);
        size_t kw = qg__round_up((size_t)Kp * d->C * 9, 16), per = (size_t)d->C * gk.L;
        if (kw + per > one)
            one = kw + per;
        if (kw + (size_t)d->N * per > all)
            all = kw + (size_t)d->N * per;
    }
    qg_conv_bwd_layout b = direct_bwd_layout(d, &wp, 1, 1);
    if (b.ok && b.total > all)
        all = b.total;
    return all <= 4 * QG_CONV_WS_TARGET ? all : one;
}

/* Backward through the direct kernels, all N images at once, with one dy
 * preparation serving both passes. The data gradient of a "same" stride-1
 * conv (pad = (R-1)/2) reads dy padded by pad in planes of row stride
 * W + R - 1 = Q + R - 1, which is the weight gradient's row stride, so the
 * weight gradient reads the same planes pad rows and columns in. A 3x3
 * stride-2 conv with pad 1 takes its data gradient by output phases: dx
 * at (2i+a, 2j+b) is a 2x2 stride-1 conv of dy (unpadded, one zero row
 * and column after) with a subset of the weights, 4C "channels" in one
 * launch, then put in place; those dy planes are the weight gradient's as
 * they are. The phases do 16 taps' work for the 9 useful ones, where the
 * dilated-dy form did 36. dx or dw may be NULL. With keep, the weight
 * gradient reads x's planes as the forward kept them there instead of
 * preparing them. The plan made sure b fits its workspace. */
qg_status qg__conv_direct_bwd(const qg_conv_plan *pl, const qg_conv_bwd_layout *lay,
                              const qg_tensor *x, const qg_tensor *dy, const qg_tensor *w,
                              qg_tensor *dx, int acc_dx, const qg_tensor *mask, qg_tensor *dw,
                              qg_tensor *dbias, int acc_dw, const qg_tensor *wmask,
                              qg_tensor *ws, const qg_tensor *keep)
{
    qg_ctx *ctx = pl->ctx;
    const qg_conv_desc *d = &pl->d;
    const qg_conv_dparams p = pl->p;
    const qg_conv_bwd_layout b = *lay;
    qg_status st = QG_OK;
    QG_ASSERT(b.ok && b.total <= qg_tensor_numel(ws));
    const int N = d->N, stv = d->stride, s2 = b.s2, T = b.T, Ci = b.Ci, TD = b.TD;
    const int Kp = b.Kp, dKo = b.dKo, Hp = b.Hp, Wp = b.Wp, wn = b.wn;
    qg_conv_dgeom gw = b.gw, gy = b.gy;
    const size_t dy_off = b.dy_off, o_ph = b.o_ph, o_dy = b.o_dy, o_x = b.o_x;
    const size_t o_part = b.o_part;

    if (s2)
        QG_TRY(dprep(ctx, &p, dy, 0, N, d->K, d->P, d->Q, 1, 1, 1, 0, &gy, d->P, ws, o_dy));
    else if (dx || !b.kvw) /* (the channel-vectorised wgrad reads dy itself) */
        QG_TRY(dprep(ctx, &p, dy, 0, N, d->K, d->P, d->Q, 1, 1, 1, d->R - 1 - d->pad, &gy, gy.Hd,
                     ws, o_dy));
    if (dx) {
        QG_TRY(dwprep_t(ctx, &p, d, w, TD, s2 ? 2 : 1, Kp, KG_(d), b.kv, ws, b.wgs));
        gy.T = TD;
        if (b.kv && s2) {
            QG_TRY(dfwd_kv(ctx, &p, &gy, d->K, 1, N, ws, ws, o_dy, Kp, NULL, dKo, Hp, Wp, 0, 0, ws,
                           o_ph, NULL, NULL));
            QG_TRY(dunphase(ctx, &p, d, ws, o_ph, Hp, Wp, N, dx, acc_dx, mask));
        } else if (b.kv) {
            QG_TRY(dfwd_kv(ctx, &p, &gy, d->K, 1, N, ws, ws, o_dy, Kp, NULL, d->C, d->H, d->W,
                           acc_dx, 0, dx, 0, mask, NULL));
        } else if (s2) {
            QG_TRY(dfwd(ctx, &p, &gy, KG_(d), N, ws, ws, o_dy, NULL, dKo, Hp, Wp, 0, 0, ws, o_ph,
                        NULL, NULL, d->groups, b.wgs));
            QG_TRY(dunphase(ctx, &p, d, ws, o_ph, Hp, Wp, N, dx, acc_dx, mask));
        } else {
            QG_TRY(dfwd(ctx, &p, &gy, KG_(d), N, ws, ws, o_dy, NULL, CG_(d), d->H, d->W, acc_dx, 0,
                        dx, 0, mask, NULL, d->groups, b.wgs));
        }
    }
    if (dw) {
        /* x's planes as the forward left them in keep (the plan checked
         * its size), or prepared here */
        const qg_tensor *xs = ws;
        size_t xo = o_x;
        if (keep) {
            gw.L = pl->dn.keep_L;
            xs = keep;
            xo = 0;
        } else {
            QG_TRY(dprep(ctx, &p, x, 0, N, d->C, d->H, d->W, stv, stv, 1, d->pad, &gw, gw.Hd, ws,
                         o_x));
        }
        if (b.kvw)
            QG_TRY(dwgrad_kv(ctx, d, &p, &gw, dy, N, wn, ws, xs, xo, b.o_dyt, b.Kt, o_part,
                             acc_dw, dw, wmask));
        else
            QG_TRY(dwgrad(ctx, d, &p, &gw, T, Ci, N, wn, ws, xs, xo, o_dy + dy_off, gy.L, o_part,
                          acc_dw, dw, wmask));
        if (dbias)
            QG_TRY(qg__conv_bias_grad(ctx, dy, d->N, d->K, d->P * d->Q, dbias, acc_dw));
    }
    return QG_OK;
fail:
    return st;
}


void qg__conv_direct_needs(const qg_conv_desc *d, const qg_conv_dparams *p,
                           qg_conv_direct_needs *n)
{
    qg_conv_dgeom g;
    size_t wsz;
    int Kp;
    *n = (qg_conv_direct_needs){0};
    n->fwd_one = fwd_one(d, p);
    size_t wgs;
    g = bwd_data_geom(d, p, &wsz, &Kp, &wgs);
    n->bwd_data_one = wsz + (size_t)d->K * g.L;
    n->bwd_weight_one = bwd_weight_per(d, p, &g);
    n->both = direct_bwd_layout(d, p, 1, 1);
    n->data = direct_bwd_layout(d, p, 1, 0);
    n->weight = direct_bwd_layout(d, p, 0, 1);
    n->keep_L = keep_plane(d, p);
    n->keep_floats = keep_floats(d, n->keep_L);
    n->wprep_floats = fwd_wsz(d, p, &Kp, &wgs);
}

qg_status qg__conv_direct_qtable(const qg_conv_plan *pl, const qg_tensor *s, int L,
                                 qg_conv_dquant *q)
{
    qg_kargs a;
    cl_mem t;
    size_t one = 1;
    qg_status st = qg__ctx_scratch(pl->ctx, 32 * sizeof(float), &t);
    if (st == QG_OK)
        st = dget(pl->ctx, &pl->p, QG_K_CONV_DIRECT_QTABLE, &a);
    if (st != QG_OK)
        return st;
    qg__karg_tensor(&a, s);
    qg__karg_int(&a, L);
    qg__karg_mem(&a, t);
    qg__karg_int(&a, 0);
    if ((st = qg__kargs_launch(&a, 1, &one, &one)) != QG_OK)
        return st;
    *q = (qg_conv_dquant){t, L};
    return QG_OK;
}
