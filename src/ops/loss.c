/* src/ops/loss.c: launcher for cl/loss.cl (softmax cross-entropy: batch
 * loss sum, correct count, logits gradient). C twin: src/ref/ref_layers.c;
 * tests: tests/test_loss.c. */
#include "config.h"

#include <limits.h>

#include "core/error.h"
#include "cl/ctx.h"
#include "ops/layers.h"
#include "tensor/tensor_impl.h"

qg_status qg__softmax_ce(qg_ctx *ctx, const qg_tensor *logits, const qg_tensor *labels,
                         float scale, qg_tensor *loss_sum, qg_tensor *correct,
                         qg_tensor *dlogits)
{
    const char *op = "softmax_ce";
    size_t v;
    qg_kargs a;
    if (!logits || !labels || !loss_sum || !correct)
        return qg__error(ctx, QG_ERR_INVALID_ARG, "%s: logits, labels, loss_sum and correct "
                         "are required", op);
    if (logits->dtype != QG_DTYPE_F32 || logits->ndim != 2 || logits->shape[1] < 1 ||
        qg_tensor_numel(logits) > INT_MAX)
        return qg__error(ctx, QG_ERR_SHAPE, "%s: logits '%s' must be F32 [N, classes] with "
                         "classes >= 1", op, logits->name);
    int N = (int)logits->shape[0], classes = (int)logits->shape[1];
    if (labels->dtype != QG_DTYPE_I32 || qg_tensor_numel(labels) != (size_t)N)
        return qg__error(ctx, QG_ERR_SHAPE, "%s: labels '%s' must be I32 with %d elements", op,
                         labels->name, N);
    if (loss_sum->dtype != QG_DTYPE_F32 || qg_tensor_numel(loss_sum) < 1 ||
        correct->dtype != QG_DTYPE_I32 || qg_tensor_numel(correct) < 1)
        return qg__error(ctx, QG_ERR_SHAPE, "%s: loss_sum must be F32 and correct I32, each "
                         "with at least one element", op);
    if (dlogits && (dlogits->dtype != QG_DTYPE_F32 ||
                    qg_tensor_numel(dlogits) != qg_tensor_numel(logits)))
        return qg__error(ctx, QG_ERR_SHAPE, "%s: dlogits '%s' must be F32 with %zu elements", op,
                         dlogits->name, qg_tensor_numel(logits));
    qg_status st = qg__kargs_get(ctx, QG_K_LOSS_SOFTMAX_CE, &a, &v);
    if (st != QG_OK)
        return st;
    qg__karg_tensor(&a, logits);
    qg__karg_tensor(&a, labels);
    qg__karg_int(&a, N);
    qg__karg_int(&a, classes);
    qg__karg_float(&a, scale);
    qg__karg_tensor(&a, loss_sum);
    qg__karg_tensor(&a, correct);
    qg__karg_tensor(&a, dlogits ? dlogits : loss_sum);
    qg__karg_int(&a, dlogits != NULL);
    /* One group even for N == 0, so the sums are still written (as 0). */
    size_t g = v, l = v;
    return qg__kargs_launch(&a, 1, &g, &l);
}
