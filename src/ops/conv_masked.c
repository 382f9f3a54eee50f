/* src/ops/conv_masked.c: host side of the output-masked 3x3 convolution
 * of cl/conv_masked.cl (contract in src/ops/conv_masked.h). C twin:
 * src/ref/ref_conv_masked.c; tests: tests/test_conv_masked.c.
 *
 * Two forms, chosen per shape by the tunable MODE (src/cl/registry.c):
 * tiles (a forward is four launches: the tile lists from the mask, zeros
 * into the unlisted tiles of y, x's zero-padded planes, the weights in
 * the tiles' layout, the listed tiles) or the per-output gather (three:
 * x channels-last, the weights channels-last, the outputs on). Every
 * buffer is allocated by qg__convm_new (the data gradient's at its first
 * call), so a step after the first allocates nothing, and none reads
 * anything back. */
#include "config.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/error.h"
#include "cl/ctx.h"
#include "ops/conv_masked.h"
#include "tensor/tensor_impl.h"

struct qg_convm {
    qg_ctx *ctx;
    qg_conv_desc d;
    qg_variant *v;       /* conv_masked's parameters for d's shape class */
    int WG, VW, KT, SP;
    int gather, GV, Cp;  /* the form (from MODE), channel vectors, padded C */
    int pay;             /* PAY: measured break-even share in percent, -1: none */
    int KB, QB, TPB, nblk; /* channel blocks, tiles per row and per block, blocks */
    int Hd, Wd, Wg;      /* input planes: rows, tiles' row width, channels-last width */
    int wn, nchunks;     /* weight gradient: images per partial, partials */
    qg_tensor *xp, *wp, *list; /* tiles: planes, weights, lists (NULL for the gather) */
    qg_tensor *xh, *wg;  /* channels-last input (both forms: the weight gradient's) and weights */
    qg_tensor *count, *part;
    qg_tensor *dkl, *dgv, *dcnt, *dwt; /* data gradient (made at its first call) */
    qg_tensor *stats;    /* tiles listed since the statistics' reset (1 int) */
    int zci, zco, zgroup; /* zero weight blocks (qg__convm_zero_blocks); zci 0: none */
    long long fwds;      /* forwards since then */
    int hold, hold_dense, measuring; /* qg__convm_should_skip's verdict and its age */
};

int qg__convm_takes(const qg_conv_desc *d)
{
    return d->groups == 1 && d->R == 3 && d->S == 3 && (d->stride == 1 || d->stride == 2);
}

static int pay_always;

void qg__convm_pay_always(int on)
{
    pay_always = on != 0;
}

int qg__convm_gathers(const qg_convm *c)
{
    return c->gather;
}

/* Maps narrower than this gather in MODE 2: measured on PoCL
 * (docs/gate_skipping.md), a 16-wide tile of an 8x8 or 7x7 map is half
 * padding and the dense channel-vectorised kernel beats the tiles, while
 * the gather works on those maps as on any. On wider maps the tiles'
 * forward beat the gather's at 40% of outputs on: with 16 or 32 input
 * channels an output is too little work for the gather's per-output
 * costs (the mask walk, partial groups of channels, the horizontal sum). */
#define QG_CONVM_GATHER_BELOW 12

int qg__convm_pays(const qg_convm *c)
{
    if (pay_always)
        return 1;
    /* measured on this device: 0 says the dense conv wins even with
     * nothing to compute (the fixed passes alone cost more) */
    if (c->pay >= 0)
        return c->pay > 0;
    /* tiles: from 14 wide on the listed tiles win */
    return c->gather || c->d.Q >= QG_CONVM_GATHER_BELOW;
}

int qg__convm_pay_percent(const qg_convm *c)
{
    return c->pay;
}

int qg__convm_wgrad_pays(const qg_convm *c)
{
    /* the gather's weight gradient (both forms') beat the dense one at
     * every width and density measured; c is made only for shapes it takes */
    (void)c;
    return 1;
}

int qg__convm_dgrad_pays(const qg_convm *c)
{
    return pay_always || c->d.C >= 32;
}

int qg__convm_keeps_paying(const qg_convm *c, long listed, long total)
{
    /* zero weight blocks shrink every tile's work by their share */
    double zero = c->zci ? (double)c->zci / c->d.C : 0.0;
    double most = c->pay >= 0 ? c->pay / 100.0
                  : c->gather ? QG_CONVM_MAX_OUTPUTS : QG_CONVM_MAX_TILES;
    return pay_always || (double)listed * (1.0 - zero) <= most * (double)total;
}

