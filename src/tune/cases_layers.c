/* src/tune/cases_layers.c: tune cases of programs pool, shortcut, loss
 * and optim (cl/pool.cl, cl/shortcut.cl, cl/loss.cl, cl/optim.cl), each
 * on what a ResNet-20 training step (batch 128, option-A shortcuts) asks
 * of it:
 *   pool      global average pool of the last stage, [128,64,8,8], fwd+bwd
 *   shortcut  the option-A 16->32 stride-2 shortcut, fwd+bwd
 *   loss      softmax cross-entropy of [128,10] logits with dlogits
 *   optim     one SGD step (momentum 0.9, wd 1e-4) over the 59 parameter
 *             tensors of ResNet-20, with the gradient sum of squares that
 *             norm clipping needs
 * C references: src/ref/ref_layers.c. */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/rng.h"
#include "ops/layers.h"
#include "ref/ref_layers.h"
#include "tensor/tensor_impl.h"
#include "tune/cases.h"

enum { L_N = 128 };

/* ---- pool and shortcut: one input, one output and their gradients ---- */

typedef struct map_state {
    qg_tensor *x, *y, *dy, *dx;
    float *ry, *rdx;
    size_t nx, ny;
} map_state;

static void map_release(void *p)
{
    map_state *m = p;
    if (!m)
        return;
    qg_tensor_free(m->x);
    qg_tensor_free(m->y);
    qg_tensor_free(m->dy);
    qg_tensor_free(m->dx);
    free(m->ry);
    free(m->rdx);
    free(m);
}

/* x and dx have shape xs, y and dy shape ys; the references get the host
 * x and dy. */
static qg_status map_new(qg_ctx *ctx, int xnd, const int64_t *xs, int ynd, const int64_t *ys,
                         float **hx, float **hdy, map_state **out)
{
    qg_status st = QG_OK;
    map_state *m = calloc(1, sizeof *m);
    *out = NULL;
    if (!m)
        return qg__error(ctx, QG_ERR_NOMEM, "out of memory");
    QG_TRY(qg__tune_tensor(ctx, xnd, xs, "x", 41, 1.0f, hx, &m->x));
    QG_TRY(qg__tune_tensor(ctx, ynd, ys, "dy", 42, 1.0f, hdy, &m->dy));
    QG_TRY(qg__tune_tensor(ctx, ynd, ys, "y", 0, 0, NULL, &m->y));
    QG_TRY(qg__tune_tensor(ctx, xnd, xs, "dx", 0, 0, NULL, &m->dx));
    m->nx = qg_tensor_numel(m->x);
    m->ny = qg_tensor_numel(m->y);
    m->ry = malloc(m->ny * sizeof *m->ry);
    m->rdx = malloc(m->nx * sizeof *m->rdx);
    if (!m->ry || !m->rdx) {
        st = qg__error(ctx, QG_ERR_NOMEM, "out of memory");
        goto fail;
    }
    *out = m;
    return QG_OK;
fail:
    map_release(m);
    return st;
}

/* Pooled means of 64 N(0,1) values are ~0.1 in size, so their float
 * rounding is judged against 1e-2; copies must be exact. */
static qg_status map_check(qg_ctx *ctx, void *state, double *err)
{
    map_state *m = state;
    *err = 0;
    qg_status st = qg__tune_check_f32(ctx, m->y, m->ry, m->ny, 1e-2, err);
    if (st == QG_OK)
        st = qg__tune_check_f32(ctx, m->dx, m->rdx, m->nx, 1e-6, err);
    return st;
}

enum { GAP_C = 64, GAP_HW = 8 * 8 };

static qg_status gap_prepare(qg_ctx *ctx, void **state)
{
    int64_t xs[4] = {L_N, GAP_C, 8, 8}, ys[2] = {L_N, GAP_C};
    float *hx = NULL, *hdy = NULL;
    map_state *m;
    qg_status st = map_new(ctx, 4, xs, 2, ys, &hx, &hdy, &m);
    if (st == QG_OK) {
        qg_ref_gap_fwd(L_N * GAP_C, GAP_HW, hx, m->ry);
        qg_ref_gap_bwd(L_N * GAP_C, GAP_HW, hdy, m->rdx);
        *state = m;
    }
    free(hx);
    free(hdy);
    return st;
}

