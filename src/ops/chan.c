/* src/ops/chan.c: launchers for cl/chan.cl (channel split, concat,
 * shuffle as strided channel copies; math in the .cl banner). C twin:
 * src/ref/ref_chan.c; tests: tests/test_chan.c. */
#include "config.h"

#include <limits.h>

#include "core/error.h"
#include "cl/ctx.h"
#include "ops/chan.h"
#include "tensor/tensor_impl.h"

static qg_status nchw(qg_ctx *ctx, const char *op, const qg_tensor *t)
{
    if (!t)
        return qg__error(ctx, QG_ERR_INVALID_ARG, "%s: a tensor is NULL", op);
    if (t->dtype != QG_DTYPE_F32 || t->ndim != 4)
        return qg__error(ctx, QG_ERR_SHAPE, "%s: tensor '%s' must be F32 NCHW", op, t->name);
    if (qg_tensor_numel(t) > INT_MAX)
        return qg__error(ctx, QG_ERR_SHAPE, "%s: tensor '%s' has more than 2^31 elements", op,
                         t->name);
    return QG_OK;
}

qg_status qg__chan_copy(qg_ctx *ctx, const qg_tensor *x, int xc0, int xs, qg_tensor *y,
                        int yc0, int ys, int count, int accumulate)
{
    const char *op = "chan_copy";
    qg_status st = nchw(ctx, op, x);
    if (st == QG_OK)
        st = nchw(ctx, op, y);
    if (st != QG_OK)
        return st;
    const int64_t *a = x->shape, *b = y->shape;
    if (a[0] != b[0] || a[2] != b[2] || a[3] != b[3])
        return qg__error(ctx, QG_ERR_SHAPE, "%s: '%s' and '%s' differ in N, H or W", op,
                         x->name, y->name);
    if (count < 1 || xs < 1 || ys < 1 || xc0 < 0 || yc0 < 0 ||
        xc0 + (int64_t)(count - 1) * xs >= a[1] || yc0 + (int64_t)(count - 1) * ys >= b[1])
        return qg__error(ctx, QG_ERR_SHAPE, "%s: %d channels from %d step %d of '%s' (%lld) to "
                         "%d step %d of '%s' (%lld) do not fit", op, count, xc0, xs, x->name,
                         (long long)a[1], yc0, ys, y->name, (long long)b[1]);
    const long *v;
    qg_kargs ka;
    st = qg__kargs_getv(ctx, QG_K_CHAN_COPY, &ka, &v);
    if (st != QG_OK)
        return st;
    int HW = (int)(a[2] * a[3]);
    qg__karg_tensor(&ka, x);
    qg__karg_int(&ka, (int)a[1]);
    qg__karg_int(&ka, xc0);
    qg__karg_int(&ka, xs);
    qg__karg_tensor(&ka, y);
    qg__karg_int(&ka, (int)b[1]);
    qg__karg_int(&ka, yc0);
    qg__karg_int(&ka, ys);
    qg__karg_int(&ka, count);
    qg__karg_int(&ka, HW);
    qg__karg_int(&ka, accumulate != 0);
    /* WG, EPI (cl/chan.cl): 2-D, WG x 1 work-groups. */
    size_t epi = (size_t)v[QG_CHAN_EPI], wg = (size_t)v[QG_CHAN_WG];
    size_t per = ((size_t)HW + epi - 1) / epi;
    if (wg > per) {   /* a small plane: the smallest power of two covering it */
        size_t w2 = 1;
        while (w2 < per)
            w2 *= 2;
        wg = w2;
    }
    size_t global[2] = {(per + wg - 1) / wg * wg, (size_t)a[0] * (size_t)count};
    size_t local[2] = {wg, 1};
    return qg__kargs_launch(&ka, 2, global, local);
}

static int C(const qg_tensor *t) { return (int)t->shape[1]; }