int qg__convm_should_skip(qg_convm *c)
{
    c->measuring = c->hold <= 0;
    if (c->measuring)
        return 1;
    c->hold--;
    return !c->hold_dense;
}

qg_status qg__convm_after_skip(qg_convm *c)
{
    if (!c->measuring)
        return QG_OK;
    c->measuring = 0;
    long listed, total;
    qg_status st = qg__convm_tiles(c, &listed, &total);
    if (st == QG_OK) {
        c->hold_dense = !qg__convm_keeps_paying(c, listed, total);
        c->hold = QG_CONVM_HOLD;
    }
    return st;
}

qg_status qg__convm_zero_blocks(qg_convm *c, int p, int group)
{
    const qg_conv_desc *d = &c->d;
    if (p < 1 || d->C % p || (group && d->K % p))
        return qg__error(c->ctx, QG_ERR_INVALID_ARG, "masked conv: %d zero blocks do not "
                         "divide %d input%s channels", p, d->C, group ? " and output" : "");
    c->zci = p > 1 ? d->C / p : 0;
    c->zco = group ? d->K / p : d->K;
    c->zgroup = group != 0;
    return QG_OK;
}

void qg__convm_free(qg_convm *c)
{
    if (!c)
        return;
    qg_tensor_free(c->xp);
    qg_tensor_free(c->wp);
    qg_tensor_free(c->xh);
    qg_tensor_free(c->wg);
    qg_tensor_free(c->dkl);
    qg_tensor_free(c->dgv);
    qg_tensor_free(c->dcnt);
    qg_tensor_free(c->dwt);
    qg_tensor_free(c->list);
    qg_tensor_free(c->count);
    qg_tensor_free(c->part);
    qg_tensor_free(c->stats);
    free(c);
}

static qg_status new_buf(qg_ctx *ctx, size_t n, qg_dtype dt, const char *name, qg_tensor **t)
{
    if (n > (size_t)INT_MAX)
        return qg__error(ctx, QG_ERR_SHAPE, "masked conv: buffer %s of %zu elements exceeds "
                         "the kernels' int indexing", name, n);
    int64_t s[1] = {(int64_t)(n ? n : 1)};
    return qg_tensor_new(ctx, 1, s, dt, name, t);
}

/* The buffers of c's form (fixed when c is made): the gather's weights,
 * or the tiles' planes, weights and lists. */
static qg_status alloc_form(qg_convm *c)
{
    const qg_conv_desc *d = &c->d;
    qg_status st = QG_OK;
    if (c->gather)
        return new_buf(c->ctx, (size_t)d->K * 9 * c->Cp, QG_DTYPE_F32, "convm.wg", &c->wg);
    QG_TRY(new_buf(c->ctx, (size_t)d->N * d->C * c->Hd * c->Wd, QG_DTYPE_F32, "convm.xp",
                   &c->xp));
    QG_TRY(new_buf(c->ctx, (size_t)c->KB * c->KT * d->C * 9, QG_DTYPE_F32, "convm.wp", &c->wp));
    QG_TRY(new_buf(c->ctx, (size_t)c->nblk * c->TPB, QG_DTYPE_I32, "convm.list", &c->list));
fail:
    return st;
}

