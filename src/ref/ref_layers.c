/* src/ref/ref_layers.c: plain-C oracles for batch norm, pooling, the
 * option-A shortcut, softmax cross-entropy and the optimizer steps
 * (kernels in cl/bn.cl, cl/pool.cl, cl/shortcut.cl, cl/loss.cl,
 * cl/optim.cl; tests: tests/test_bn.c, test_pool.c, test_loss.c,
 * test_optim.c). Written for clarity, not speed: scatter where the kernels
 * gather, so the two implementations share as little as possible. */
#include "config.h"

#include <math.h>
#include <stdlib.h>

#include "ref/ref_layers.h"

/* ---- batch norm ---- */

static size_t at3(int C, int HW, int n, int c, int p)
{
    return ((size_t)n * C + c) * HW + p;
}

void qg_ref_bn_fwd_train(int N, int C, int HW, const float *x, const float *gamma,
                         const float *beta, float *running_mean, float *running_var,
                         float momentum, float eps, float *y, float *save_mean,
                         float *save_invstd)
{
    double cnt = (double)N * HW;
    for (int c = 0; c < C; c++) {
        double s = 0, q = 0;
        for (int n = 0; n < N; n++)
            for (int p = 0; p < HW; p++)
                s += x[at3(C, HW, n, c, p)];
        double mean = s / cnt;
        for (int n = 0; n < N; n++)
            for (int p = 0; p < HW; p++) {
                double d = x[at3(C, HW, n, c, p)] - mean;
                q += d * d;
            }
        double var = q / cnt;
        double invstd = 1.0 / sqrt(var + eps);
        double g = gamma ? gamma[c] : 1.0, b = beta ? beta[c] : 0.0;
        for (int n = 0; n < N; n++)
            for (int p = 0; p < HW; p++) {
                size_t i = at3(C, HW, n, c, p);
                y[i] = (float)((x[i] - mean) * invstd * g + b);
            }
        save_mean[c] = (float)mean;
        save_invstd[c] = (float)invstd;
        if (running_mean) {
            running_mean[c] = (float)((1.0 - momentum) * running_mean[c] + momentum * mean);
            running_var[c] = (float)((1.0 - momentum) * running_var[c] +
                                     momentum * var * cnt / (cnt - 1));
        }
    }
}

void qg_ref_bn_fwd_eval(int N, int C, int HW, const float *x, const float *gamma,
                        const float *beta, const float *running_mean, const float *running_var,
                        float eps, float *y)
{
    for (int c = 0; c < C; c++) {
        double invstd = 1.0 / sqrt((double)running_var[c] + eps);
        double g = gamma ? gamma[c] : 1.0, b = beta ? beta[c] : 0.0;
        for (int n = 0; n < N; n++)
            for (int p = 0; p < HW; p++) {
                size_t i = at3(C, HW, n, c, p);
                y[i] = (float)((x[i] - (double)running_mean[c]) * invstd * g + b);
            }
    }
}

void qg_ref_bn_bwd(int N, int C, int HW, const float *x, const float *dy, const float *gamma,
                   const float *save_mean, const float *save_invstd, float *dx, float *dgamma,
                   float *dbeta, int accumulate)
{
    double cnt = (double)N * HW;
    for (int c = 0; c < C; c++) {
        double mean = save_mean[c], invstd = save_invstd[c];
        double sdy = 0, sdyx = 0;
        for (int n = 0; n < N; n++)
            for (int p = 0; p < HW; p++) {
                size_t i = at3(C, HW, n, c, p);
                sdy += dy[i];
                sdyx += dy[i] * (x[i] - mean) * invstd;
            }
        if (dgamma)
            dgamma[c] = (float)sdyx;
        if (dbeta)
            dbeta[c] = (float)sdy;
        double k = (gamma ? gamma[c] : 1.0) * invstd / cnt;
        for (int n = 0; n < N; n++)
            for (int p = 0; p < HW; p++) {
                size_t i = at3(C, HW, n, c, p);
                double xhat = (x[i] - mean) * invstd;
                double v = k * (cnt * dy[i] - sdy - xhat * sdyx);
                dx[i] = accumulate ? (float)(dx[i] + v) : (float)v;
            }
    }
}

/* ---- pooling ---- */

int qg_ref_pool_out(int H, int k, int stride, int pad)
{
    return (H + 2 * pad - k) / stride + 1;
}