qg_status qg__chan_split(qg_ctx *ctx, const qg_tensor *x, qg_tensor *a, qg_tensor *b,
                         int accumulate)
{
    if (!x || !a || !b)
        return qg__error(ctx, QG_ERR_INVALID_ARG, "chan_split: tensors are required");
    if (x->ndim != 4 || a->ndim != 4 || b->ndim != 4 || C(a) + C(b) != C(x))
        return qg__error(ctx, QG_ERR_SHAPE, "chan_split: '%s' and '%s' must split the channels "
                         "of '%s'", a->name, b->name, x->name);
    qg_status st = qg__chan_copy(ctx, x, 0, 1, a, 0, 1, C(a), accumulate);
    return st == QG_OK ? qg__chan_copy(ctx, x, C(a), 1, b, 0, 1, C(b), accumulate) : st;
}

qg_status qg__chan_concat(qg_ctx *ctx, const qg_tensor *a, const qg_tensor *b, qg_tensor *y,
                          int accumulate)
{
    if (!y || !a || !b)
        return qg__error(ctx, QG_ERR_INVALID_ARG, "chan_concat: tensors are required");
    if (y->ndim != 4 || a->ndim != 4 || b->ndim != 4 || C(a) + C(b) != C(y))
        return qg__error(ctx, QG_ERR_SHAPE, "chan_concat: '%s' and '%s' must fill the channels "
                         "of '%s'", a->name, b->name, y->name);
    qg_status st = qg__chan_copy(ctx, a, 0, 1, y, 0, 1, C(a), accumulate);
    return st == QG_OK ? qg__chan_copy(ctx, b, 0, 1, y, C(a), 1, C(b), accumulate) : st;
}

qg_status qg__chan_shuffle(qg_ctx *ctx, const qg_tensor *x, int groups, qg_tensor *y,
                           int accumulate)
{
    if (!x || !y)
        return qg__error(ctx, QG_ERR_INVALID_ARG, "chan_shuffle: tensors are required");
    if (x->ndim != 4 || y->ndim != 4 || C(x) != C(y) || groups < 1 || C(x) % groups)
        return qg__error(ctx, QG_ERR_SHAPE, "chan_shuffle: '%s' -> '%s' with %d groups: the "
                         "channel counts must match and divide by the groups", x->name,
                         y->name, groups);
    int per = C(x) / groups;
    qg_status st = QG_OK;
    for (int j = 0; j < groups && st == QG_OK; j++)
        st = qg__chan_copy(ctx, x, j * per, 1, y, j, groups, per, accumulate);
    return st;
}

qg_status qg__chan_concat_shuffle2(qg_ctx *ctx, const qg_tensor *a, const qg_tensor *b,
                                   qg_tensor *y, int accumulate)
{
    if (!y || !a || !b)
        return qg__error(ctx, QG_ERR_INVALID_ARG, "chan_concat_shuffle2: tensors are required");
    if (y->ndim != 4 || a->ndim != 4 || b->ndim != 4 || C(a) != C(b) || 2 * C(a) != C(y))
        return qg__error(ctx, QG_ERR_SHAPE, "chan_concat_shuffle2: '%s' and '%s' must have "
                         "half the channels of '%s' each", a->name, b->name, y->name);
    qg_status st = qg__chan_copy(ctx, a, 0, 1, y, 0, 2, C(a), accumulate);
    return st == QG_OK ? qg__chan_copy(ctx, b, 0, 1, y, 1, 2, C(b), accumulate) : st;
}

qg_status qg__chan_unshuffle2(qg_ctx *ctx, const qg_tensor *dy, qg_tensor *da, qg_tensor *db,
                              int accumulate)
{
    if (!dy || !da || !db)
        return qg__error(ctx, QG_ERR_INVALID_ARG, "chan_unshuffle2: tensors are required");
    if (dy->ndim != 4 || da->ndim != 4 || db->ndim != 4 || C(da) != C(db) ||
        2 * C(da) != C(dy))
        return qg__error(ctx, QG_ERR_SHAPE, "chan_unshuffle2: '%s' and '%s' must have half the "
                         "channels of '%s' each", da->name, db->name, dy->name);
    qg_status st = qg__chan_copy(ctx, dy, 0, 2, da, 0, 1, C(da), accumulate);
    return st == QG_OK ? qg__chan_copy(ctx, dy, 1, 2, db, 0, 1, C(db), accumulate) : st;
}
