/* src/core/status.c: status names, CL error names, last-error buffers. */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <CL/cl.h>

#include "core/error.h"
#include "qgate/device.h"

static _Thread_local char tls_error[2048];

const char *qg_status_str(qg_status st)
{
    switch (st) {
    case QG_OK: return "QG_OK";
    case QG_ERR_NOMEM: return "QG_ERR_NOMEM";
    case QG_ERR_INVALID_ARG: return "QG_ERR_INVALID_ARG";
    case QG_ERR_SHAPE: return "QG_ERR_SHAPE";
    case QG_ERR_IO: return "QG_ERR_IO";
    case QG_ERR_FORMAT: return "QG_ERR_FORMAT";
    case QG_ERR_CL: return "QG_ERR_CL";
    case QG_ERR_BUILD: return "QG_ERR_BUILD";
    case QG_ERR_CLBLAST: return "QG_ERR_CLBLAST";
    case QG_ERR_UNSUPPORTED: return "QG_ERR_UNSUPPORTED";
    case QG_ERR_TUNE: return "QG_ERR_TUNE";
    case QG_ERR_INTERRUPTED: return "QG_ERR_INTERRUPTED";
    case QG_ERR_NO_DEVICE: return "QG_ERR_NO_DEVICE";
    case QG_ERR_NOT_FOUND: return "QG_ERR_NOT_FOUND";
    }
    return "QG_ERR_UNKNOWN";
}

const char *qg_cl_error_name(int e)
{
    switch (e) {
#define N(x) case x: return #x
    N(CL_SUCCESS); N(CL_DEVICE_NOT_FOUND); N(CL_DEVICE_NOT_AVAILABLE);
    N(CL_COMPILER_NOT_AVAILABLE); N(CL_MEM_OBJECT_ALLOCATION_FAILURE);
    N(CL_OUT_OF_RESOURCES); N(CL_OUT_OF_HOST_MEMORY);
    N(CL_PROFILING_INFO_NOT_AVAILABLE); N(CL_MEM_COPY_OVERLAP);
    N(CL_IMAGE_FORMAT_MISMATCH); N(CL_IMAGE_FORMAT_NOT_SUPPORTED);
    N(CL_BUILD_PROGRAM_FAILURE); N(CL_MAP_FAILURE);
    N(CL_MISALIGNED_SUB_BUFFER_OFFSET);
    N(CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST);
    N(CL_COMPILE_PROGRAM_FAILURE); N(CL_LINKER_NOT_AVAILABLE);
    N(CL_LINK_PROGRAM_FAILURE); N(CL_DEVICE_PARTITION_FAILED);
    N(CL_KERNEL_ARG_INFO_NOT_AVAILABLE);
    N(CL_INVALID_VALUE); N(CL_INVALID_DEVICE_TYPE); N(CL_INVALID_PLATFORM);
    N(CL_INVALID_DEVICE); N(CL_INVALID_CONTEXT);
    N(CL_INVALID_QUEUE_PROPERTIES); N(CL_INVALID_COMMAND_QUEUE);
    N(CL_INVALID_HOST_PTR); N(CL_INVALID_MEM_OBJECT);
    N(CL_INVALID_IMAGE_FORMAT_DESCRIPTOR); N(CL_INVALID_IMAGE_SIZE);
    N(CL_INVALID_SAMPLER); N(CL_INVALID_BINARY);
    N(CL_INVALID_BUILD_OPTIONS); N(CL_INVALID_PROGRAM);
    N(CL_INVALID_PROGRAM_EXECUTABLE); N(CL_INVALID_KERNEL_NAME);
    N(CL_INVALID_KERNEL_DEFINITION); N(CL_INVALID_KERNEL);
    N(CL_INVALID_ARG_INDEX); N(CL_INVALID_ARG_VALUE);
    N(CL_INVALID_ARG_SIZE); N(CL_INVALID_KERNEL_ARGS);
    N(CL_INVALID_WORK_DIMENSION); N(CL_INVALID_WORK_GROUP_SIZE);
    N(CL_INVALID_WORK_ITEM_SIZE); N(CL_INVALID_GLOBAL_OFFSET);
    N(CL_INVALID_EVENT_WAIT_LIST); N(CL_INVALID_EVENT);
    N(CL_INVALID_OPERATION); N(CL_INVALID_GL_OBJECT);
    N(CL_INVALID_BUFFER_SIZE); N(CL_INVALID_MIP_LEVEL);
    N(CL_INVALID_GLOBAL_WORK_SIZE); N(CL_INVALID_PROPERTY);
    N(CL_INVALID_IMAGE_DESCRIPTOR); N(CL_INVALID_COMPILER_OPTIONS);
    N(CL_INVALID_LINKER_OPTIONS); N(CL_INVALID_DEVICE_PARTITION_COUNT);
#undef N
    case -1001: return "CL_PLATFORM_NOT_FOUND_KHR";
    }
    return "CL_UNKNOWN_ERROR";
}

const char *qg_last_error(void)
{
    return tls_error;
}

/* A context starts with its qg_err_head (see core/error.h). */
const char *qg_ctx_last_error(const qg_ctx *ctx)
{
    return ctx ? ((const qg_err_head *)(const void *)ctx)->err : tls_error;
}

static void store(qg_ctx *ctx, const char *msg)
{
    snprintf(tls_error, sizeof tls_error, "%s", msg);
    if (ctx) {
        qg_err_head *h = (qg_err_head *)(void *)ctx;
        snprintf(h->err, sizeof h->err, "%s", msg);
    }
}

qg_status qg__error(qg_ctx *ctx, qg_status st, const char *fmt, ...)
{
    char buf[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    store(ctx, buf);
    return st;
}

void qg__error_append(qg_ctx *ctx, const char *fmt, ...)
{
    char add[1024], buf[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(add, sizeof add, fmt, ap);
    va_end(ap);
    snprintf(buf, sizeof buf, "%s; %s", tls_error, add);
    store(ctx, buf);
}

qg_status qg__cl_error(qg_ctx *ctx, int cl_err, const char *call,
                       const char *file, int line)
{
    const qg_err_head *h = (const qg_err_head *)(void *)ctx;
    const char *dev = h && h->device ? h->device : "?";
    return qg__error(ctx, QG_ERR_CL, "%s failed with %s (%d) on device '%s' at %s:%d",
                     call, qg_cl_error_name(cl_err), cl_err, dev, file, line);
}

_Noreturn void qg__assert_fail(const char *cond, const char *file, int line)
{
    fprintf(stderr, "qgate: internal error: assertion '%s' failed at %s:%d\n",
            cond, file, line);
    abort();
}
