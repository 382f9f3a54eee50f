/* qgate/status.h: status codes and last-error text.
 *
 * Every public function returns a qg_status. QG_OK is zero; each failure has
 * an explicit negative value so the numbers never shift. The human-readable
 * detail (failing OpenCL call and its CL error name, the kernel, file, flag or
 * device at fault) lives in the context (qg_ctx_last_error) and, for
 * functions that have no context, in a thread-local buffer (qg_last_error).
 */
#ifndef QGATE_STATUS_H
#define QGATE_STATUS_H

#include <qgate/export.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum qg_status {
    QG_OK = 0,
    QG_ERR_NOMEM = -1,
    QG_ERR_INVALID_ARG = -2,
    QG_ERR_SHAPE = -3,
    QG_ERR_IO = -4,
    QG_ERR_FORMAT = -5,
    QG_ERR_CL = -6,
    QG_ERR_BUILD = -7,
    QG_ERR_CLBLAST = -8,
    QG_ERR_UNSUPPORTED = -9,
    QG_ERR_TUNE = -10,
    QG_ERR_INTERRUPTED = -11,
    QG_ERR_NO_DEVICE = -12,
    QG_ERR_NOT_FOUND = -13
} qg_status;

/* Short name of a status ("QG_ERR_CL"); never NULL. */
QG_API const char *qg_status_str(qg_status st);

/* Name of an OpenCL error code ("CL_INVALID_WORK_GROUP_SIZE"); never NULL. */
QG_API const char *qg_cl_error_name(int cl_error);

/* Detail of the last failure on this thread (any qgate call). Valid until
 * the next failing call on the same thread. Empty string if none. */
QG_API const char *qg_last_error(void);

#ifdef __cplusplus
}
#endif
#endif
