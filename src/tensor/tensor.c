/* src/tensor/tensor.c: device tensors, views and blocking host transfers. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fault.h"
#include "core/error.h"
#include "cl/ctx.h"
#include "tensor/tensor_impl.h"

size_t qg_dtype_size(qg_dtype dt)
{
    switch (dt) {
    case QG_DTYPE_F32: return 4;
    case QG_DTYPE_I32: return 4;
    case QG_DTYPE_U8: return 1;
    case QG_DTYPE_F16: return 2;
    }
    return 0;
}

const char *qg_dtype_name(qg_dtype dt)
{
    switch (dt) {
    case QG_DTYPE_F32: return "F32";
    case QG_DTYPE_I32: return "I32";
    case QG_DTYPE_U8: return "U8";
    case QG_DTYPE_F16: return "F16";
    }
    return "?";
}

static qg_status check_shape(qg_ctx *ctx, int ndim, const int64_t *shape, const char *name)
{
    if (ndim < 0 || ndim > QG_MAX_DIMS)
        return qg__error(ctx, QG_ERR_SHAPE, "tensor '%s': rank %d is outside 0..%d",
                         name ? name : "", ndim, QG_MAX_DIMS);
    for (int i = 0; i < ndim; i++)
        if (shape[i] < 0)
            return qg__error(ctx, QG_ERR_SHAPE, "tensor '%s': dimension %d is negative (%lld)",
                             name ? name : "", i, (long long)shape[i]);
    return QG_OK;
}

qg_status qg__tensor_wrap(qg_ctx *ctx, cl_mem mem, size_t offset, int ndim,
                          const int64_t *shape, qg_dtype dtype, const char *name,
                          qg_tensor **out)
{
    *out = NULL;
    qg_status st = check_shape(ctx, ndim, shape, name);
    if (st != QG_OK)
        return st;
    qg_tensor *t = calloc(1, sizeof *t);
    if (!t)
        return qg__error(ctx, QG_ERR_NOMEM, "out of memory for tensor header");
    t->ctx = ctx;
    t->mem = mem;
    t->offset = offset;
    t->ndim = ndim;
    memcpy(t->shape, shape, (size_t)ndim * sizeof *shape);
    t->dtype = dtype;
    snprintf(t->name, sizeof t->name, "%s", name ? name : "");
    *out = t;
    return QG_OK;
}

qg_status qg_tensor_new(qg_ctx *ctx, int ndim, const int64_t *shape, qg_dtype dtype,
                        const char *name, qg_tensor **out)
{
    qg_status st = QG_OK;
    cl_mem mem = NULL;
    cl_int e;
    *out = NULL;
    QG_TRY(check_shape(ctx, ndim, shape, name));
    size_t bytes = qg__numel(ndim, shape) * qg_dtype_size(dtype);
    /* OpenCL forbids zero-sized buffers; an empty tensor still gets one
     * element of storage so it can be bound as an argument. */
    size_t alloc = bytes ? bytes : qg_dtype_size(dtype);
    if (qg__fault(QG_FAULT_ALLOC))
        e = CL_MEM_OBJECT_ALLOCATION_FAILURE;
    else
        mem = clCreateBuffer(ctx->context, CL_MEM_READ_WRITE, alloc, NULL, &e);
    if (e != CL_SUCCESS) {
        st = qg__error(ctx, QG_ERR_CL, "clCreateBuffer(%zu bytes) for tensor '%s' failed with "
                       "%s on device '%s'", alloc, name ? name : "", qg_cl_error_name(e),
                       ctx->info.name);
        goto fail;
    }
    QG_TRY(qg__tensor_wrap(ctx, mem, 0, ndim, shape, dtype, name, out));
    (*out)->owns = 1;
    qg__ctx_mem(ctx, alloc, 1);
    mem = NULL;
    st = qg_tensor_zero(*out);
    if (st != QG_OK) {
        qg_tensor_free(*out);
        *out = NULL;
    }
fail:
    if (mem)
        clReleaseMemObject(mem);
    return st;
}