static qg_status gap_run(qg_ctx *ctx, void *state)
{
    map_state *m = state;
    qg_status st = qg__gap_fwd(ctx, m->x, m->y);
    return st == QG_OK ? qg__gap_bwd(ctx, m->dy, m->dx) : st;
}

enum { SC_C = 16, SC_K = 32, SC_H = 32 };

static qg_status sc_prepare(qg_ctx *ctx, void **state)
{
    int64_t xs[4] = {L_N, SC_C, SC_H, SC_H}, ys[4] = {L_N, SC_K, SC_H / 2, SC_H / 2};
    float *hx = NULL, *hdy = NULL;
    map_state *m;
    qg_status st = map_new(ctx, 4, xs, 4, ys, &hx, &hdy, &m);
    if (st == QG_OK) {
        qg_ref_shortcut_a_fwd(L_N, SC_C, SC_H, SC_H, SC_K, 2, hx, m->ry, 0);
        qg_ref_shortcut_a_bwd(L_N, SC_C, SC_H, SC_H, SC_K, 2, hdy, m->rdx, 0);
        *state = m;
    }
    free(hx);
    free(hdy);
    return st;
}

static qg_status sc_run(qg_ctx *ctx, void *state)
{
    map_state *m = state;
    qg_status st = qg__shortcut_a_fwd(ctx, m->x, 2, m->y, 0);
    return st == QG_OK ? qg__shortcut_a_bwd(ctx, m->dy, 2, m->dx, 0) : st;
}

/* ---- loss ---- */

enum { LOSS_K = 10 };

typedef struct loss_state {
    qg_tensor *logits, *labels, *loss, *correct, *dlogits;
    float rdl[L_N * LOSS_K], rloss;
    int32_t rcorrect;
} loss_state;

static void loss_release(void *p)
{
    loss_state *l = p;
    if (!l)
        return;
    qg_tensor *ts[] = {l->logits, l->labels, l->loss, l->correct, l->dlogits};
    for (size_t i = 0; i < sizeof ts / sizeof *ts; i++)
        qg_tensor_free(ts[i]);
    free(l);
}

static qg_status loss_prepare(qg_ctx *ctx, void **state)
{
    qg_status st = QG_OK;
    loss_state *l = calloc(1, sizeof *l);
    float *hl = NULL;
    if (!l)
        return qg__error(ctx, QG_ERR_NOMEM, "out of memory");
    int64_t ls[2] = {L_N, LOSS_K}, bs[1] = {L_N}, one[1] = {1};
    int32_t lab[L_N];
    qg_rng r = {43};
    for (int i = 0; i < L_N; i++)
        lab[i] = (int32_t)(qg__rng_u64(&r) % LOSS_K);
    QG_TRY(qg__tune_tensor(ctx, 2, ls, "logits", 44, 3.0f, &hl, &l->logits));
    QG_TRY(qg__tune_tensor(ctx, 2, ls, "dlogits", 0, 0, NULL, &l->dlogits));
    QG_TRY(qg__tune_tensor(ctx, 1, one, "loss_sum", 0, 0, NULL, &l->loss));
    QG_TRY(qg_tensor_new(ctx, 1, bs, QG_DTYPE_I32, "labels", &l->labels));
    QG_TRY(qg_tensor_new(ctx, 1, one, QG_DTYPE_I32, "correct", &l->correct));
    QG_TRY(qg_tensor_write(l->labels, lab, sizeof lab));
    qg_ref_softmax_ce(L_N, LOSS_K, hl, lab, 1.0f / L_N, &l->rloss, &l->rcorrect, l->rdl);
    free(hl);
    *state = l;
    return QG_OK;
fail:
    free(hl);
    loss_release(l);
    return st;
}

static qg_status loss_run(qg_ctx *ctx, void *state)
{
    loss_state *l = state;
    return qg__softmax_ce(ctx, l->logits, l->labels, 1.0f / L_N, l->loss, l->correct,
                          l->dlogits);
}

