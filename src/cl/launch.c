/* src/cl/launch.c: typed kernel-argument setters and checked launches. */
#include "config.h"

#include <stdio.h>

#include "core/error.h"
#include "cl/ctx.h"
#include "tensor/tensor_impl.h"

void qg__kargs_init(qg_kargs *a, qg_ctx *ctx, cl_kernel k, const char *name)
{
    a->ctx = ctx;
    a->k = k;
    a->name = name;
    a->n = 0;
    a->err = CL_SUCCESS;
    a->err_index = 0;
}

qg_status qg__kargs_get(qg_ctx *ctx, const char *program, const char *kernel, long def_wg,
                        qg_kargs *a, size_t *wg)
{
    cl_kernel k;
    long v = def_wg;
    qg_status st = qg__kernel_current(ctx, program, kernel, &k, "WG", &v);
    if (st != QG_OK)
        return st;
    qg__kargs_init(a, ctx, k, kernel);
    *wg = (size_t)v;
    return QG_OK;
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

void qg__karg_tensor(qg_kargs *a, const qg_tensor *t)
{
    qg__karg_mem(a, t->mem);
    qg__karg_int(a, (int)t->offset);
}

qg_status qg__kargs_launch_ev(qg_kargs *a, cl_uint dims, const size_t *global,
                              const size_t *local, cl_event *ev)
{
    size_t g[3];
    if (a->err != CL_SUCCESS)
        return qg__error(a->ctx, QG_ERR_CL, "clSetKernelArg(%s, arg %u) failed with %s",
                         a->name, a->err_index, qg_cl_error_name(a->err));
    for (cl_uint i = 0; i < dims; i++) {
        g[i] = local ? qg__round_up(global[i], local[i]) : global[i];
        if (g[i] == 0)
            return QG_OK; /* empty launch: nothing to do */
    }
    cl_event pev = NULL;
    cl_event *evp = ev ? ev : a->ctx->kprof ? &pev : NULL;
    cl_int e = clEnqueueNDRangeKernel(a->ctx->queue, a->k, dims, NULL, g, local, 0, NULL, evp);
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
