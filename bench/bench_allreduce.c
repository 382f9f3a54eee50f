/* bench/bench_allreduce.c: the gradient allreduce of a data-parallel step
 * (src/train/dist_train.c) for a given parameter count, through the same
 * src/dist calls and bucketing: `mpirun -np N bench/bench_allreduce
 * [FLOATS...]` prints, per size, the bytes each process reduces and the
 * median time of 20 allreduces (the slowest process's time each). Without sizes: ResNet-20 (CIFAR, 272,474
 * trained floats), ShuffleNet V2 0.5x (1,366,792) and ResNet-18
 * (11,689,512) at ImageNet's 1000 classes. Without MPI or under one
 * process it says so and exits. Built always, never run by make check. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dist/dist.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    static const struct {
        const char *name;
        size_t floats;
    } def[] = {{"resnet20", 272474}, {"shufflenet_v2_0.5x", 1366792}, {"resnet18", 11689512}};
    if (qg__dist_init() != QG_OK || qg__dist_size() < 2) {
        fprintf(stderr, "bench_allreduce: run under mpirun -np N (N >= 2) with MPI built in "
                        "(this build: %s)\n", qg__dist_available() ? "MPI" : "no MPI");
        return 77;
    }
    int nsizes = argc > 1 ? argc - 1 : 3;
    /* dist_train.c's buckets: QGATE_DIST_BUCKET_MB, default 4 MiB (0: one) */
    const char *mb = getenv("QGATE_DIST_BUCKET_MB");
    double bmb = mb ? atof(mb) : 4.0;
    size_t bucket = bmb > 0 ? (size_t)(bmb * 1048576.0 / sizeof(float)) : (size_t)-1;
    if (bucket < 1)
        bucket = 1;
    for (int s = 0; s < nsizes; s++) {
        size_t n = argc > 1 ? (size_t)atol(argv[s + 1]) : def[s].floats;
        float *v = malloc(n * sizeof *v);
        if (!v)
            return 1;
        for (size_t i = 0; i < n; i++)
            v[i] = 1e-3f * (float)(i % 1000);
        double t[20];
        for (int r = -2; r < 20; r++) { /* 2 warm-up rounds */
            double sync = 0;
            qg__dist_sum_d(&sync, 1); /* start together: time the transfer, not a wait */
            double t0 = now_s();
            qg_dist_req req = {0};
            for (size_t at = 0, k; at < n; at += k) {
                k = n - at < bucket ? n - at : bucket;
                qg__dist_sum_start(&req, v + at, k);
            }
            qg__dist_sum_wait(&req);
            double dt = now_s() - t0, worst = dt;
            qg__dist_max_d(&worst, 1); /* the step waits for the slowest */
            if (r >= 0)
                t[r] = worst;
        }
        qsort(t, 20, sizeof *t, cmp);
        if (qg__dist_rank() == 0)
            printf("%-20s %10zu floats %8.2f MB  median %8.3f ms  (min %.3f, %d processes, "
                   "buckets of %g MiB)\n", argc > 1 ? "custom" : def[s].name, n, n * 4.0 / 1e6,
                   1e3 * t[10], 1e3 * t[0], qg__dist_size(), bmb);
        free(v);
    }
    return 0;
}