static qg_status loss_check(qg_ctx *ctx, void *state, double *err)
{
    loss_state *l = state;
    *err = 0;
    qg_status st = qg__tune_check_f32(ctx, l->dlogits, l->rdl, L_N * LOSS_K, 1e-6, err);
    if (st == QG_OK)
        st = qg__tune_check_f32(ctx, l->loss, &l->rloss, 1, 1.0, err);
    if (st == QG_OK)
        st = qg__tune_check_i32(ctx, l->correct, &l->rcorrect, 1, err);
    return st;
}

/* ---- optim ---- */

/* ResNet-20's parameter tensors (option A): stem conv and BN, three
 * stages of three blocks (conv, BN, conv, BN), the linear layer. */
enum { OPT_MAX = 64, OPT_TOTAL = 269722 };
#define OPT_LR 0.1f
#define OPT_MOM 0.9f
#define OPT_WD 1e-4f

static int resnet20_param_sizes(size_t *sz)
{
    int n = 0, cin = 16;
    sz[n++] = 16 * 3 * 9;
    sz[n++] = 16;
    sz[n++] = 16;
    for (int planes = 16; planes <= 64; planes *= 2)
        for (int b = 0; b < 3; b++) {
            sz[n++] = (size_t)planes * cin * 9;
            sz[n++] = (size_t)planes;
            sz[n++] = (size_t)planes;
            sz[n++] = (size_t)planes * planes * 9;
            sz[n++] = (size_t)planes;
            sz[n++] = (size_t)planes;
            cin = planes;
        }
    sz[n++] = 64 * 10;
    sz[n++] = 10;
    return n;
}

typedef struct optim_state {
    int np;
    size_t off[OPT_MAX + 1];
    qg_tensor *w, *g, *buf, *acc;                  /* whole buffers */
    qg_tensor *vw[OPT_MAX], *vg[OPT_MAX], *vb[OPT_MAX];
    float *w0, *hg, *rw, *rbuf;                    /* initial w, grads, replayed state */
    double rsumsq;
    int steps;                                     /* device steps since the last reset */
} optim_state;

static void optim_release(void *p)
{
    optim_state *o = p;
    if (!o)
        return;
    for (int i = 0; i < o->np; i++) {
        qg_tensor_free(o->vw[i]);
        qg_tensor_free(o->vg[i]);
        qg_tensor_free(o->vb[i]);
    }
    qg_tensor_free(o->w);
    qg_tensor_free(o->g);
    qg_tensor_free(o->buf);
    qg_tensor_free(o->acc);
    free(o->w0);
    free(o->hg);
    free(o->rw);
    free(o->rbuf);
    free(o);
}

/* Device weights back to their initial values, momentum to zero. */
static qg_status optim_reset(optim_state *o)
{
    qg_status st = qg_tensor_write(o->w, o->w0, o->off[o->np] * sizeof(float));
    if (st == QG_OK)
        st = qg_tensor_zero(o->buf);
    o->steps = 0;
    return st;
}

static qg_status optim_prepare(qg_ctx *ctx, void **state)
{
    qg_status st = QG_OK;
    optim_state *o = calloc(1, sizeof *o);
    if (!o)
        return qg__error(ctx, QG_ERR_NOMEM, "out of memory");
    size_t sz[OPT_MAX];
    o->np = resnet20_param_sizes(sz);
    for (int i = 0; i < o->np; i++)
        o->off[i + 1] = o->off[i] + sz[i];
    size_t total = o->off[o->np];
    QG_ASSERT(total == OPT_TOTAL);
    int64_t s1[1] = {(int64_t)total}, one[1] = {1};
    QG_TRY(qg__tune_tensor(ctx, 1, s1, "w", 45, 0.1f, &o->w0, &o->w));
    QG_TRY(qg__tune_tensor(ctx, 1, s1, "grad", 46, 0.01f, &o->hg, &o->g));
    QG_TRY(qg__tune_tensor(ctx, 1, s1, "momentum", 0, 0, NULL, &o->buf));
    QG_TRY(qg__tune_tensor(ctx, 1, one, "sumsq", 0, 0, NULL, &o->acc));
    for (int i = 0; i < o->np; i++) {
        int64_t s[1] = {(int64_t)sz[i]};
        QG_TRY(qg_tensor_view(o->w, o->off[i], 1, s, &o->vw[i]));
        QG_TRY(qg_tensor_view(o->g, o->off[i], 1, s, &o->vg[i]));
        QG_TRY(qg_tensor_view(o->buf, o->off[i], 1, s, &o->vb[i]));
    }
    o->rw = malloc(total * sizeof *o->rw);
    o->rbuf = malloc(total * sizeof *o->rbuf);
    if (!o->rw || !o->rbuf) {
        st = qg__error(ctx, QG_ERR_NOMEM, "out of memory");
        goto fail;
    }
    o->rsumsq = 0;
    for (size_t i = 0; i < total; i++)
        o->rsumsq += (double)o->hg[i] * o->hg[i];
    QG_TRY(optim_reset(o));
    *state = o;
    return QG_OK;
fail:
    optim_release(o);
    return st;
}

