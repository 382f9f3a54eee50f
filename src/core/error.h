/* src/core/error.h: recording failures (internal).
 *
 * qg__error formats a message into the context's last-error buffer and the
 * thread-local one, and returns the status so callers can write
 * `return qg__error(ctx, QG_ERR_IO, "...")`. QG_CL_TRY records the failing
 * call's text, its CL error name and file:line, then jumps to `fail`.
 */
#ifndef QG_CORE_ERROR_H
#define QG_CORE_ERROR_H

#include "qgate/status.h"

struct qg_ctx;

/* The start of every context: struct qg_ctx (cl/ctx.h) begins with this
 * member, so this layer records a context's last error (and names its
 * device) without knowing the rest of the context. */
typedef struct qg_err_head {
    char err[2048];
    const char *device;         /* quoted by qg__cl_error; NULL before one is chosen */
} qg_err_head;

qg_status qg__error(struct qg_ctx *ctx, qg_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
qg_status qg__cl_error(struct qg_ctx *ctx, int cl_err, const char *call,
                       const char *file, int line);
/* Appends "; <detail>" to the last error (adds context while unwinding). */
void qg__error_append(struct qg_ctx *ctx, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define QG_CL_TRY(ctx, call)                                              \
    do {                                                                  \
        cl_int qg_e_ = (call);                                            \
        if (qg_e_ != CL_SUCCESS) {                                        \
            st = qg__cl_error((ctx), qg_e_, #call, __FILE__, __LINE__);   \
            goto fail;                                                    \
        }                                                                 \
    } while (0)

#define QG_TRY(expr)                                                      \
    do {                                                                  \
        st = (expr);                                                      \
        if (st != QG_OK)                                                  \
            goto fail;                                                    \
    } while (0)

/* Internal invariant; a failure is a qgate bug, never bad user input. */
#define QG_ASSERT(cond)                                                   \
    do {                                                                  \
        if (!(cond))                                                      \
            qg__assert_fail(#cond, __FILE__, __LINE__);                   \
    } while (0)
_Noreturn void qg__assert_fail(const char *cond, const char *file, int line);

#endif