qg_status qg__convm_new(qg_ctx *ctx, const qg_conv_desc *d, qg_convm **out)
{
    qg_status st = QG_OK;
    *out = NULL;
    if (!qg__convm_takes(d))
        return qg__error(ctx, QG_ERR_UNSUPPORTED, "masked conv: takes 3x3 kernels at stride 1 "
                         "or 2 without groups, not %dx%d stride %d groups %d", d->R, d->S,
                         d->stride, d->groups);
    qg_convm *c = calloc(1, sizeof *c);
    if (!c)
        return qg__error(ctx, QG_ERR_NOMEM, "out of memory for a masked conv");
    c->ctx = ctx;
    c->d = *d;
    char shape[QG_CONV_SHAPE_CLASS_MAX];
    qg__conv_shape_class(d, shape, sizeof shape);
    QG_TRY(qg__variant_shape(ctx, QG_PROG_CONV_MASKED, shape, &c->v));
    const long *v = c->v->values;
    c->WG = (int)v[QG_MASKED_WG];
    c->VW = (int)v[QG_MASKED_VW];
    c->KT = (int)v[QG_MASKED_KT];
    c->SP = (int)v[QG_MASKED_SP];
    long mode = v[QG_MASKED_MODE];
    c->gather = mode == 1 || (mode == 2 && d->Q < QG_CONVM_GATHER_BELOW);
    c->GV = (int)v[QG_MASKED_GV];
    c->pay = (int)v[QG_MASKED_PAY];
    c->Cp = (d->C + c->GV - 1) / c->GV * c->GV;
    c->KB = (d->K + c->KT - 1) / c->KT;
    c->QB = (d->Q + c->VW - 1) / c->VW;
    c->TPB = d->P * c->QB;
    c->nblk = d->N * c->KB;
    c->Hd = d->H + 2 * d->pad;
    /* the widest read: tile QB-1's last tap, VW (stride 2: 2 VW) values */
    int need = c->QB * c->VW * d->stride + 2;
    c->Wd = d->W + 2 * d->pad > need ? d->W + 2 * d->pad : need;
    /* weight-gradient chunks: about 4 images of a 32x32 map per item */
    int wn = (4 * 32 * 32 + d->P * d->Q - 1) / (d->P * d->Q);
    c->wn = wn < 1 ? 1 : wn > d->N ? d->N : wn;
    c->nchunks = (d->N + c->wn - 1) / c->wn;
    c->Wg = d->W + 2 * d->pad;
    if (c->gather) {
        /* an output is the unit: one "tile" per output in the statistics */
        c->nblk = 0;
        c->TPB = d->K * d->P * d->Q;
    }
    QG_TRY(alloc_form(c));
    QG_TRY(new_buf(ctx, (size_t)d->N * c->Hd * c->Wg * c->Cp, QG_DTYPE_F32, "convm.xh",
                   &c->xh));
    QG_TRY(new_buf(ctx, (size_t)c->nchunks * d->K * 9 * c->Cp, QG_DTYPE_F32, "convm.part",
                   &c->part));
    QG_TRY(new_buf(ctx, (size_t)c->nblk + 1, QG_DTYPE_I32, "convm.count", &c->count));
    QG_TRY(new_buf(ctx, 1, QG_DTYPE_I32, "convm.stats", &c->stats));
    *out = c;
    return QG_OK;
fail:
    qg__convm_free(c);
    return st;
}

#define NX(d) ((size_t)(d)->N * (d)->C * (d)->H * (d)->W)
#define NY(d) ((size_t)(d)->N * (d)->K * (d)->P * (d)->Q)
#define NW(d) ((size_t)(d)->K * (d)->C * 9)

static qg_status kget(qg_convm *c, qg_kernel_id k, qg_kargs *a)
{
    return qg__kargs_variant(c->ctx, c->v, k, a);
}

static qg_status launch1(qg_kargs *a, size_t n)
{
    size_t l = 1;
    return qg__kargs_launch(a, 1, &n, &l);
}

/* xh = x channels-last, zero-padded. */
static qg_status channels_last(qg_convm *c, const qg_tensor *x)
{
    const qg_conv_desc *d = &c->d;
    qg_status st = QG_OK;
    qg_kargs a;
    size_t rows = (size_t)d->N * c->Hd;
    QG_TRY(kget(c, QG_K_CONV_MASKED_GPREP, &a));
    qg__karg_tensor(&a, x);
    qg__karg_int(&a, d->C);
    qg__karg_int(&a, d->H);
    qg__karg_int(&a, d->W);
    qg__karg_int(&a, d->pad);
    qg__karg_int(&a, c->Hd);
    qg__karg_int(&a, c->Wg);
    qg__karg_int(&a, c->Cp);
    qg__karg_int(&a, (int)rows);
    qg__karg_tensor(&a, c->xh);
    return launch1(&a, rows);
fail:
    return st;
}

