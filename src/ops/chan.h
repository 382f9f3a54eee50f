/* src/ops/chan.h: channel split, concat and shuffle on F32 NCHW tensors
 * (cl/chan.cl; C twin src/ref/ref_chan.h; tests tests/test_chan.c).
 * Outputs are overwritten, or added to when `accumulate` is set (the
 * backward of a tensor read by two consumers). Shapes must agree in N, H
 * and W; the channel counts are checked per call. */
#ifndef QG_OPS_CHAN_H
#define QG_OPS_CHAN_H

#include "qgate/tensor.h"

/* y[:, yc0 + c*ys] (+)= x[:, xc0 + c*xs] for c < count. */
qg_status qg__chan_copy(qg_ctx *ctx, const qg_tensor *x, int xc0, int xs, qg_tensor *y,
                        int yc0, int ys, int count, int accumulate);
/* a = x[:, :Ca], b = x[:, Ca:Ca+Cb] (Ca + Cb = C). Backward: concat. */
qg_status qg__chan_split(qg_ctx *ctx, const qg_tensor *x, qg_tensor *a, qg_tensor *b,
                         int accumulate);
/* y = [a, b] along channels. Backward: split. */
qg_status qg__chan_concat(qg_ctx *ctx, const qg_tensor *a, const qg_tensor *b, qg_tensor *y,
                          int accumulate);
/* y[:, o] = x[:, (o % g)*(C/g) + o/g] (C divisible by g). The backward
 * is the shuffle with C/g groups. */
qg_status qg__chan_shuffle(qg_ctx *ctx, const qg_tensor *x, int groups, qg_tensor *y,
                           int accumulate);
/* shuffle(concat(a, b), 2) in one pass for Ca = Cb: y[:, 2i] = a[:, i],
 * y[:, 2i+1] = b[:, i]. Backward: qg__chan_unshuffle2. */
qg_status qg__chan_concat_shuffle2(qg_ctx *ctx, const qg_tensor *a, const qg_tensor *b,
                                   qg_tensor *y, int accumulate);
/* da[:, i] (+)= dy[:, 2i], db[:, i] (+)= dy[:, 2i+1]. */
qg_status qg__chan_unshuffle2(qg_ctx *ctx, const qg_tensor *dy, qg_tensor *da, qg_tensor *db,
                              int accumulate);

#endif
