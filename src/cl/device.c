/* src/cl/device.c: device discovery, selection and context lifetime. */
#include "config.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fault.h"
#include "core/error.h"
#include "cl/ctx.h"
#include "cl/tunedb.h"

/* core/error.h records a context's errors through its first member. */
_Static_assert(offsetof(struct qg_ctx, head) == 0, "qg_ctx must start with its qg_err_head");

typedef struct found_device {
    cl_platform_id platform;
    cl_device_id device;
} found_device;

static void trim(char *s)
{
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1]))
        s[--n] = 0;
}

static void fill_info(cl_platform_id p, cl_device_id d, int index,
                      qg_device_info *info)
{
    memset(info, 0, sizeof *info);
    info->index = index;
    clGetPlatformInfo(p, CL_PLATFORM_NAME, sizeof info->platform - 1, info->platform, NULL);
    clGetDeviceInfo(d, CL_DEVICE_NAME, sizeof info->name - 1, info->name, NULL);
    clGetDeviceInfo(d, CL_DEVICE_VENDOR, sizeof info->vendor - 1, info->vendor, NULL);
    clGetDeviceInfo(d, CL_DRIVER_VERSION, sizeof info->driver - 1, info->driver, NULL);
    clGetDeviceInfo(d, CL_DEVICE_VERSION, sizeof info->version - 1, info->version, NULL);
    trim(info->platform);
    trim(info->name);
    trim(info->vendor);
    trim(info->driver);
    trim(info->version);
    cl_device_type t = 0;
    clGetDeviceInfo(d, CL_DEVICE_TYPE, sizeof t, &t, NULL);
    info->type = (t & CL_DEVICE_TYPE_GPU) ? QG_DEVICE_TYPE_GPU
               : (t & CL_DEVICE_TYPE_CPU) ? QG_DEVICE_TYPE_CPU
               : (t & CL_DEVICE_TYPE_ACCELERATOR) ? QG_DEVICE_TYPE_ACCELERATOR
               : QG_DEVICE_TYPE_OTHER;
    cl_uint cu = 0;
    clGetDeviceInfo(d, CL_DEVICE_MAX_COMPUTE_UNITS, sizeof cu, &cu, NULL);
    info->compute_units = cu;
    cl_ulong lm = 0, gm = 0;
    clGetDeviceInfo(d, CL_DEVICE_LOCAL_MEM_SIZE, sizeof lm, &lm, NULL);
    clGetDeviceInfo(d, CL_DEVICE_GLOBAL_MEM_SIZE, sizeof gm, &gm, NULL);
    info->local_mem = lm;
    info->global_mem = gm;
    size_t wg = 0;
    clGetDeviceInfo(d, CL_DEVICE_MAX_WORK_GROUP_SIZE, sizeof wg, &wg, NULL);
    info->max_work_group = wg;
    size_t extlen = 0;
    if (clGetDeviceInfo(d, CL_DEVICE_EXTENSIONS, 0, NULL, &extlen) == CL_SUCCESS && extlen) {
        char *ext = malloc(extlen + 1);
        if (ext && clGetDeviceInfo(d, CL_DEVICE_EXTENSIONS, extlen, ext, NULL) == CL_SUCCESS) {
            ext[extlen] = 0;
            info->fp16 = strstr(ext, "cl_khr_fp16") != NULL;
        }
        free(ext);
    }
    /* The key names what determines compiled code and tuned parameters:
     * the device and the driver that compiles for it. Spaces become '_' so
     * the key can be part of a file name. */
    snprintf(info->key, sizeof info->key, "%s|%s", info->name, info->driver);
    for (char *c = info->key; *c; c++)
        if (!isalnum((unsigned char)*c) && *c != '.' && *c != '-' && *c != '|')
            *c = '_';
}

