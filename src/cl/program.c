/* src/cl/program.c: lazy program builds with sorted -D options, kernel
 * lookup, and the on-disk binary cache (key: device key, driver, source
 * hash, options; see binary_cache.c). */
#include "config.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/fault.h"
#include "core/error.h"
#include "core/fileio.h"
#include "cl/ctx.h"

/* No fast-math: quantizers must round exactly like the C references. For
 * the same reason division and sqrt are asked to round correctly where the
 * device can (GPU drivers otherwise allow 2.5 ulp). */
#define QG_BASE_OPTIONS "-cl-std=CL1.2"
#define QG_EXACT_DIV " -cl-fp32-correctly-rounded-divide-sqrt"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_param(const void *a, const void *b)
{
    return strcmp(((const qg_kparam *)a)->name, ((const qg_kparam *)b)->name);
}

static int valid_ident(const char *s)
{
    if (!s || !(isalpha((unsigned char)*s) || *s == '_'))
        return 0;
    for (; *s; s++)
        if (!(isalnum((unsigned char)*s) || *s == '_'))
            return 0;
    return 1;
}

/* "-cl-std=CL1.2 -DA=1 -DB=2" with the parameters in name order, so equal
 * parameter sets always give equal strings (the cache identity). */
static qg_status make_options(qg_ctx *ctx, const qg_kparam *params, size_t n, char **out)
{
    qg_kparam *sorted = NULL;
    size_t cap = sizeof QG_BASE_OPTIONS + sizeof QG_EXACT_DIV + 1;
    *out = NULL;
    if (n) {
        sorted = malloc(n * sizeof *sorted);
        if (!sorted)
            return qg__error(ctx, QG_ERR_NOMEM, "out of memory building options");
        memcpy(sorted, params, n * sizeof *sorted);
        qsort(sorted, n, sizeof *sorted, cmp_param);
    }
    for (size_t i = 0; i < n; i++) {
        qg_status bad = QG_OK;
        if (!valid_ident(sorted[i].name))
            bad = qg__error(ctx, QG_ERR_INVALID_ARG, "invalid kernel parameter name '%s'",
                            sorted[i].name ? sorted[i].name : "(null)");
        else if (i && strcmp(sorted[i].name, sorted[i - 1].name) == 0)
            bad = qg__error(ctx, QG_ERR_INVALID_ARG, "kernel parameter '%s' given twice",
                            sorted[i].name);
        if (bad != QG_OK) {
            free(sorted);
            return bad;
        }
        cap += strlen(sorted[i].name) + 32;
    }
    char *opt = malloc(cap);
    if (!opt) {
        free(sorted);
        return qg__error(ctx, QG_ERR_NOMEM, "out of memory building options");
    }
    size_t off = (size_t)snprintf(opt, cap, "%s%s", QG_BASE_OPTIONS,
                                  ctx->fp32_correct_div ? QG_EXACT_DIV : "");
    for (size_t i = 0; i < n; i++)
        off += (size_t)snprintf(opt + off, cap - off, " -D%s=%ld", sorted[i].name,
                                sorted[i].value);
    free(sorted);
    *out = opt;
    return QG_OK;
}

static qg_status build_log(qg_ctx *ctx, cl_program prog, const char *program,
                           const char *options, cl_int err)
{
    size_t len = 0;
    char *log = NULL;
    if (clGetProgramBuildInfo(prog, ctx->device, CL_PROGRAM_BUILD_LOG, 0, NULL, &len) ==
            CL_SUCCESS && len) {
        log = malloc(len + 1);
        if (log && clGetProgramBuildInfo(prog, ctx->device, CL_PROGRAM_BUILD_LOG, len, log,
                                         NULL) == CL_SUCCESS)
            log[len] = 0;
        else if (log)
            log[0] = 0;
    }
    qg_status st = qg__error(ctx, QG_ERR_BUILD,
                             "building program '%s' (cl/%s.cl) for device '%s' with options "
                             "'%s' failed with %s; build log:\n%.1400s", program, program,
                             ctx->info.name, options, qg_cl_error_name(err),
                             log && *log ? log : "(empty)");
    free(log);
    return st;
}

