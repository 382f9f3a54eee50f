/* src/tune/tuner.h: `qgate tune`: per program, enumerate valid parameter
 * sets, build each, verify its output against the C reference (a wrong
 * but fast candidate never wins), time it with profiling events (warm-up,
 * several runs, minimum) and store the winner in the user database. */
#ifndef QG_TUNE_TUNER_H
#define QG_TUNE_TUNER_H

#include <stdio.h>
#include "cl/ctx.h"

/* A benchmark case of one program on one shape class. */
typedef struct qg_tune_case {
    const char *program;
    const char *shape;         /* shape label for the output, e.g. "resnet20" */
    /* Allocates inputs and computes the reference output once. */
    qg_status (*prepare)(qg_ctx *ctx, void **state);
    /* Instead of prepare, for cases built at run time from a shapes file:
     * prepares from `arg` (see qg__tune_case_prepare). */
    qg_status (*prepare_arg)(qg_ctx *ctx, const void *arg, void **state);
    const void *arg;
    /* Shape class the winner is stored under; NULL = "*", every shape
     * (the built-in ResNet-20 cases stand for the whole program). */
    const char *db_shape;
    /* Enqueues the work being timed (all kernels of the program). */
    qg_status (*run)(qg_ctx *ctx, void *state);
    /* Compares the device output with the reference: max relative error. */
    qg_status (*check)(qg_ctx *ctx, void *state, double *max_err);
    void (*release)(void *state);
    double tolerance;          /* max_err above this rejects a candidate */
    /* Parameters another library applies (CLBlast's): how to apply a
     * set. NULL = qg__program_override. */
    qg_status (*apply)(qg_ctx *ctx, const long *values);
    /* Selects that library's built-in parameters (fails once they cannot
     * be restored). When set, they are the baseline and candidates are
     * tried in random order. */
    qg_status (*builtin)(qg_ctx *ctx);
    double work;               /* bytes or flops per run, for the report */
    int work_is_flops;
} qg_tune_case;

typedef enum qg_tune_strategy {
    QG_TUNE_EXHAUSTIVE = 0,
    QG_TUNE_RANDOM = 1,
    QG_TUNE_ANNEAL = 2
} qg_tune_strategy;

typedef struct qg_tune_opts {
    const char *kernel;        /* NULL = every program that has a case */
    /* NULL: the built-in cases (ResNet-20 shapes, stored for every shape);
     * else a shapes file (tune/shapes_file.h): per-shape cases of the
     * programs that have them, each stored under its shape class. */
    const char *shapes_file;
    double budget_s;           /* per program; 0 = unlimited */
    qg_tune_strategy strategy;
    int runs;                  /* timed runs per candidate (min is kept) */
    unsigned seed;
    int dry_run;               /* do not write the database */
    FILE *log;
} qg_tune_opts;

/* All cases known to the tuner (every table of tune/cases.h). */
size_t qg__tune_case_count(void);
const qg_tune_case *qg__tune_case_at(size_t i);

/* "clblast_xgemm, conv_direct, ...": the case names, for messages. */
void qg__tune_case_names(char *buf, size_t cap);

/* Runs c's prepare or prepare_arg. */
qg_status qg__tune_case_prepare(qg_ctx *ctx, const qg_tune_case *c, void **state);

/* The parameter description of a case: its registry program. NULL when
 * the program is unknown. */
const qg_program_desc *qg__tune_case_desc(const qg_tune_case *c);

/* Device time of one run of a case under the context's current
 * parameters, from profiling markers when the queue profiles (wall time
 * otherwise). */
qg_status qg__tune_time_run(qg_ctx *ctx, const qg_tune_case *c, void *state, double *ms);

/* Min and median of `runs` timed runs after one warm-up. */
typedef struct qg_tune_timing {
    double min_ms, median_ms;
} qg_tune_timing;
qg_status qg__tune_time_case(qg_ctx *ctx, const qg_tune_case *c, void *state, int runs,
                             qg_tune_timing *t);

/* Applies a parameter set (`values` in d's tunables order; NULL keeps the
 * context's current ones), runs the case once and checks it against the
 * reference. Returns 1 when the result is correct; otherwise 0 with the
 * reason (build failure, launch error, wrong result) in `note`. */
int qg__tune_verify(qg_ctx *ctx, const qg_tune_case *c, const qg_program_desc *d, void *state,
                    const long *values, char *note, size_t cap);

qg_status qg__tune_run(qg_ctx *ctx, const qg_tune_opts *o);

/* Searches one case (o->kernel is not consulted) and stores its winner
 * unless o->dry_run. */
qg_status qg__tune_case_run(qg_ctx *ctx, const qg_tune_case *c, const qg_tune_opts *o);

/* qg__tune_run for o->shapes_file (cases_shapes.c). */
qg_status qg__tune_run_shapes(qg_ctx *ctx, const qg_tune_opts *o);

/* `qgate bench kernels`: per case, one line with the program's default
 * parameters (CLBlast: its built-in ones) and one with the tuned set the
 * databases hold for this device, if any: device key, kernel, shape,
 * default|tuned, min and median ms of `runs` runs, GB/s or GFLOP/s at the
 * min, and for tuned lines the speed-up of the medians. Each set is
 * verified against the reference first; failures are printed and
 * counted, not fatal. The context should have profiling on. */
typedef struct qg_bench_kernels_opts {
    const char *kernel;        /* NULL = every case */
    int runs;
    FILE *out;
} qg_bench_kernels_opts;

qg_status qg__bench_kernels(qg_ctx *ctx, const qg_bench_kernels_opts *o, int *failures);

#endif