qg_status qg_tensor_view(qg_tensor *parent, size_t offset, int ndim, const int64_t *shape,
                         qg_tensor **out)
{
    *out = NULL;
    size_t n = qg__numel(ndim, shape);
    size_t pn = qg__numel(parent->ndim, parent->shape);
    if (offset + n > pn)
        return qg__error(parent->ctx, QG_ERR_SHAPE,
                         "view of %zu elements at offset %zu exceeds tensor '%s' (%zu elements)",
                         n, offset, parent->name, pn);
    return qg__tensor_wrap(parent->ctx, parent->mem, parent->offset + offset, ndim, shape,
                           parent->dtype, parent->name, out);
}

void qg_tensor_free(qg_tensor *t)
{
    if (!t)
        return;
    if (t->owns && t->mem) {
        size_t bytes = qg__numel(t->ndim, t->shape) * qg_dtype_size(t->dtype);
        clReleaseMemObject(t->mem);
        qg__ctx_mem(t->ctx, bytes ? bytes : qg_dtype_size(t->dtype), -1);
    }
    free(t);
}

static qg_status check_bytes(const qg_tensor *t, size_t nbytes, const char *what)
{
    size_t want = qg__numel(t->ndim, t->shape) * qg_dtype_size(t->dtype);
    if (nbytes != want)
        return qg__error(t->ctx, QG_ERR_SHAPE, "%s of tensor '%s': %zu bytes given, tensor "
                         "holds %zu", what, t->name, nbytes, want);
    return QG_OK;
}

qg_status qg_tensor_write(qg_tensor *t, const void *host, size_t nbytes)
{
    qg_status st = check_bytes(t, nbytes, "write");
    if (st != QG_OK || !nbytes)
        return st;
    size_t es = qg_dtype_size(t->dtype);
    QG_CL_TRY(t->ctx, clEnqueueWriteBuffer(t->ctx->queue, t->mem, CL_TRUE, t->offset * es,
                                           nbytes, host, 0, NULL, NULL));
fail:
    return st;
}

qg_status qg_tensor_read(const qg_tensor *t, void *host, size_t nbytes)
{
    qg_status st = check_bytes(t, nbytes, "read");
    if (st != QG_OK || !nbytes)
        return st;
    size_t es = qg_dtype_size(t->dtype);
    QG_CL_TRY(t->ctx, clEnqueueReadBuffer(t->ctx->queue, t->mem, CL_TRUE, t->offset * es,
                                          nbytes, host, 0, NULL, NULL));
fail:
    return st;
}

qg_status qg_tensor_zero(qg_tensor *t)
{
    qg_status st = QG_OK;
    size_t es = qg_dtype_size(t->dtype);
    size_t n = qg__numel(t->ndim, t->shape) * es;
    if (!n)
        return QG_OK;
    unsigned char zero = 0;
    QG_CL_TRY(t->ctx, clEnqueueFillBuffer(t->ctx->queue, t->mem, &zero, 1, t->offset * es, n,
                                          0, NULL, NULL));
fail:
    return st;
}

int qg_tensor_ndim(const qg_tensor *t) { return t->ndim; }
int64_t qg_tensor_dim(const qg_tensor *t, int i) { return i < t->ndim ? t->shape[i] : 1; }
size_t qg_tensor_numel(const qg_tensor *t) { return qg__numel(t->ndim, t->shape); }
qg_dtype qg_tensor_dtype(const qg_tensor *t) { return t->dtype; }
const char *qg_tensor_name(const qg_tensor *t) { return t->name; }

qg_status qg__tensor_need(qg_ctx *ctx, const char *op, const char *what, const qg_tensor *t,
                          size_t numel, qg_dtype dt)
{
    if (!t)
        return qg__error(ctx, QG_ERR_INVALID_ARG, "%s: %s tensor is NULL", op, what);
    if (t->dtype != dt)
        return qg__error(ctx, QG_ERR_INVALID_ARG, "%s: %s tensor '%s' must be %s, not %s", op,
                         what, t->name, qg_dtype_name(dt), qg_dtype_name(t->dtype));
    if (qg_tensor_numel(t) != numel)
        return qg__error(ctx, QG_ERR_SHAPE, "%s: %s tensor '%s' has %zu elements, expected %zu",
                         op, what, t->name, qg_tensor_numel(t), numel);
    return QG_OK;
}

void qg__karg_tensor(qg_kargs *a, const qg_tensor *t)
{
    qg__karg_mem(a, t->mem);
    qg__karg_int(a, (int)t->offset);
}