static qg_status enumerate(found_device **out, size_t *count)
{
    cl_uint np = 0;
    *out = NULL;
    *count = 0;
    cl_int e = clGetPlatformIDs(0, NULL, &np);
    if (e == -1001 /* CL_PLATFORM_NOT_FOUND_KHR */ || (e == CL_SUCCESS && np == 0))
        return qg__error(NULL, QG_ERR_NO_DEVICE,
                         "no OpenCL platform found (clGetPlatformIDs: %s); install a driver, "
                         "e.g. apt-get install pocl-opencl-icd", qg_cl_error_name(e));
    if (e != CL_SUCCESS)
        return qg__cl_error(NULL, e, "clGetPlatformIDs", __FILE__, __LINE__);
    cl_platform_id *plats = calloc(np, sizeof *plats);
    if (!plats)
        return qg__error(NULL, QG_ERR_NOMEM, "out of memory listing platforms");
    clGetPlatformIDs(np, plats, NULL);
    found_device *list = NULL;
    size_t n = 0;
    for (cl_uint i = 0; i < np; i++) {
        cl_uint nd = 0;
        if (clGetDeviceIDs(plats[i], CL_DEVICE_TYPE_ALL, 0, NULL, &nd) != CL_SUCCESS || !nd)
            continue;
        cl_device_id *devs = calloc(nd, sizeof *devs);
        found_device *grown = realloc(list, (n + nd) * sizeof *list);
        if (!devs || !grown) {
            free(devs);
            free(grown ? grown : list);
            free(plats);
            return qg__error(NULL, QG_ERR_NOMEM, "out of memory listing devices");
        }
        list = grown;
        clGetDeviceIDs(plats[i], CL_DEVICE_TYPE_ALL, nd, devs, NULL);
        for (cl_uint j = 0; j < nd; j++) {
            list[n].platform = plats[i];
            list[n].device = devs[j];
            n++;
        }
        free(devs);
    }
    free(plats);
    if (!n) {
        free(list);
        return qg__error(NULL, QG_ERR_NO_DEVICE,
                         "OpenCL platforms exist but expose no device; "
                         "check the ICD files in /etc/OpenCL/vendors");
    }
    *out = list;
    *count = n;
    return QG_OK;
}

qg_status qg_devices_list(qg_device_info **out, size_t *count)
{
    found_device *devs;
    size_t n;
    *out = NULL;
    *count = 0;
    qg_status st = enumerate(&devs, &n);
    if (st != QG_OK)
        return st;
    qg_device_info *infos = calloc(n, sizeof *infos);
    if (!infos) {
        free(devs);
        return qg__error(NULL, QG_ERR_NOMEM, "out of memory listing devices");
    }
    for (size_t i = 0; i < n; i++)
        fill_info(devs[i].platform, devs[i].device, (int)i, &infos[i]);
    free(devs);
    *out = infos;
    *count = n;
    return QG_OK;
}

static const char *type_name(qg_device_type t)
{
    switch (t) {
    case QG_DEVICE_TYPE_CPU: return "CPU";
    case QG_DEVICE_TYPE_GPU: return "GPU";
    case QG_DEVICE_TYPE_ACCELERATOR: return "accelerator";
    default: return "other";
    }
}

static void print_list(FILE *f, const qg_device_info *infos, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const qg_device_info *d = &infos[i];
        fprintf(f, "[%d] %s (%s)\n", d->index, d->name, d->platform);
        fprintf(f, "    type %s, vendor %s, driver %s, %s\n", type_name(d->type),
                d->vendor, d->driver, d->version);
        fprintf(f, "    compute units %u, local memory %llu KiB, global memory %llu MiB, "
                "max work-group %zu, fp16 %s\n", d->compute_units, d->local_mem / 1024,
                d->global_mem >> 20, d->max_work_group, d->fp16 ? "yes" : "no");
        fprintf(f, "    key %s\n", d->key);
    }
}

qg_status qg_devices_print(void *file)
{
    qg_device_info *infos;
    size_t n;
    qg_status st = qg_devices_list(&infos, &n);
    if (st != QG_OK)
        return st;
    print_list(file ? file : stdout, infos, n);
    free(infos);
    return QG_OK;
}

static int ci_contains(const char *hay, const char *needle)
{
    size_t hn = strlen(hay), nn = strlen(needle);
    for (size_t i = 0; i + nn <= hn; i++) {
        size_t j = 0;
        while (j < nn && tolower((unsigned char)hay[i + j]) == tolower((unsigned char)needle[j]))
            j++;
        if (j == nn)
            return 1;
    }
    return 0;
}

/* Resolves `want` (index or name substring) to a position in the list; on
 * failure the error message carries the whole device list. */