void qg_ref_maxpool_fwd(int NC, int H, int W, int k, int stride, int pad, const float *x,
                        float *y, int32_t *argmax)
{
    int P = qg_ref_pool_out(H, k, stride, pad), Q = qg_ref_pool_out(W, k, stride, pad);
    for (int nc = 0; nc < NC; nc++)
        for (int p = 0; p < P; p++)
            for (int q = 0; q < Q; q++) {
                const float *plane = x + (size_t)nc * H * W;
                float m = -INFINITY;
                int am = -1;
                for (int r = 0; r < k && !(am >= 0 && isnan(m)); r++)
                    for (int s = 0; s < k; s++) {
                        int h = p * stride - pad + r, w = q * stride - pad + s;
                        if (h < 0 || h >= H || w < 0 || w >= W)
                            continue;
                        float v = plane[h * W + w];
                        if (am < 0 || v > m || isnan(v)) {
                            m = v;
                            am = h * W + w;
                            if (isnan(v))
                                break;
                        }
                    }
                size_t o = ((size_t)nc * P + p) * Q + q;
                y[o] = m;
                argmax[o] = am;
            }
}

void qg_ref_maxpool_bwd(int NC, int H, int W, int P, int Q, const float *dy,
                        const int32_t *argmax, float *dx)
{
    for (size_t i = 0; i < (size_t)NC * H * W; i++)
        dx[i] = 0.0f;
    for (int nc = 0; nc < NC; nc++)
        for (int j = 0; j < P * Q; j++) {
            size_t o = (size_t)nc * P * Q + j;
            if (argmax[o] >= 0 && argmax[o] < H * W)
                dx[(size_t)nc * H * W + argmax[o]] += dy[o];
        }
}

void qg_ref_avgpool_fwd(int NC, int H, int W, int k, int stride, int pad, const float *x,
                        float *y)
{
    int P = qg_ref_pool_out(H, k, stride, pad), Q = qg_ref_pool_out(W, k, stride, pad);
    for (int nc = 0; nc < NC; nc++)
        for (int p = 0; p < P; p++)
            for (int q = 0; q < Q; q++) {
                double s = 0;
                for (int r = 0; r < k; r++)
                    for (int t = 0; t < k; t++) {
                        int h = p * stride - pad + r, w = q * stride - pad + t;
                        if (h >= 0 && h < H && w >= 0 && w < W)
                            s += x[((size_t)nc * H + h) * W + w];
                    }
                y[((size_t)nc * P + p) * Q + q] = (float)(s / (k * k));
            }
}

void qg_ref_avgpool_bwd(int NC, int H, int W, int k, int stride, int pad, const float *dy,
                        float *dx)
{
    int P = qg_ref_pool_out(H, k, stride, pad), Q = qg_ref_pool_out(W, k, stride, pad);
    size_t n = (size_t)NC * H * W;
    double *acc = calloc(n ? n : 1, sizeof *acc);
    if (!acc)
        abort();
    for (int nc = 0; nc < NC; nc++)
        for (int p = 0; p < P; p++)
            for (int q = 0; q < Q; q++) {
                double g = dy[((size_t)nc * P + p) * Q + q] / (double)(k * k);
                for (int r = 0; r < k; r++)
                    for (int t = 0; t < k; t++) {
                        int h = p * stride - pad + r, w = q * stride - pad + t;
                        if (h >= 0 && h < H && w >= 0 && w < W)
                            acc[((size_t)nc * H + h) * W + w] += g;
                    }
            }
    for (size_t i = 0; i < n; i++)
        dx[i] = (float)acc[i];
    free(acc);
}

void qg_ref_gap_fwd(int NC, int HW, const float *x, float *y)
{
    for (int nc = 0; nc < NC; nc++) {
        double s = 0;
        for (int j = 0; j < HW; j++)
            s += x[(size_t)nc * HW + j];
        y[nc] = (float)(s / HW);
    }
}

void qg_ref_gap_bwd(int NC, int HW, const float *dy, float *dx)
{
    for (int nc = 0; nc < NC; nc++)
        for (int j = 0; j < HW; j++)
            dx[(size_t)nc * HW + j] = (float)((double)dy[nc] / HW);
}

/* ---- option-A shortcut ---- */

