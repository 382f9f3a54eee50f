/* qgate/tensor.h: device tensors.
 *
 * A tensor is a cl_mem plus an element offset, a dtype and an NCHW shape of
 * rank <= 4 (contiguous, row-major). Tensors made with qg_tensor_new own
 * their buffer; views borrow the parent's buffer and must not outlive it.
 */
#ifndef QGATE_TENSOR_H
#define QGATE_TENSOR_H

#include <qgate/export.h>

#include <stddef.h>
#include <stdint.h>
#include <qgate/status.h>
#include <qgate/device.h>

#ifdef __cplusplus
extern "C" {
#endif

#define QG_MAX_DIMS 5  /* 5: BSQ's bit planes [Cout, Cin, kh, kw, bits] */

typedef enum qg_dtype {
    QG_DTYPE_F32 = 0,
    QG_DTYPE_I32 = 1,
    QG_DTYPE_U8 = 2,
    QG_DTYPE_F16 = 3
} qg_dtype;

QG_API size_t qg_dtype_size(qg_dtype dt);
QG_API const char *qg_dtype_name(qg_dtype dt);

typedef struct qg_tensor qg_tensor;

/* New zero-initialised tensor owning a device buffer. `name` may be NULL. */
QG_API qg_status qg_tensor_new(qg_ctx *ctx, int ndim, const int64_t *shape,
                               qg_dtype dtype, const char *name, qg_tensor **out);
/* View of `numel(shape)` elements of `parent` starting at element `offset`. */
QG_API qg_status qg_tensor_view(qg_tensor *parent, size_t offset, int ndim,
                                const int64_t *shape, qg_tensor **out);
QG_API void qg_tensor_free(qg_tensor *t);

/* Blocking host transfers of exactly numel*dtype_size bytes. */
QG_API qg_status qg_tensor_write(qg_tensor *t, const void *host, size_t nbytes);
QG_API qg_status qg_tensor_read(const qg_tensor *t, void *host, size_t nbytes);
QG_API qg_status qg_tensor_zero(qg_tensor *t);

QG_API int qg_tensor_ndim(const qg_tensor *t);
QG_API int64_t qg_tensor_dim(const qg_tensor *t, int i);
QG_API size_t qg_tensor_numel(const qg_tensor *t);
QG_API qg_dtype qg_tensor_dtype(const qg_tensor *t);
QG_API const char *qg_tensor_name(const qg_tensor *t);

#ifdef __cplusplus
}
#endif
#endif