static qg_status select_device(const char *want, const found_device *devs, size_t n,
                               size_t *pick)
{
    qg_device_info *infos = calloc(n, sizeof *infos);
    if (!infos)
        return qg__error(NULL, QG_ERR_NOMEM, "out of memory selecting a device");
    for (size_t i = 0; i < n; i++)
        fill_info(devs[i].platform, devs[i].device, (int)i, &infos[i]);
    qg_status st = QG_OK;
    char *end = NULL;
    long idx = strtol(want, &end, 10);
    if (*want && end && *end == 0) {
        if (idx >= 0 && (size_t)idx < n)
            *pick = (size_t)idx;
        else
            st = QG_ERR_NO_DEVICE;
    } else {
        st = QG_ERR_NO_DEVICE;
        for (size_t i = 0; i < n; i++) {
            if (ci_contains(infos[i].name, want) || ci_contains(infos[i].platform, want) ||
                ci_contains(infos[i].vendor, want)) {
                *pick = i;
                st = QG_OK;
                break;
            }
        }
    }
    if (st != QG_OK) {
        char list[1500] = "";
        size_t off = 0;
        for (size_t i = 0; i < n && off < sizeof list - 1; i++)
            off += (size_t)snprintf(list + off, sizeof list - off, "\n  [%d] %s (%s)",
                                    infos[i].index, infos[i].name, infos[i].platform);
        qg__error(NULL, QG_ERR_NO_DEVICE,
                  "no OpenCL device matches '%s' (%zu device%s available; use an index "
                  "or a name substring):%s", want, n, n == 1 ? "" : "s", list);
    }
    free(infos);
    return st;
}

static void resolve_dir(char *dst, size_t cap, const char *opt, const char *env_name,
                        const char *xdg_sub)
{
    const char *env = getenv(env_name);
    dst[0] = 0;
    if (opt) {
        snprintf(dst, cap, "%s", opt);
    } else if (env) {
        snprintf(dst, cap, "%s", env);
    } else if (xdg_sub) {
        const char *xdg = getenv("XDG_CACHE_HOME");
        const char *home = getenv("HOME");
        if (xdg && *xdg)
            snprintf(dst, cap, "%s/%s", xdg, xdg_sub);
        else if (home && *home)
            snprintf(dst, cap, "%s/.cache/%s", home, xdg_sub);
    }
}

qg_status qg_ctx_new(const qg_ctx_opts *opts, qg_ctx **out)
{
    static const qg_ctx_opts defaults = {0};
    qg_status st = QG_OK;
    found_device *devs = NULL;
    size_t n = 0, pick = 0;
    qg_ctx *ctx = NULL;
    cl_int e;

    *out = NULL;
    if (!opts)
        opts = &defaults;
    QG_TRY(enumerate(&devs, &n));
    const char *want = opts->device ? opts->device : getenv("QGATE_DEVICE");
    if (want && *want)
        QG_TRY(select_device(want, devs, n, &pick));

    ctx = calloc(1, sizeof *ctx);
    if (!ctx) {
        st = qg__error(NULL, QG_ERR_NOMEM, "out of memory creating the context");
        goto fail;
    }
    ctx->platform = devs[pick].platform;
    ctx->device = devs[pick].device;
    ctx->profiling = opts->profiling;
    ctx->verbose = opts->verbose;
    fill_info(ctx->platform, ctx->device, (int)pick, &ctx->info);
    ctx->head.device = ctx->info.name;
    cl_device_fp_config fp = 0;
    if (clGetDeviceInfo(ctx->device, CL_DEVICE_SINGLE_FP_CONFIG, sizeof fp, &fp, NULL) ==
        CL_SUCCESS)
        ctx->fp32_correct_div = (fp & CL_FP_CORRECTLY_ROUNDED_DIVIDE_SQRT) != 0;
    resolve_dir(ctx->cache_dir, sizeof ctx->cache_dir, opts->cache_dir, "QGATE_CACHE_DIR",
                "qgate/kernels");
    if (opts->tune_db)
        snprintf(ctx->tune_db, sizeof ctx->tune_db, "%s", opts->tune_db);
    resolve_dir(ctx->kernel_dir, sizeof ctx->kernel_dir, opts->kernel_dir, "QGATE_KERNEL_DIR",
                NULL);

    cl_context_properties props[] = {CL_CONTEXT_PLATFORM, (cl_context_properties)ctx->platform, 0};
    ctx->context = clCreateContext(props, 1, &ctx->device, NULL, NULL, &e);
    if (e != CL_SUCCESS) {
        st = qg__cl_error(ctx, e, "clCreateContext", __FILE__, __LINE__);
        goto fail;
    }
    const char *kp = getenv("QGATE_PROFILE_KERNELS");
    if (kp && *kp && strcmp(kp, "0") != 0) {
        ctx->kprof = qg__kprof_new();
        if (!ctx->kprof) {
            st = qg__error(NULL, QG_ERR_NOMEM, "out of memory creating the kernel profile");
            goto fail;
        }
    }
    cl_command_queue_properties qp =
        opts->profiling || ctx->kprof ? CL_QUEUE_PROFILING_ENABLE : 0;
    /* clCreateCommandQueue is deprecated in 2.0 but it is the 1.2 call and
     * every ICD still exports it. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
    ctx->queue = clCreateCommandQueue(ctx->context, ctx->device, qp, &e);
#pragma GCC diagnostic pop
    if (e != CL_SUCCESS) {
        st = qg__cl_error(ctx, e, "clCreateCommandQueue", __FILE__, __LINE__);
        goto fail;
    }
    free(devs);
    *out = ctx;
    return QG_OK;
fail:
    free(devs);
    qg_ctx_free(ctx);
    return st;
}

void qg_ctx_free(qg_ctx *ctx)
{
    if (!ctx)
        return;
    /* Work still queued must end before the context goes: PoCL compiles a
     * kernel on its first run in a worker thread, and a process that exits
     * while that compile runs crashes in LLVM's teardown (a test freeing
     * its context right after a first launch did, now and then, with a
     * cold kernel cache). */
    if (ctx->queue)
        clFinish(ctx->queue);
    qg__kprof_print(ctx);
    qg__tunedb_free(ctx);
    qg__variants_free(ctx);
    if (ctx->gemm_state_free)
        ctx->gemm_state_free(ctx->gemm_state);
    for (qg_program_entry *p = ctx->programs, *pn; p; p = pn) {
        pn = p->next;
        for (qg_kernel_entry *k = p->kernels, *kn; k; k = kn) {
            kn = k->next;
            clReleaseKernel(k->kernel);
            free(k);
        }
        clReleaseProgram(p->prog);
        free(p->options);
        free(p);
    }
    if (ctx->scratch)
        clReleaseMemObject(ctx->scratch);
    if (ctx->queue)
        clReleaseCommandQueue(ctx->queue);
    if (ctx->context)
        clReleaseContext(ctx->context);
    free(ctx);
}

