/* cl/loss.cl: softmax cross-entropy with the batch loss sum, the count of
 * correct predictions and the logits gradient. Launcher: src/ops/loss.c;
 * C twin: src/ref/ref_layers.c (qg_ref_softmax_ce); tests:
 * tests/test_loss.c.
 *
 * Layout: logits, dlogits [N][classes] row-major; labels [N] int.
 * Per row, with m = max_j l_j and s = sum_j exp(l_j - m) (stable form):
 *   loss_i = log(s) - (l_label - m) = -log softmax(l)_label,
 *   correct_i = (first index of the maximum == label),
 *   dlogits_ij = (exp(l_j - m)/s - [j == label]) * scale.
 * A label outside [0, classes) makes the row's loss NaN (so a bad batch
 * shows in the loss instead of passing silently); it never counts as
 * correct and its gradient is the plain softmax times scale.
 *
 * A single work-group walks the rows (item l takes rows l, l+WG, ...) and
 * reduces loss_sum[0] and correct[0] through local memory in a fixed
 * order, so results are deterministic run to run. dlogits may alias
 * logits: each row is read fully before it is written.
 *
 * Tunables:
 *   WG  work-group size, power of two in 1..1024. */
#ifndef WG
#define WG 64
#endif
#if (WG & (WG - 1)) != 0 || WG < 1 || WG > 1024
#error "WG must be a power of two in 1..1024"
#endif

/* global = local = WG. has_dlogits == 0 leaves dlogits (bound to any
 * buffer) untouched. */
__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void qg_loss_softmax_ce(QG_T(const float, logits), QG_T(const int, labels), int N, int classes,
                        float scale, QG_T(float, loss_sum), QG_T(int, correct),
                        QG_T(float, dlogits), int has_dlogits)
{
    __local float lacc[WG];
    __local int cacc[WG];
    int l = get_local_id(0);
    float loss = 0.0f;
    int right = 0;
    for (int r = l; r < N; r += WG) {
        __global const float *row = QG_P(logits) + r * classes;
        float m = row[0];
        int am = 0;
        for (int j = 1; j < classes; j++)
            if (row[j] > m) {
                m = row[j];
                am = j;
            }
        float s = 0.0f;
        for (int j = 0; j < classes; j++)
            s += exp(row[j] - m);
        int lab = QG_P(labels)[r];
        int valid = lab >= 0 && lab < classes;
        loss += valid ? log(s) - (row[lab] - m) : NAN;
        right += valid && am == lab;
        if (has_dlogits) {
            __global float *d = QG_P(dlogits) + r * classes;
            float inv = 1.0f / s;
            for (int j = 0; j < classes; j++) {
                float e = exp(row[j] - m) * inv;
                d[j] = (j == lab ? e - 1.0f : e) * scale;
            }
        }
    }
    lacc[l] = loss;
    cacc[l] = right;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int w = WG / 2; w > 0; w >>= 1) {
        if (l < w) {
            lacc[l] += lacc[l + w];
            cacc[l] += cacc[l + w];
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (l == 0) {
        QG_P(loss_sum)[0] = lacc[0];
        QG_P(correct)[0] = cacc[0];
    }
}