/* Builds cl/common.cl + cl/<program>.cl, trying the disk cache first. */
static qg_status build_program(qg_ctx *ctx, const char *program, const char *options,
                               cl_program *out)
{
    qg_status st = QG_OK;
    char *common = NULL, *body = NULL, *key = NULL;
    unsigned char *bin = NULL;
    size_t common_len = 0, body_len = 0, bin_len = 0;
    cl_program prog = NULL;
    cl_int e;
    double t0 = now_s();

    *out = NULL;
    if (qg__fault(QG_FAULT_BUILD))
        return build_log(ctx, NULL, program, options, CL_BUILD_PROGRAM_FAILURE);
    QG_TRY(qg__cl_source_load(ctx, "common", &common, &common_len));
    QG_TRY(qg__cl_source_load(ctx, program, &body, &body_len));

    uint64_t h = qg__fnv1a(QG_FNV_INIT, common, common_len);
    h = qg__fnv1a(h, "\n", 1);
    h = qg__fnv1a(h, body, body_len);
    size_t klen = strlen(ctx->info.key) + strlen(options) + strlen(program) + 64;
    key = malloc(klen);
    if (!key) {
        st = qg__error(ctx, QG_ERR_NOMEM, "out of memory");
        goto fail;
    }
    snprintf(key, klen, "%s|%s|%016llx|%s", ctx->info.key, program, (unsigned long long)h,
             options);

    if (qg__bincache_load(ctx, key, &bin, &bin_len) == QG_OK) {
        const unsigned char *bins[1] = {bin};
        cl_int bin_status = CL_SUCCESS;
        prog = clCreateProgramWithBinary(ctx->context, 1, &ctx->device, &bin_len, bins,
                                         &bin_status, &e);
        if (e == CL_SUCCESS && bin_status == CL_SUCCESS &&
            clBuildProgram(prog, 1, &ctx->device, options, NULL, NULL) == CL_SUCCESS) {
            ctx->stats.programs_loaded++;
            if (ctx->verbose)
                fprintf(stderr, "qgate: program '%s' loaded from cache (%s)\n", program,
                        options);
            goto done;
        }
        /* A stale or foreign binary is not an error: rebuild from source. */
        if (prog)
            clReleaseProgram(prog);
        prog = NULL;
    }

    const char *srcs[2] = {common, body};
    size_t lens[2] = {common_len, body_len};
    prog = clCreateProgramWithSource(ctx->context, 2, srcs, lens, &e);
    if (e != CL_SUCCESS) {
        st = qg__cl_error(ctx, e, "clCreateProgramWithSource", __FILE__, __LINE__);
        goto fail;
    }
    e = clBuildProgram(prog, 1, &ctx->device, options, NULL, NULL);
    if (e != CL_SUCCESS) {
        st = build_log(ctx, prog, program, options, e);
        goto fail;
    }
    ctx->stats.programs_built++;
    if (ctx->verbose)
        fprintf(stderr, "qgate: program '%s' built from source (%s)\n", program, options);

    if (ctx->cache_dir[0]) {
        size_t sz = 0;
        if (clGetProgramInfo(prog, CL_PROGRAM_BINARY_SIZES, sizeof sz, &sz, NULL) ==
                CL_SUCCESS && sz) {
            unsigned char *b = malloc(sz);
            unsigned char *bp[1] = {b};
            if (b && clGetProgramInfo(prog, CL_PROGRAM_BINARIES, sizeof bp, bp, NULL) ==
                         CL_SUCCESS)
                qg__bincache_store(ctx, key, b, sz);
            free(b);
        }
    }
done:
    ctx->stats.build_seconds += now_s() - t0;
    *out = prog;
    prog = NULL;
fail:
    if (prog)
        clReleaseProgram(prog);
    free(bin);
    free(key);
    free(common);
    free(body);
    return st;
}

static qg_status program_entry(qg_ctx *ctx, const char *program, const qg_kparam *params,
                               size_t nparams, qg_program_entry **out)
{
    qg_status st = QG_OK;
    char *options = NULL;
    qg_program_entry *pe;

    *out = NULL;
    QG_TRY(make_options(ctx, params, nparams, &options));
    for (pe = ctx->programs; pe; pe = pe->next)
        if (strcmp(pe->program, program) == 0 && strcmp(pe->options, options) == 0)
            break;
    if (!pe) {
        pe = calloc(1, sizeof *pe);
        if (!pe) {
            st = qg__error(ctx, QG_ERR_NOMEM, "out of memory");
            goto fail;
        }
        snprintf(pe->program, sizeof pe->program, "%s", program);
        st = build_program(ctx, program, options, &pe->prog);
        if (st != QG_OK) {
            free(pe);
            goto fail;
        }
        pe->options = options;
        options = NULL;
        pe->next = ctx->programs;
        ctx->programs = pe;
    }
    *out = pe;
fail:
    free(options);
    return st;
}

qg_status qg__program_build(qg_ctx *ctx, const char *program, const qg_kparam *params,
                            size_t nparams)
{
    qg_program_entry *pe;
    return program_entry(ctx, program, params, nparams, &pe);
}

qg_status qg__program_build_get(qg_ctx *ctx, const char *program, const qg_kparam *params,
                                size_t nparams, cl_program *out)
{
    qg_program_entry *pe;
    qg_status st = program_entry(ctx, program, params, nparams, &pe);
    if (st == QG_OK)
        *out = pe->prog;
    return st;
}

qg_status qg__kernel_get(qg_ctx *ctx, const char *program, const qg_kparam *params,
                         size_t nparams, const char *kernel, cl_kernel *out)
{
    qg_program_entry *pe;
    qg_kernel_entry *ke;
    cl_int e;

    *out = NULL;
    qg_status st = program_entry(ctx, program, params, nparams, &pe);
    if (st != QG_OK)
        return st;
    for (ke = pe->kernels; ke; ke = ke->next)
        if (strcmp(ke->name, kernel) == 0) {
            *out = ke->kernel;
            return QG_OK;
        }
    ke = calloc(1, sizeof *ke);
    if (!ke)
        return qg__error(ctx, QG_ERR_NOMEM, "out of memory");
    ke->kernel = clCreateKernel(pe->prog, kernel, &e);
    if (e != CL_SUCCESS) {
        free(ke);
        return qg__error(ctx, QG_ERR_CL, "clCreateKernel('%s') in program '%s' failed with %s",
                         kernel, program, qg_cl_error_name(e));
    }
    snprintf(ke->name, sizeof ke->name, "%s", kernel);
    ke->next = pe->kernels;
    pe->kernels = ke;
    *out = ke->kernel;
    return QG_OK;
}
