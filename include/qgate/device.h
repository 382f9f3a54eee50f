/* qgate/device.h: OpenCL device discovery and the qgate context.
 *
 * A qg_ctx owns one device, its OpenCL context and in-order queue, the
 * program cache and the last-error buffer. It is not thread-safe: use one
 * context per thread. qg_ctx_free(NULL) is a no-op.
 */
#ifndef QGATE_DEVICE_H
#define QGATE_DEVICE_H

#include <qgate/export.h>

#include <stddef.h>
#include <qgate/status.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct qg_ctx qg_ctx;

typedef enum qg_device_type {
    QG_DEVICE_TYPE_OTHER = 0,
    QG_DEVICE_TYPE_CPU = 1,
    QG_DEVICE_TYPE_GPU = 2,
    QG_DEVICE_TYPE_ACCELERATOR = 3
} qg_device_type;

typedef struct qg_device_info {
    int index;                 /* position in qg_devices_list order */
    char platform[128];
    char name[128];
    char vendor[128];
    char driver[64];           /* CL_DRIVER_VERSION */
    char version[128];         /* CL_DEVICE_VERSION */
    qg_device_type type;
    unsigned compute_units;
    unsigned long long local_mem;   /* bytes */
    unsigned long long global_mem;  /* bytes */
    size_t max_work_group;
    int fp16;                  /* cl_khr_fp16 */
    char key[256];             /* stable key for caches: name + driver */
} qg_device_info;

/* Lists every device of every platform. On success *out is a malloc'd
 * array the caller frees with free(); *count may be 0. */
QG_API qg_status qg_devices_list(qg_device_info **out, size_t *count);

/* Writes a human-readable multi-line listing of the devices to `f`. */
QG_API qg_status qg_devices_print(void *file);

typedef struct qg_ctx_opts {
    /* Index ("1") or case-insensitive name substring ("pthread"); NULL
     * means $QGATE_DEVICE, then device 0. */
    const char *device;
    int profiling;             /* enable queue profiling (tuning, bench) */
    /* Kernel binary cache directory; NULL means $QGATE_CACHE_DIR, then
     * $XDG_CACHE_HOME/qgate/kernels, then ~/.cache/qgate/kernels. "" disables. */
    const char *cache_dir;
    /* Load .cl sources from here instead of the embedded copies; NULL
     * means $QGATE_KERNEL_DIR, else embedded. */
    const char *kernel_dir;
    int verbose;               /* log program builds and cache hits to stderr */
    /* User tuning database; NULL means $QGATE_TUNE_DB, then
     * $XDG_CACHE_HOME/qgate/tuning.json. */
    const char *tune_db;
} qg_ctx_opts;

/* Creates a context. On failure *out is NULL and qg_last_error() explains,
 * listing the available devices when the requested one does not exist. */
QG_API qg_status qg_ctx_new(const qg_ctx_opts *opts, qg_ctx **out);
QG_API void qg_ctx_free(qg_ctx *ctx);

/* Detail of the last failure in this context ("" if none). */
QG_API const char *qg_ctx_last_error(const qg_ctx *ctx);
QG_API const qg_device_info *qg_ctx_device(const qg_ctx *ctx);

/* Blocks until all queued work finished. */
QG_API qg_status qg_ctx_finish(qg_ctx *ctx);

/* Program-cache statistics since the context was created. */
typedef struct qg_build_stats {
    unsigned programs_built;    /* compiled from source */
    unsigned programs_loaded;   /* loaded from the disk cache */
    double build_seconds;       /* total wall time in program creation */
} qg_build_stats;
QG_API void qg_ctx_build_stats(const qg_ctx *ctx, qg_build_stats *out);

/* Builds every embedded program with default parameters and runs a
 * numerical self-check of the basic kernels against the C reference. */
QG_API qg_status qg_ctx_selfcheck(qg_ctx *ctx, void *report_file);

#ifdef __cplusplus
}
#endif
#endif
