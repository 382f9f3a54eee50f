/* bench/peak_flops.c: the device's attainable fp32 FMA throughput, the
 * yardstick for "conv kernels reach X% of peak" (bench_conv prints its
 * GFLOP/s as a fraction of this number).
 *
 * Each work-item keeps CHAINS independent float16 accumulators and runs
 * ITERS rounds of fma on all of them, so the FMA pipes never wait on a
 * previous result; nothing is loaded inside the loop. The best of several
 * runs is reported, with the vector width that won (float4/8/16: on CPUs
 * the compiler maps them to SSE/AVX2/AVX-512 registers).
 *
 * usage: bench/peak_flops [--device N|NAME] [--runs N] */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "qgate.h"
#include "cl/ctx.h"

#define ITERS 4096
#define CHAINS 24

static const char *kernel_src =
    "__kernel void peak(__global float *out, float a, float b)\n"
    "{\n"
    "    VT acc[CHAINS];\n"
    "    for (int i = 0; i < CHAINS; i++)\n"
    "        acc[i] = (VT)(get_global_id(0) + i);\n"
    "    for (int it = 0; it < ITERS; it++) {\n"
    "        #pragma unroll\n"
    "        for (int i = 0; i < CHAINS; i++)\n"
    "            acc[i] = fma(acc[i], (VT)a, (VT)b);\n"
    "    }\n"
    "    VT s = acc[0];\n"
    "    for (int i = 1; i < CHAINS; i++)\n"
    "        s += acc[i];\n"
    "    float h[sizeof(VT) / sizeof(float)];\n"
    "    *(__private VT *)h = s;\n"
    "    out[get_global_id(0)] = h[0] + h[sizeof(VT) / sizeof(float) - 1];\n"
    "}\n";

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

#define CHECK(call)                                                                        \
    do {                                                                                   \
        cl_int e_ = (call);                                                                \
        if (e_ != CL_SUCCESS) {                                                            \
            fprintf(stderr, "peak_flops: %s failed with %s\n", #call, qg_cl_error_name(e_)); \
            exit(1);                                                                       \
        }                                                                                  \
    } while (0)

/* Best GFLOP/s of `runs` launches with vectors of `vw` floats. */
static double measure(qg_ctx *ctx, int vw, int runs)
{
    char opts[128];
    snprintf(opts, sizeof opts, "-DVT=float%d -DCHAINS=%d -DITERS=%d", vw, CHAINS, ITERS);
    cl_int e;
    cl_program prog = clCreateProgramWithSource(ctx->context, 1, &kernel_src, NULL, &e);
    CHECK(e);
    e = clBuildProgram(prog, 1, &ctx->device, opts, NULL, NULL);
    if (e != CL_SUCCESS) {
        char log[4096] = "";
        clGetProgramBuildInfo(prog, ctx->device, CL_PROGRAM_BUILD_LOG, sizeof log, log, NULL);
        fprintf(stderr, "peak_flops: build failed (%s):\n%s\n", qg_cl_error_name(e), log);
        exit(1);
    }
    cl_kernel k = clCreateKernel(prog, "peak", &e);
    CHECK(e);
    /* ~10 ms a launch at the peak: a launch of well under a millisecond
     * can finish on one PoCL worker before the other has woken up, which
     * read as half the peak in some runs. */
    size_t items = (size_t)ctx->info.compute_units * 2048;
    cl_mem out = clCreateBuffer(ctx->context, CL_MEM_WRITE_ONLY, items * sizeof(float), NULL, &e);
    CHECK(e);
    float a = 0.999f, b = 0.001f;
    CHECK(clSetKernelArg(k, 0, sizeof out, &out));
    CHECK(clSetKernelArg(k, 1, sizeof a, &a));
    CHECK(clSetKernelArg(k, 2, sizeof b, &b));
    double best = 1e30;
    /* explicit small work-groups: left to the driver, PoCL may make all
     * items one group, which one core runs */
    size_t local = 4;
    for (int r = 0; r < runs + 1; r++) {
        double t0 = now();
        CHECK(clEnqueueNDRangeKernel(ctx->queue, k, 1, NULL, &items, &local, 0, NULL, NULL));
        CHECK(clFinish(ctx->queue));
        double t = now() - t0;
        if (r > 0 && t < best) /* the first run pays for the kernel's load */
            best = t;
    }
    clReleaseMemObject(out);
    clReleaseKernel(k);
    clReleaseProgram(prog);
    return 2.0 * items * ITERS * CHAINS * vw / best * 1e-9;
}

int main(int argc, char **argv)
{
    qg_ctx_opts o = {0};
    int runs = 5;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--device") == 0 && i + 1 < argc) {
            o.device = argv[++i];
        } else if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc) {
            runs = atoi(argv[++i]);
        } else {
            fprintf(stderr, "usage: peak_flops [--device N|NAME] [--runs N]\n");
            return 2;
        }
    }
    qg_ctx *ctx;
    if (qg_ctx_new(&o, &ctx) != QG_OK) {
        fprintf(stderr, "peak_flops: %s\n", qg_last_error());
        return 1;
    }
    double best = 0;
    int best_vw = 0;
    static const int vws[] = {4, 8, 16};
    for (int i = 0; i < 3; i++) {
        double g = measure(ctx, vws[i], runs);
        printf("float%-2d %8.1f GFLOP/s\n", vws[i], g);
        if (g > best) {
            best = g;
            best_vw = vws[i];
        }
    }
    printf("device: %s (driver %s, %u compute units)\n", ctx->info.name, ctx->info.driver,
           ctx->info.compute_units);
    printf("peak GFLOP/s: %.1f (float%d)\n", best, best_vw);
    qg_ctx_free(ctx);
    return 0;
}
