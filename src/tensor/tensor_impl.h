/* src/tensor/tensor_impl.h: tensor layout, visible to the library only. */
#ifndef QG_TENSOR_IMPL_H
#define QG_TENSOR_IMPL_H

#include <CL/cl.h>
#include "qgate/tensor.h"

struct qg_tensor {
    qg_ctx *ctx;
    cl_mem mem;
    size_t offset;              /* in elements */
    int ndim;
    int64_t shape[QG_MAX_DIMS];
    qg_dtype dtype;
    int owns;                   /* releases `mem` on free */
    char name[96];
};

static inline size_t qg__numel(int ndim, const int64_t *shape)
{
    size_t n = 1;
    for (int i = 0; i < ndim; i++)
        n *= (size_t)shape[i];
    return n;
}

/* Makes a tensor header over an existing buffer (not owned). */
qg_status qg__tensor_wrap(qg_ctx *ctx, cl_mem mem, size_t offset, int ndim,
                          const int64_t *shape, qg_dtype dtype,
                          const char *name, qg_tensor **out);

/* Argument check of the launchers: t is not NULL, has dtype dt and numel
 * elements; otherwise records "<op>: <what> tensor ..." and fails. */
qg_status qg__tensor_need(qg_ctx *ctx, const char *op, const char *what, const qg_tensor *t,
                          size_t numel, qg_dtype dt);

/* Binds a tensor as two kernel arguments (cl/ctx.h's qg_kargs): its
 * buffer and its element offset. */
struct qg_kargs;
void qg__karg_tensor(struct qg_kargs *a, const qg_tensor *t);

#endif