static qg_status gather_fwd(qg_convm *c, const qg_tensor *x, const qg_tensor *w,
                            const qg_tensor *mask, qg_tensor *y)
{
    const qg_conv_desc *d = &c->d;
    qg_status st = QG_OK;
    qg_kargs a;
    QG_TRY(qg_tensor_zero(c->count));
    c->fwds++;
    QG_TRY(channels_last(c, x));
    /* the weights channels-last */
    size_t wt = (size_t)d->K * 9;
    QG_TRY(kget(c, QG_K_CONV_MASKED_GWPREP, &a));
    qg__karg_tensor(&a, w);
    qg__karg_int(&a, d->C);
    qg__karg_int(&a, c->Cp);
    qg__karg_int(&a, (int)wt);
    qg__karg_tensor(&a, c->wg);
    QG_TRY(launch1(&a, wt));
    /* the outputs on, a row per item */
    size_t orows = (size_t)d->N * d->P;
    QG_TRY(kget(c, QG_K_CONV_MASKED_GFWD, &a));
    qg__karg_tensor(&a, c->xh);
    qg__karg_int(&a, c->Cp);
    qg__karg_int(&a, c->Hd);
    qg__karg_int(&a, c->Wg);
    qg__karg_int(&a, d->stride);
    qg__karg_tensor(&a, c->wg);
    qg__karg_int(&a, d->K);
    qg__karg_int(&a, d->P);
    qg__karg_int(&a, d->Q);
    qg__karg_int(&a, (int)orows);
    qg__karg_tensor(&a, mask);
    qg__karg_tensor(&a, y);
    qg__karg_int(&a, c->zci);
    qg__karg_int(&a, c->zco);
    qg__karg_int(&a, c->zgroup);
    qg__karg_tensor(&a, c->count);
    qg__karg_tensor(&a, c->stats);
    size_t gl = qg__round_up(orows, (size_t)c->WG), l = (size_t)c->WG;
    return qg__kargs_launch(&a, 1, &gl, &l);
fail:
    return st;
}

static qg_status gather_bwd_weight(qg_convm *c, const qg_tensor *dy, qg_tensor *dw,
                                   int accumulate)
{
    const qg_conv_desc *d = &c->d;
    qg_status st = QG_OK;
    qg_kargs a;
    QG_TRY(kget(c, QG_K_CONV_MASKED_GWGRAD, &a));
    qg__karg_tensor(&a, c->xh);
    qg__karg_int(&a, c->Cp);
    qg__karg_int(&a, c->Hd);
    qg__karg_int(&a, c->Wg);
    qg__karg_int(&a, d->stride);
    qg__karg_tensor(&a, dy);
    qg__karg_int(&a, d->K);
    qg__karg_int(&a, d->P);
    qg__karg_int(&a, d->Q);
    qg__karg_int(&a, d->N);
    qg__karg_int(&a, c->wn);
    qg__karg_tensor(&a, c->part);
    qg__karg_int(&a, c->zci);
    qg__karg_int(&a, c->zco);
    qg__karg_int(&a, c->zgroup);
    size_t gl[3] = {qg__round_up((size_t)d->K, (size_t)c->WG), (size_t)(c->Cp / c->GV),
                    (size_t)c->nchunks};
    size_t l[3] = {(size_t)c->WG, 1, 1};
    QG_TRY(qg__kargs_launch(&a, 3, gl, l));
    size_t total = NW(d);
    QG_TRY(kget(c, QG_K_CONV_MASKED_GWSUM, &a));
    qg__karg_tensor(&a, c->part);
    qg__karg_int(&a, c->nchunks);
    qg__karg_int(&a, d->K);
    qg__karg_int(&a, d->C);
    qg__karg_int(&a, c->Cp);
    qg__karg_int(&a, accumulate != 0);
    qg__karg_int(&a, c->zci);
    qg__karg_int(&a, c->zco);
    qg__karg_int(&a, c->zgroup);
    qg__karg_tensor(&a, dw);
    size_t n = qg__round_up(total, 64), l1 = 64;
    return qg__kargs_launch(&a, 1, &n, &l1);
fail:
    return st;
}

