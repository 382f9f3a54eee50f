/* bench/bench_util.h: what the kernel-level probes (bench_conv, bench_bn)
 * share: a clock, a sort order for timings, a fatal error that names the
 * program, and device tensors filled with a fixed pattern. Header-only:
 * each probe is one translation unit. */
#ifndef QG_BENCH_UTIL_H
#define QG_BENCH_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "qgate.h"

static const char *bench_prog = "bench";

static double bench_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

/* CPU seconds of the whole process, the device's worker threads included
 * when the device runs on the host CPU (PoCL): on a machine shared with
 * other work this counts the work a kernel does, not its wait for a core. */
static inline double bench_cpu_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static int bench_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void bench_die(const char *what)
{
    fprintf(stderr, "%s: %s: %s\n", bench_prog, what, qg_last_error());
    exit(1);
}

/* The options every probe takes (--device N|NAME, --batch N, --runs N):
 * 1 when argv[*i] is one of them (*i then at its value), else 0. */
static int bench_common_opt(int argc, char **argv, int *i, qg_ctx_opts *o, int *batch, int *runs)
{
    if (*i + 1 >= argc)
        return 0;
    if (strcmp(argv[*i], "--device") == 0)
        o->device = argv[++*i];
    else if (strcmp(argv[*i], "--batch") == 0)
        *batch = atoi(argv[++*i]);
    else if (strcmp(argv[*i], "--runs") == 0)
        *runs = atoi(argv[++*i]);
    else
        return 0;
    return 1;
}

/* The context of o, or exit naming the program. */
static qg_ctx *bench_ctx(const qg_ctx_opts *o)
{
    qg_ctx *ctx;
    if (qg_ctx_new(o, &ctx) != QG_OK)
        bench_die("creating the context");
    return ctx;
}

/* An F32 tensor holding base + a fixed pseudo-random pattern in [-0.5, 0.5). */
static qg_tensor *bench_tensor(qg_ctx *ctx, int ndim, const int64_t *sh, const char *name,
                               float base)
{
    qg_tensor *t;
    if (qg_tensor_new(ctx, ndim, sh, QG_DTYPE_F32, name, &t) != QG_OK)
        bench_die("allocating tensors");
    size_t n = qg_tensor_numel(t);
    float *h = malloc(n * sizeof *h);
    if (!h)
        bench_die("out of memory");
    for (size_t i = 0; i < n; i++)
        h[i] = base + (float)((i * 2654435761u) % 1000) / 1000.0f - 0.5f;
    if (qg_tensor_write(t, h, n * sizeof *h) != QG_OK)
        bench_die("writing tensors");
    free(h);
    return t;
}

#endif
