/* cl/chan.cl: channel split, concat and shuffle (ShuffleNet v2's unit
 * plumbing) as one strided channel copy. Launchers: src/ops/chan.c; C
 * twin: src/ref/ref_chan.c; tests: tests/test_chan.c.
 *
 * Layout: x [N][xC][HW], y [N][yC][HW]. For c < count:
 *   y[n, yc0 + c*ys, :] (+)= x[n, xc0 + c*xs, :]
 * split takes a channel range of x (xs = ys = 1), concat writes one into
 * y, and shuffle(groups g) is g copies with ys = g (y channel o = j + g*i
 * reads x channel j*(C/g) + i). Every mapping is a permutation, so the
 * backward of each is the copy with x and y exchanged.
 *
 * Tunables:
 *   WG   work-group size the host launches with (power of two).
 *   EPI  consecutive elements per work-item (1, 2, 4, 8). */
#ifndef WG
#define WG 64
#endif
#ifndef EPI
#define EPI 1
#endif
#if EPI < 1 || EPI > 16
#error "EPI must be in 1..16"
#endif

/* 2-D launch: dimension 0 walks a plane in chunks of EPI elements
 * (global 0 = ceil(HW/EPI) rounded up to WG), dimension 1 is the copied
 * channel row n*count + c (global 1 = N*count). Neighbouring items touch
 * neighbouring addresses, and the row arithmetic is per row, not per
 * element. */
__kernel void qg_chan_copy(QG_T(const float, x), int xC, int xc0, int xs, QG_T(float, y),
                           int yC, int yc0, int ys, int count, int HW, int accumulate)
{
    int i0 = get_global_id(0) * EPI, r = get_global_id(1);
    int n = r / count, c = r % count;
    __global const float *xp = QG_P(x) + (size_t)(n * xC + xc0 + c * xs) * HW;
    __global float *yp = QG_P(y) + (size_t)(n * yC + yc0 + c * ys) * HW;
    for (int e = 0; e < EPI; e++) {
        int i = i0 + e;
        if (i < HW)
            yp[i] = accumulate ? yp[i] + xp[i] : xp[i];
    }
}