qg_status qg__convm_fwd(qg_convm *c, const qg_tensor *x, const qg_tensor *w,
                        const qg_tensor *mask, qg_tensor *y)
{
    static const char op[] = "conv_masked_fwd";
    const qg_conv_desc *d = &c->d;
    qg_ctx *ctx = c->ctx;
    qg_status st = QG_OK;
    qg_kargs a;
    QG_TRY(qg__tensor_need(ctx, op, "x", x, NX(d), QG_DTYPE_F32));
    QG_TRY(qg__tensor_need(ctx, op, "w", w, NW(d), QG_DTYPE_F32));
    QG_TRY(qg__tensor_need(ctx, op, "mask", mask, NY(d), QG_DTYPE_F32));
    QG_TRY(qg__tensor_need(ctx, op, "y", y, NY(d), QG_DTYPE_F32));
    if (c->gather)
        return gather_fwd(c, x, w, mask, y);
    /* the lists (and zeros on the unlisted tiles) */
    QG_TRY(qg_tensor_zero(c->count));
    QG_TRY(kget(c, QG_K_CONV_MASKED_LIST, &a));
    qg__karg_tensor(&a, mask);
    qg__karg_int(&a, d->K);
    qg__karg_int(&a, d->P);
    qg__karg_int(&a, d->Q);
    qg__karg_int(&a, c->KB);
    qg__karg_int(&a, c->nblk);
    qg__karg_tensor(&a, c->list);
    qg__karg_tensor(&a, c->count);
    qg__karg_tensor(&a, y);
    qg__karg_tensor(&a, c->stats);
    QG_TRY(launch1(&a, (size_t)c->nblk));
    c->fwds++;
    /* x's planes */
    size_t rows = (size_t)d->N * d->C * c->Hd;
    QG_TRY(kget(c, QG_K_CONV_MASKED_PREP, &a));
    qg__karg_tensor(&a, x);
    qg__karg_int(&a, d->H);
    qg__karg_int(&a, d->W);
    qg__karg_int(&a, d->pad);
    qg__karg_int(&a, c->Hd);
    qg__karg_int(&a, c->Wd);
    qg__karg_int(&a, (int)rows);
    qg__karg_tensor(&a, c->xp);
    QG_TRY(launch1(&a, rows));
    /* the weights */
    size_t wt = (size_t)c->KB * d->C * 9;
    QG_TRY(kget(c, QG_K_CONV_MASKED_WPREP, &a));
    qg__karg_tensor(&a, w);
    qg__karg_int(&a, d->K);
    qg__karg_int(&a, d->C);
    qg__karg_int(&a, (int)wt);
    qg__karg_tensor(&a, c->wp);
    QG_TRY(launch1(&a, wt));
    /* the listed tiles */
    QG_TRY(kget(c, QG_K_CONV_MASKED_FWD, &a));
    qg__karg_tensor(&a, c->xp);
    qg__karg_int(&a, d->C);
    qg__karg_int(&a, c->Hd);
    qg__karg_int(&a, c->Wd);
    qg__karg_int(&a, d->stride);
    qg__karg_tensor(&a, c->wp);
    qg__karg_int(&a, d->K);
    qg__karg_int(&a, d->P);
    qg__karg_int(&a, d->Q);
    qg__karg_int(&a, c->KB);
    qg__karg_int(&a, c->nblk);
    qg__karg_tensor(&a, c->list);
    qg__karg_tensor(&a, c->count);
    qg__karg_tensor(&a, mask);
    qg__karg_tensor(&a, y);
    qg__karg_int(&a, c->zci);
    qg__karg_int(&a, c->zco);
    qg__karg_int(&a, c->zgroup);
    size_t gl[2] = {qg__round_up((size_t)c->nblk, (size_t)c->WG), (size_t)c->SP};
    size_t l[2] = {(size_t)c->WG, 1};
    return qg__kargs_launch(&a, 2, gl, l);
fail:
    return st;
}

qg_status qg__convm_bwd_weight(qg_convm *c, const qg_tensor *x, const qg_tensor *dy,
                               qg_tensor *dw, int accumulate)
{
    static const char op[] = "conv_masked_bwd_weight";
    const qg_conv_desc *d = &c->d;
    qg_ctx *ctx = c->ctx;
    qg_status st = QG_OK;
    QG_TRY(qg__tensor_need(ctx, op, "x", x, NX(d), QG_DTYPE_F32));
    QG_TRY(qg__tensor_need(ctx, op, "dy", dy, NY(d), QG_DTYPE_F32));
    QG_TRY(qg__tensor_need(ctx, op, "dw", dw, NW(d), QG_DTYPE_F32));
    /* the tiles' forward left planes of another layout: the gather's
     * weight gradient beat the tiles' at every width and density measured
     * (docs/gate_skipping.md), so both forms use it */
    if (!c->gather)
        QG_TRY(channels_last(c, x));
    return gather_bwd_weight(c, dy, dw, accumulate);
fail:
    return st;
}

