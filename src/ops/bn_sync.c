/* src/ops/bn_sync.c: synchronised batch norm across the processes of a
 * data-parallel run (bn_sync.h). The partial sums are small (a few floats
 * per channel and part), so they go through the host: read, reduce in
 * double, one allreduce of 2C+1 (forward) or 3C+1 (backward) doubles,
 * write back. The global moments are formed without the device's shift
 * (sum x = S + n k, sum x^2 = Q + 2 k S + n k^2, in double), so the
 * processes need not agree on a shift first. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "dist/dist.h"
#include "ops/bn_sync.h"
#include "tensor/tensor_impl.h"

static qg_status xfer(qg_ctx *ctx, cl_mem m, float *h, size_t n, int write)
{
    qg_status st = QG_OK;
    if (write)
        QG_CL_TRY(ctx, clEnqueueWriteBuffer(ctx->queue, m, CL_TRUE, 0, n * sizeof *h, h, 0,
                                            NULL, NULL));
    else
        QG_CL_TRY(ctx, clEnqueueReadBuffer(ctx->queue, m, CL_TRUE, 0, n * sizeof *h, h, 0,
                                           NULL, NULL));
fail:
    return st;
}

qg_status qg__bn_sync_stats(qg_ctx *ctx, cl_mem part, int parts, int C, int N, int HW)
{
    qg_status st = QG_OK;
    size_t nf = ((size_t)parts * 2 + 1) * (size_t)C;
    float *h = malloc(nf * sizeof *h);
    double *d = malloc((2 * (size_t)C + 1) * sizeof *d);
    if (!h || !d) {
        st = qg__error(ctx, QG_ERR_NOMEM, "out of memory for --sync-bn statistics");
        goto fail;
    }
    QG_TRY(xfer(ctx, part, h, nf, 0));
    double n = (double)N * HW;
    const float *shift = h + (size_t)parts * C * 2;
    for (int c = 0; c < C; c++) {
        double s = 0, q = 0, k = shift[c];
        for (int p = 0; p < parts; p++) {
            s += h[((size_t)p * C + c) * 2];
            q += h[((size_t)p * C + c) * 2 + 1];
        }
        d[c] = s + n * k;
        d[C + c] = q + 2 * k * s + n * k * k;
    }
    d[2 * C] = n;
    QG_TRY(qg__dist_sum_d(d, 2 * (size_t)C + 1));
    double total = d[2 * C];
    memset(h, 0, nf * sizeof *h);
    for (int c = 0; c < C; c++) {
        double mean = d[c] / total, m2 = d[C + c] - total * mean * mean;
        h[(size_t)c * 2 + 1] = (float)(m2 > 0 ? m2 * n / total : 0);
        h[(size_t)parts * C * 2 + c] = (float)mean;
    }
    QG_TRY(xfer(ctx, part, h, nf, 1));
fail:
    free(h);
    free(d);
    return st;
}

qg_status qg__bn_sync_bwd(qg_ctx *ctx, cl_mem part, int parts, int C, int N, int HW)
{
    qg_status st = QG_OK;
    size_t nf = (size_t)parts * 3 * (size_t)C;
    float *h = malloc(nf * sizeof *h);
    double *d = malloc((3 * (size_t)C + 1) * sizeof *d);
    if (!h || !d) {
        st = qg__error(ctx, QG_ERR_NOMEM, "out of memory for --sync-bn gradient sums");
        goto fail;
    }
    QG_TRY(xfer(ctx, part, h, nf, 0));
    memset(d, 0, (3 * (size_t)C + 1) * sizeof *d);
    for (int p = 0; p < parts; p++)
        for (size_t i = 0; i < 3 * (size_t)C; i++)
            d[i] += h[(size_t)p * 3 * C + i];
    double n = (double)N * HW;
    d[3 * C] = n;
    QG_TRY(qg__dist_sum_d(d, 3 * (size_t)C + 1));
    memset(h, 0, nf * sizeof *h);
    for (size_t i = 0; i < 3 * (size_t)C; i++)
        h[i] = (float)(d[i] * n / d[3 * C]);
    QG_TRY(xfer(ctx, part, h, nf, 1));
fail:
    free(h);
    free(d);
    return st;
}

qg_status qg__sync_max(qg_ctx *ctx, qg_tensor *s)
{
    if (!ctx->sync_bn || qg__dist_size() < 2)
        return QG_OK;
    size_t n = qg_tensor_numel(s);
    float *h = malloc((n ? n : 1) * sizeof *h);
    double *d = malloc((n ? n : 1) * sizeof *d);
    qg_status st = h && d ? QG_OK
                          : qg__error(ctx, QG_ERR_NOMEM, "out of memory for --sync-bn ranges");
    if (st == QG_OK)
        st = qg_tensor_read(s, h, n * sizeof *h);
    for (size_t i = 0; st == QG_OK && i < n; i++)
        d[i] = h[i];
    if (st == QG_OK)
        st = qg__dist_max_d(d, n);
    for (size_t i = 0; st == QG_OK && i < n; i++)
        h[i] = (float)d[i];
    if (st == QG_OK)
        st = qg_tensor_write(s, h, n * sizeof *h);
    free(h);
    free(d);
    return st;
}
