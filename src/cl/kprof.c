/* src/cl/kprof.c: per-kernel device time table behind QGATE_PROFILE_KERNELS
 * (see cl/ctx.h); used to find which kernels a training step spends its
 * time in, below the per-node view of `qgate bench train --profile`. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cl/ctx.h"

typedef struct qg_kprof_row {
    char name[64];
    double seconds;
    long calls;
} qg_kprof_row;

struct qg_kprof {
    qg_kprof_row *rows;
    int n, cap;
};

struct qg_kprof *qg__kprof_new(void)
{
    return calloc(1, sizeof(struct qg_kprof));
}

void qg__kprof_add(qg_ctx *ctx, const char *kernel, double seconds)
{
    struct qg_kprof *p = ctx->kprof;
    if (!p)
        return;
    for (int i = 0; i < p->n; i++) {
        if (strcmp(p->rows[i].name, kernel) == 0) {
            p->rows[i].seconds += seconds;
            p->rows[i].calls++;
            return;
        }
    }
    if (p->n == p->cap) {
        int cap = p->cap ? 2 * p->cap : 32;
        qg_kprof_row *r = realloc(p->rows, (size_t)cap * sizeof *r);
        if (!r)
            return; /* a profile row lost is not worth failing a launch */
        p->rows = r;
        p->cap = cap;
    }
    qg_kprof_row *r = &p->rows[p->n++];
    snprintf(r->name, sizeof r->name, "%s", kernel);
    r->seconds = seconds;
    r->calls = 1;
}

static int by_time(const void *a, const void *b)
{
    double x = ((const qg_kprof_row *)a)->seconds, y = ((const qg_kprof_row *)b)->seconds;
    return x < y ? 1 : x > y ? -1 : 0;
}

void qg__kprof_print(qg_ctx *ctx)
{
    struct qg_kprof *p = ctx->kprof;
    if (!p)
        return;
    double total = 0;
    for (int i = 0; i < p->n; i++)
        total += p->rows[i].seconds;
    qsort(p->rows, (size_t)p->n, sizeof *p->rows, by_time);
    fprintf(stderr, "kernel profile (device time, all launches of this context):\n");
    fprintf(stderr, "%-36s %10s %8s %6s\n", "kernel", "ms", "calls", "%");
    for (int i = 0; i < p->n; i++)
        fprintf(stderr, "%-36s %10.2f %8ld %6.1f\n", p->rows[i].name, p->rows[i].seconds * 1e3,
                p->rows[i].calls, total > 0 ? 100.0 * p->rows[i].seconds / total : 0.0);
    fprintf(stderr, "%-36s %10.2f\n", "total", total * 1e3);
    free(p->rows);
    free(p);
    ctx->kprof = NULL;
}