qg_status qg__convm_bwd_data(qg_convm *c, const qg_tensor *dy, const qg_tensor *w,
                             qg_tensor *dx, int accumulate)
{
    static const char op[] = "conv_masked_bwd_data";
    const qg_conv_desc *d = &c->d;
    qg_ctx *ctx = c->ctx;
    qg_status st = QG_OK;
    qg_kargs a;
    QG_TRY(qg__tensor_need(ctx, op, "dy", dy, NY(d), QG_DTYPE_F32));
    QG_TRY(qg__tensor_need(ctx, op, "w", w, NW(d), QG_DTYPE_F32));
    QG_TRY(qg__tensor_need(ctx, op, "dx", dx, NX(d), QG_DTYPE_F32));
    size_t npos = (size_t)d->N * d->P * d->Q;
    if (!c->dkl) {
        QG_TRY(new_buf(ctx, npos * d->K, QG_DTYPE_I32, "convm.dkl", &c->dkl));
        QG_TRY(new_buf(ctx, npos * d->K, QG_DTYPE_F32, "convm.dgv", &c->dgv));
        QG_TRY(new_buf(ctx, npos, QG_DTYPE_I32, "convm.dcnt", &c->dcnt));
        QG_TRY(new_buf(ctx, (size_t)9 * d->K * c->Cp, QG_DTYPE_F32, "convm.dwt", &c->dwt));
    }
    /* dy's non-zero channels per output position */
    size_t orows = (size_t)d->N * d->P;
    QG_TRY(kget(c, QG_K_CONV_MASKED_DCOMPACT, &a));
    qg__karg_tensor(&a, dy);
    qg__karg_int(&a, d->K);
    qg__karg_int(&a, d->P);
    qg__karg_int(&a, d->Q);
    qg__karg_int(&a, (int)orows);
    qg__karg_tensor(&a, c->dkl);
    qg__karg_tensor(&a, c->dgv);
    qg__karg_tensor(&a, c->dcnt);
    QG_TRY(launch1(&a, orows));
    /* the weights per tap and output channel, channels last */
    size_t wt = (size_t)9 * d->K;
    QG_TRY(kget(c, QG_K_CONV_MASKED_DWPREP, &a));
    qg__karg_tensor(&a, w);
    qg__karg_int(&a, d->K);
    qg__karg_int(&a, d->C);
    qg__karg_int(&a, c->Cp);
    qg__karg_int(&a, (int)wt);
    qg__karg_tensor(&a, c->dwt);
    QG_TRY(launch1(&a, wt));
    /* each input row gathers from the listed outputs its taps reach */
    size_t irows = (size_t)d->N * d->H;
    QG_TRY(kget(c, QG_K_CONV_MASKED_DGRAD, &a));
    qg__karg_tensor(&a, c->dkl);
    qg__karg_tensor(&a, c->dgv);
    qg__karg_tensor(&a, c->dcnt);
    qg__karg_tensor(&a, c->dwt);
    qg__karg_int(&a, d->C);
    qg__karg_int(&a, c->Cp);
    qg__karg_int(&a, d->H);
    qg__karg_int(&a, d->W);
    qg__karg_int(&a, d->K);
    qg__karg_int(&a, d->P);
    qg__karg_int(&a, d->Q);
    qg__karg_int(&a, d->stride);
    qg__karg_int(&a, d->pad);
    qg__karg_int(&a, (int)irows);
    qg__karg_int(&a, accumulate != 0);
    qg__karg_int(&a, c->zci);
    qg__karg_int(&a, c->zco);
    qg__karg_int(&a, c->zgroup);
    qg__karg_tensor(&a, dx);
    size_t gl = qg__round_up(irows, (size_t)c->WG), l = (size_t)c->WG;
    return qg__kargs_launch(&a, 1, &gl, &l);
fail:
    return st;
}

qg_status qg__convm_tiles(qg_convm *c, long *listed, long *total)
{
    int32_t v = 0;
    qg_tensor *t = NULL;
    int64_t one[1] = {1};
    qg_status st = qg_tensor_view(c->count, (size_t)c->nblk, 1, one, &t);
    if (st == QG_OK)
        st = qg_tensor_read(t, &v, sizeof v);
    qg_tensor_free(t);
    *listed = v;
    *total = c->gather ? (long)c->d.N * c->TPB : (long)c->nblk * c->TPB;
    return st;
}

qg_status qg__convm_tiles_sum(qg_convm *c, long long *listed, long long *total)
{
    int32_t v = 0;
    qg_status st = c->fwds ? qg_tensor_read(c->stats, &v, sizeof v) : QG_OK;
    *listed = v;
    *total = c->fwds * (c->gather ? (long long)c->d.N : (long long)c->nblk) * c->TPB;
    return st;
}

qg_status qg__convm_tiles_reset(qg_convm *c)
{
    c->fwds = 0;
    return qg_tensor_zero(c->stats);
}
