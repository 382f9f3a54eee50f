/* src/cl/launch.c: kernels by id, typed kernel-argument setters and
 * checked launches. Once a kernel was created, getting it is two array
 * reads (the program's current variant, its kernel slot). */
#include "config.h"

#include <stdio.h>

#include "core/fault.h"
#include "core/error.h"
#include "cl/ctx.h"

qg_status qg__kargs_variant(qg_ctx *ctx, qg_variant *v, qg_kernel_id k, qg_kargs *a)
{
    if ((unsigned)k >= QG_K_COUNT || !v->kernels[k]) {
        qg_status st = qg__variant_kernel(ctx, v, k);
        if (st != QG_OK)
            return st;
    }
    a->ctx = ctx;
    a->k = v->kernels[k];
    a->name = qg__kernel_name(k);
    a->n = 0;
    a->nargs = v->nargs[k];
    a->err = CL_SUCCESS;
    a->err_index = 0;
    return QG_OK;
}

qg_status qg__kargs_getv(qg_ctx *ctx, qg_kernel_id k, qg_kargs *a, const long **values)
{
    qg_variant *v;
    if ((unsigned)k >= QG_K_COUNT)
        return qg__error(ctx, QG_ERR_INVALID_ARG, "no kernel %d in the registry", (int)k);
    qg_status st = qg__variant_current(ctx, qg__kernel_program(k), &v);
    if (st == QG_OK)
        st = qg__kargs_variant(ctx, v, k, a);
    if (st == QG_OK && values)
        *values = v->values;
    return st;
}

qg_status qg__kargs_get(qg_ctx *ctx, qg_kernel_id k, qg_kargs *a, size_t *wg)
{
    const long *v;
    qg_status st = qg__kargs_getv(ctx, k, a, &v);
    if (st == QG_OK && wg)
        *wg = (size_t)v[QG_P_WG];
    return st;
}

static void set(qg_kargs *a, size_t size, const void *value)
{
    cl_int e = clSetKernelArg(a->k, a->n, size, value);
    if (e != CL_SUCCESS && a->err == CL_SUCCESS) {
        a->err = e;
        a->err_index = a->n;
    }
    a->n++;
}

void qg__karg_mem(qg_kargs *a, cl_mem m) { set(a, sizeof m, &m); }
void qg__karg_int(qg_kargs *a, int v) { cl_int x = v; set(a, sizeof x, &x); }
void qg__karg_uint(qg_kargs *a, unsigned v) { cl_uint x = v; set(a, sizeof x, &x); }
void qg__karg_float(qg_kargs *a, float v) { cl_float x = v; set(a, sizeof x, &x); }
void qg__karg_local(qg_kargs *a, size_t bytes) { set(a, bytes, NULL); }

qg_status qg__kargs_launch_ev(qg_kargs *a, cl_uint dims, const size_t *global,
                              const size_t *local, cl_event *ev)
{
    size_t g[3];
    if (a->err != CL_SUCCESS)
        return qg__error(a->ctx, QG_ERR_CL, "clSetKernelArg(%s, arg %u) failed with %s",
                         a->name, a->err_index, qg_cl_error_name(a->err));
    if (a->n != a->nargs)
        return qg__error(a->ctx, QG_ERR_INVALID_ARG, "kernel %s takes %u arguments, but %u "
                         "were set before its launch", a->name, a->nargs, a->n);
    for (cl_uint i = 0; i < dims; i++) {
        g[i] = local ? qg__round_up(global[i], local[i]) : global[i];
        if (g[i] == 0)
            return QG_OK; /* empty launch: nothing to do */
    }
    cl_event pev = NULL;
    cl_event *evp = ev ? ev : a->ctx->kprof ? &pev : NULL;
    cl_int e = qg__fault(QG_FAULT_LAUNCH)
                   ? CL_OUT_OF_RESOURCES
                   : clEnqueueNDRangeKernel(a->ctx->queue, a->k, dims, NULL, g, local, 0, NULL,
                                            evp);
    if (e != CL_SUCCESS) {
        char loc[64] = "NULL";
        if (local)
            snprintf(loc, sizeof loc, "%zu,%zu,%zu", local[0], dims > 1 ? local[1] : 1,
                     dims > 2 ? local[2] : 1);
        return qg__error(a->ctx, QG_ERR_CL,
                         "clEnqueueNDRangeKernel(%s, global %zu,%zu,%zu, local %s) failed "
                         "with %s on device '%s'", a->name, g[0], dims > 1 ? g[1] : 1,
                         dims > 2 ? g[2] : 1, loc, qg_cl_error_name(e), a->ctx->info.name);
    }
    if (a->ctx->kprof && clWaitForEvents(1, evp) == CL_SUCCESS) {
        cl_ulong t0 = 0, t1 = 0;
        if (clGetEventProfilingInfo(*evp, CL_PROFILING_COMMAND_START, sizeof t0, &t0, NULL) ==
                CL_SUCCESS &&
            clGetEventProfilingInfo(*evp, CL_PROFILING_COMMAND_END, sizeof t1, &t1, NULL) ==
                CL_SUCCESS)
            qg__kprof_add(a->ctx, a->name, (double)(t1 - t0) * 1e-9);
    }
    if (pev)
        clReleaseEvent(pev);
    return QG_OK;
}

qg_status qg__kargs_launch(qg_kargs *a, cl_uint dims, const size_t *global,
                           const size_t *local)
{
    return qg__kargs_launch_ev(a, dims, global, local, NULL);
}