void qg_ref_shortcut_a_fwd(int N, int C, int H, int W, int K, int stride, const float *x,
                           float *y, int accumulate)
{
    int P = (H + stride - 1) / stride, Q = (W + stride - 1) / stride, pad = (K - C) / 2;
    if (!accumulate)
        for (size_t i = 0; i < (size_t)N * K * P * Q; i++)
            y[i] = 0.0f;
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++)
            for (int h = 0; h < H; h += stride)
                for (int w = 0; w < W; w += stride)
                    y[(((size_t)n * K + c + pad) * P + h / stride) * Q + w / stride] +=
                        x[(((size_t)n * C + c) * H + h) * W + w];
}

void qg_ref_shortcut_a_bwd(int N, int C, int H, int W, int K, int stride, const float *dy,
                           float *dx, int accumulate)
{
    int P = (H + stride - 1) / stride, Q = (W + stride - 1) / stride, pad = (K - C) / 2;
    if (!accumulate)
        for (size_t i = 0; i < (size_t)N * C * H * W; i++)
            dx[i] = 0.0f;
    for (int n = 0; n < N; n++)
        for (int k = pad; k < pad + C; k++)
            for (int p = 0; p < P; p++)
                for (int q = 0; q < Q; q++)
                    dx[(((size_t)n * C + k - pad) * H + p * stride) * W + q * stride] +=
                        dy[(((size_t)n * K + k) * P + p) * Q + q];
}

/* ---- softmax cross-entropy ---- */

void qg_ref_softmax_ce(int N, int classes, const float *logits, const int32_t *labels,
                       float scale, float *loss_sum, int32_t *correct, float *dlogits)
{
    double loss = 0;
    int32_t right = 0;
    for (int r = 0; r < N; r++) {
        const float *row = logits + (size_t)r * classes;
        int am = 0;
        for (int j = 1; j < classes; j++)
            if (row[j] > row[am])
                am = j;
        double m = row[am], s = 0;
        for (int j = 0; j < classes; j++)
            s += exp(row[j] - m);
        int lab = labels[r];
        int valid = lab >= 0 && lab < classes;
        loss += valid ? log(s) - (row[lab] - m) : NAN;
        right += valid && am == lab;
        if (dlogits)
            for (int j = 0; j < classes; j++)
                dlogits[(size_t)r * classes + j] =
                    (float)((exp(row[j] - m) / s - (j == lab)) * scale);
    }
    *loss_sum = (float)loss;
    *correct = right;
}

/* ---- optimizer steps: the kernels' float operations, in their order ---- */

void qg_ref_sgd_step(size_t n, float *w, const float *grad, float *buf, float lr,
                     float momentum, float wd, int nesterov, int first, float grad_scale)
{
    for (size_t i = 0; i < n; i++) {
        float g = grad[i] * grad_scale;
        if (wd != 0.0f)
            g = g + wd * w[i];
        if (momentum != 0.0f) {
            buf[i] = first ? g : momentum * buf[i] + g;
            g = nesterov ? g + momentum * buf[i] : buf[i];
        }
        w[i] = w[i] - lr * g;
    }
}

void qg_ref_adam_step(size_t n, float *w, const float *grad, float *m, float *v, float lr,
                      float beta1, float beta2, float eps, float wd, int t, float grad_scale)
{
    double bc1 = 1.0 - pow((double)beta1, t), bc2 = 1.0 - pow((double)beta2, t);
    float step_size = (float)((double)lr / bc1), bc2_sqrt = (float)sqrt(bc2);
    for (size_t i = 0; i < n; i++) {
        float g = grad[i] * grad_scale;
        if (wd != 0.0f)
            g = g + wd * w[i];
        m[i] = beta1 * m[i] + (1.0f - beta1) * g;
        v[i] = beta2 * v[i] + (1.0f - beta2) * g * g;
        w[i] = w[i] - step_size * (m[i] / (sqrtf(v[i]) / bc2_sqrt + eps));
    }
}

float qg_ref_sumsq(size_t n, const float *x)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += (double)x[i] * x[i];
    return (float)s;
}

void qg_ref_bn_fold(int K, int per, const float *w, const float *b, const float *gamma,
                    const float *beta, const float *running_mean, const float *running_var,
                    float eps, float *wf, float *bf)
{
    for (int k = 0; k < K; k++) {
        double a = (gamma ? gamma[k] : 1.0) / sqrt((double)running_var[k] + eps);
        for (int i = 0; i < per; i++)
            wf[(size_t)k * per + i] = (float)(w[(size_t)k * per + i] * a);
        bf[k] = (float)((beta ? beta[k] : 0.0) + ((b ? b[k] : 0.0) - running_mean[k]) * a);
    }
}