void qg__ctx_mem(qg_ctx *ctx, size_t bytes, int sign)
{
    if (sign < 0) {
        ctx->mem_bytes -= bytes < ctx->mem_bytes ? bytes : ctx->mem_bytes;
        return;
    }
    ctx->mem_bytes += bytes;
    if (ctx->mem_bytes > ctx->mem_peak)
        ctx->mem_peak = ctx->mem_bytes;
}

qg_status qg__ctx_scratch(qg_ctx *ctx, size_t bytes, cl_mem *out)
{
    if (bytes > ctx->scratch_bytes) {
        /* commands already queued keep the old buffer alive until done */
        if (ctx->scratch) {
            clReleaseMemObject(ctx->scratch);
            qg__ctx_mem(ctx, ctx->scratch_bytes, -1);
        }
        ctx->scratch = NULL;
        ctx->scratch_bytes = 0;
        cl_int e;
        cl_mem m = NULL;
        if (qg__fault(QG_FAULT_ALLOC))
            e = CL_MEM_OBJECT_ALLOCATION_FAILURE;
        else
            m = clCreateBuffer(ctx->context, CL_MEM_READ_WRITE, bytes, NULL, &e);
        if (e != CL_SUCCESS)
            return qg__error(ctx, QG_ERR_CL, "clCreateBuffer(%zu bytes) for the scratch buffer "
                             "failed with %s on device '%s'", bytes, qg_cl_error_name(e),
                             ctx->info.name);
        ctx->scratch = m;
        ctx->scratch_bytes = bytes;
        qg__ctx_mem(ctx, bytes, 1);
    }
    *out = ctx->scratch;
    return QG_OK;
}

const qg_device_info *qg_ctx_device(const qg_ctx *ctx)
{
    return &ctx->info;
}

qg_status qg_ctx_finish(qg_ctx *ctx)
{
    qg_status st = QG_OK;
    QG_CL_TRY(ctx, clFinish(ctx->queue));
fail:
    return st;
}

void qg_ctx_build_stats(const qg_ctx *ctx, qg_build_stats *out)
{
    *out = ctx->stats;
}