static qg_status optim_run(qg_ctx *ctx, void *state)
{
    optim_state *o = state;
    qg_status st = QG_OK;
    for (int i = 0; i < o->np && st == QG_OK; i++)
        st = qg__sumsq(ctx, o->vg[i], o->acc, i > 0);
    /* as training updates them: four tensors to a launch */
    float wd[OPT_MAX];
    for (int i = 0; i < o->np; i++)
        wd[i] = OPT_WD;
    if (st == QG_OK)
        st = qg__sgd_step_many(ctx, o->np, o->vw, (const qg_tensor *const *)o->vg, o->vb, wd,
                               OPT_LR, OPT_MOM, 0, 0, 1.0f);
    if (st == QG_OK)
        o->steps++;
    return st;
}

/* The steps change the weights in place, so the reference replays as many
 * steps as the device took since the last reset (a few dozen at most),
 * then both restart from the initial state. */
static qg_status optim_check(qg_ctx *ctx, void *state, double *err)
{
    optim_state *o = state;
    size_t total = o->off[o->np];
    memcpy(o->rw, o->w0, total * sizeof *o->rw);
    memset(o->rbuf, 0, total * sizeof *o->rbuf);
    for (int s = 0; s < o->steps; s++)
        qg_ref_sgd_step(total, o->rw, o->hg, o->rbuf, OPT_LR, OPT_MOM, OPT_WD, 0, 0, 1.0f);
    *err = 0;
    float rs = (float)o->rsumsq;
    qg_status st = qg__tune_check_f32(ctx, o->w, o->rw, total, 1e-3, err);
    if (st == QG_OK)
        st = qg__tune_check_f32(ctx, o->buf, o->rbuf, total, 1e-3, err);
    if (st == QG_OK)
        st = qg__tune_check_f32(ctx, o->acc, &rs, 1, 1e-3, err);
    if (st == QG_OK && o->steps == 0)
        *err = INFINITY; /* nothing ran: not a valid check */
    if (st == QG_OK)
        st = optim_reset(o);
    return st;
}

/* Work per run: GAP reads x and dy, writes y and dx (2 x and 2 y sized
 * passes); the shortcut likewise; the loss reads logits and writes
 * dlogits; SGD reads w, grad, buf and writes w, buf, and sumsq reads the
 * gradient once more (6 passes). */
static const qg_tune_case cases[] = {
    {.program = "pool", .shape = "resnet20", .prepare = gap_prepare, .run = gap_run,
     .check = map_check, .release = map_release, .tolerance = 1e-5,
     .work = 4.0 * 2 * L_N * GAP_C * (GAP_HW + 1)},
    {.program = "shortcut", .shape = "resnet20", .prepare = sc_prepare, .run = sc_run,
     .check = map_check, .release = map_release, .tolerance = 1e-6,
     .work = 4.0 * 2 * L_N * (SC_C * SC_H * SC_H + SC_K * SC_H * SC_H / 4)},
    {.program = "loss", .shape = "resnet20", .prepare = loss_prepare, .run = loss_run,
     .check = loss_check, .release = loss_release, .tolerance = 1e-5,
     .work = 4.0 * 2 * L_N * LOSS_K},
    {.program = "optim", .shape = "resnet20", .prepare = optim_prepare, .run = optim_run,
     .check = optim_check, .release = optim_release, .tolerance = 1e-4,
     .work = 4.0 * 6 * OPT_TOTAL},
};

const qg_tune_case *qg__tune_cases_layers(size_t *n)
{
    *n = sizeof cases / sizeof *cases;
    return cases;
}
