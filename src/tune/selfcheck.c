/* src/tune/selfcheck.c: `qgate selfcheck`: builds every registered cl/
 * program with its current parameters, then runs a few kernels and one
 * CLBlast GEMM against the C references. A quick "does this device work"
 * check; it lives above ops, gemm and ref, whose work it checks. */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "cl/ctx.h"
#include "gemm/gemm.h"
#include "ops/eltwise.h"
#include "ops/reduce.h"
#include "ref/ref_eltwise.h"
#include "tensor/tensor_impl.h"

static float max_rel_err(const float *a, const float *r, size_t n)
{
    float m = 0;
    for (size_t i = 0; i < n; i++) {
        float e = fabsf(a[i] - r[i]) / (1e-6f + fabsf(r[i]));
        if (!(e <= m))
            m = isnan(e) ? INFINITY : e;
    }
    return m;
}

qg_status qg_ctx_selfcheck(qg_ctx *ctx, void *report_file)
{
    FILE *f = report_file ? report_file : stdout;
    qg_status st = QG_OK;
    enum { M = 37, K = 29, NN = 23, N = M * K };
    float *ha = NULL, *hb = NULL, *hy = NULL, *ref = NULL;
    qg_tensor *ta = NULL, *tb = NULL, *ty = NULL, *ts = NULL;

    for (size_t i = 0; i < qg__program_count(); i++) {
        const qg_program_desc *d = qg__program_at(i);
        if (d->external)
            continue; /* CLBlast's: checked by the GEMM below */
        QG_TRY(qg__program_build_current(ctx, d->name));
        fprintf(f, "  build %-12s ok\n", d->name);
    }

    ha = malloc(N * sizeof *ha);
    hb = malloc(N * sizeof *hb);
    hy = malloc(N * sizeof *hy);
    ref = malloc(N * sizeof *ref);
    if (!ha || !hb || !hy || !ref) {
        st = qg__error(ctx, QG_ERR_NOMEM, "out of memory");
        goto fail;
    }
    unsigned s = 42;
    for (size_t i = 0; i < N; i++) {
        s = s * 1664525u + 1013904223u;
        ha[i] = (float)((s >> 8) & 0xffff) / 32768.0f - 1.0f;
        s = s * 1664525u + 1013904223u;
        hb[i] = (float)((s >> 8) & 0xffff) / 32768.0f - 1.0f;
    }
    int64_t shape[1] = {N}, one[1] = {1};
    QG_TRY(qg_tensor_new(ctx, 1, shape, QG_DTYPE_F32, "a", &ta));
    QG_TRY(qg_tensor_new(ctx, 1, shape, QG_DTYPE_F32, "b", &tb));
    QG_TRY(qg_tensor_new(ctx, 1, shape, QG_DTYPE_F32, "y", &ty));
    QG_TRY(qg_tensor_new(ctx, 1, one, QG_DTYPE_F32, "s", &ts));
    QG_TRY(qg_tensor_write(ta, ha, N * sizeof *ha));
    QG_TRY(qg_tensor_write(tb, hb, N * sizeof *hb));

    QG_TRY(qg__eltwise_add(ctx, ta, tb, ty));
    QG_TRY(qg_tensor_read(ty, hy, N * sizeof *hy));
    qg_ref_eltwise_add(N, ha, hb, ref);
    float e_add = max_rel_err(hy, ref, N);
    fprintf(f, "  eltwise add   max rel err %.2e %s\n", e_add, e_add <= 1e-6f ? "ok" : "FAIL");

    QG_TRY(qg__relu_fwd(ctx, ta, ty));
    QG_TRY(qg_tensor_read(ty, hy, N * sizeof *hy));
    qg_ref_relu_fwd(N, ha, ref);
    float e_relu = max_rel_err(hy, ref, N);
    fprintf(f, "  relu          max rel err %.2e %s\n", e_relu, e_relu == 0 ? "ok" : "FAIL");

    float dsum;
    QG_TRY(qg__reduce_sum(ctx, ta, ts));
    QG_TRY(qg_tensor_read(ts, &dsum, sizeof dsum));
    float rsum = qg_ref_reduce_sum(N, ha);
    float e_sum = fabsf(dsum - rsum) / (1e-3f + fabsf(rsum));
    fprintf(f, "  reduce sum    rel err     %.2e %s\n", e_sum, e_sum <= 1e-4f ? "ok" : "FAIL");

    /* A[M,K] * B[K,NN] with B taken from the start of b. */
    qg_gemm_operand A = {ta->mem, 0, K}, B = {tb->mem, 0, NN}, C = {ty->mem, 0, NN};
    QG_TRY(qg__gemm(ctx, 0, 0, M, NN, K, 1.0f, A, B, 0.0f, C));
    QG_TRY(qg_tensor_read(ty, hy, N * sizeof *hy));
    float e_gemm = 0;
    for (int i = 0; i < M; i++)
        for (int j = 0; j < NN; j++) {
            double acc = 0;
            for (int k = 0; k < K; k++)
                acc += (double)ha[i * K + k] * hb[k * NN + j];
            float e = fabsf(hy[i * NN + j] - (float)acc) / (1e-3f + fabsf((float)acc));
            if (!(e <= e_gemm))
                e_gemm = isnan(e) ? INFINITY : e;
        }
    fprintf(f, "  clblast sgemm max rel err %.2e %s\n", e_gemm, e_gemm <= 1e-4f ? "ok" : "FAIL");

    if (!(e_add <= 1e-6f && e_relu == 0 && e_sum <= 1e-4f && e_gemm <= 1e-4f))
        st = qg__error(ctx, QG_ERR_CL, "self-check on device '%s' found wrong results",
                       ctx->info.name);
fail:
    qg_tensor_free(ta);
    qg_tensor_free(tb);
    qg_tensor_free(ty);
    qg_tensor_free(ts);
    free(ha);
    free(hb);
    free(hy);
    free(ref);
    return st;
}
