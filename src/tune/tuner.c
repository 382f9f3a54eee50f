/* src/tune/tuner.c: the search engine of `qgate tune` (see tuner.h).
 * Candidates are the cartesian product of each tunable's candidate list,
 * filtered by the program's constraint check before anything is built; a
 * candidate that fails to build or run is skipped with a note. */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/error.h"
#include "cl/tunedb.h"
#include "tune/cases.h"
#include "tune/tuner.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static const qg_tune_case *(*const tables[])(size_t *) = {
    qg__tune_cases_core, qg__tune_cases_quant, qg__tune_cases_layers, qg__tune_cases_cg,
    qg__tune_cases_shuffle, qg__tune_cases_psgd, qg__tune_cases_bsq, qg__tune_cases_masked,
};

size_t qg__tune_case_count(void)
{
    size_t total = 0, n;
    for (size_t t = 0; t < sizeof tables / sizeof *tables; t++) {
        tables[t](&n);
        total += n;
    }
    return total;
}

const qg_tune_case *qg__tune_case_at(size_t i)
{
    size_t n;
    for (size_t t = 0; t < sizeof tables / sizeof *tables; t++) {
        const qg_tune_case *c = tables[t](&n);
        if (i < n)
            return &c[i];
        i -= n;
    }
    return NULL;
}

qg_status qg__tune_time_run(qg_ctx *ctx, const qg_tune_case *c, void *state, double *ms)
{
    qg_status st = QG_OK;
    cl_event e0 = NULL, e1 = NULL;
    double t0 = now_s();
    if (ctx->profiling)
        QG_CL_TRY(ctx, clEnqueueMarkerWithWaitList(ctx->queue, 0, NULL, &e0));
    st = c->run(ctx, state);
    if (st == QG_OK && ctx->profiling)
        QG_CL_TRY(ctx, clEnqueueMarkerWithWaitList(ctx->queue, 0, NULL, &e1));
    if (st == QG_OK)
        QG_CL_TRY(ctx, clFinish(ctx->queue));
    *ms = (now_s() - t0) * 1e3;
    if (e0 && e1) {
        cl_ulong a = 0, b = 0;
        if (clGetEventProfilingInfo(e0, CL_PROFILING_COMMAND_END, sizeof a, &a, NULL) ==
                CL_SUCCESS &&
            clGetEventProfilingInfo(e1, CL_PROFILING_COMMAND_END, sizeof b, &b, NULL) ==
                CL_SUCCESS && b > a)
            *ms = (double)(b - a) * 1e-6;
    }
fail:
    if (e0)
        clReleaseEvent(e0);
    if (e1)
        clReleaseEvent(e1);
    return st;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

qg_status qg__tune_time_case(qg_ctx *ctx, const qg_tune_case *c, void *state, int runs,
                             qg_tune_timing *t)
{
    double warm, *ms = calloc((size_t)(runs > 0 ? runs : 1), sizeof *ms);
    if (!ms)
        return qg__error(ctx, QG_ERR_NOMEM, "out of memory");
    qg_status st = qg__tune_time_run(ctx, c, state, &warm);
    for (int r = 0; st == QG_OK && r < runs; r++)
        st = qg__tune_time_run(ctx, c, state, &ms[r]);
    if (st == QG_OK) {
        qsort(ms, (size_t)runs, sizeof *ms, cmp_double);
        t->min_ms = runs > 0 ? ms[0] : warm;
        t->median_ms = runs > 0 ? ms[runs / 2] : warm;
    }
    free(ms);
    return st;
}

void qg__tune_case_names(char *buf, size_t cap)
{
    size_t off = 0;
    buf[0] = 0;
    for (size_t i = 0; i < qg__tune_case_count() && off < cap; i++)
        if (!qg__tune_case_at(i)->db_shape) /* (per-shape cases repeat a program) */
            off += (size_t)snprintf(buf + off, cap - off, "%s%s", off ? ", " : "",
                                    qg__tune_case_at(i)->program);
}

qg_status qg__tune_case_prepare(qg_ctx *ctx, const qg_tune_case *c, void **state)
{
    return c->prepare_arg ? c->prepare_arg(ctx, c->arg, state) : c->prepare(ctx, state);
}

const qg_program_desc *qg__tune_case_desc(const qg_tune_case *c)
{
    return qg__program_find(c->program);
}

typedef struct candidate {
    long v[QG_MAX_TUNABLES];
} candidate;

/* Every valid combination, in mixed-radix order. */
static candidate *enumerate(qg_ctx *ctx, const qg_program_desc *d, size_t *count,
                            size_t *dropped)
{
    size_t total = 1;
    for (int i = 0; i < d->ntunables; i++)
        total *= (size_t)(d->tunables[i].ncandidates ? d->tunables[i].ncandidates : 1);
    candidate *out = calloc(total ? total : 1, sizeof *out);
    size_t n = 0;
    *dropped = 0;
    if (!out)
        return NULL;
    for (size_t k = 0; k < total; k++) {
        size_t r = k;
        candidate c;
        for (int i = 0; i < d->ntunables; i++) {
            int nc = d->tunables[i].ncandidates;
            c.v[i] = nc ? d->tunables[i].candidates[r % (size_t)nc] : d->tunables[i].def;
            r /= (size_t)(nc ? nc : 1);
        }
        char why[256];
        if (d->valid && !d->valid(ctx, c.v, why, sizeof why)) {
            (*dropped)++;
            continue;
        }
        out[n++] = c;
    }
    *count = n;
    return out;
}

static void shuffle(candidate *c, size_t n, unsigned *seed)
{
    for (size_t i = n; i > 1; i--) {
        *seed = *seed * 1103515245u + 12345u;
        size_t j = (*seed >> 8) % i;
        candidate t = c[i - 1];
        c[i - 1] = c[j];
        c[j] = t;
    }
}

static void fmt_params(const qg_program_desc *d, const long *v, char *buf, size_t cap)
{
    size_t off = 0;
    buf[0] = 0;
    if (!v)
        return;
    for (int i = 0; i < d->ntunables && off < cap; i++)
        off += (size_t)snprintf(buf + off, cap - off, "%s%s=%ld", i ? " " : "",
                                d->tunables[i].name, v[i]);
}

int qg__tune_verify(qg_ctx *ctx, const qg_tune_case *c, const qg_program_desc *d, void *state,
                    const long *values, char *note, size_t cap)
{
    double err = 0;
    qg_status st = QG_OK;
    if (values)
        st = c->apply ? c->apply(ctx, values) : qg__program_override(ctx, d->name, values);
    if (st == QG_OK)
        st = c->run(ctx, state);
    if (st == QG_OK)
        st = c->check(ctx, state, &err);
    if (st != QG_OK) {
        snprintf(note, cap, "%s", qg_ctx_last_error(ctx));
        return 0;
    }
    if (!(err <= c->tolerance)) {
        snprintf(note, cap, "wrong result (max rel err %.3g > %.3g)", err, c->tolerance);
        return 0;
    }
    return 1;
}

/* Measures one candidate: build (through run), verify, time. Returns 0
 * and a note when it must be skipped. */
static int try_candidate(qg_ctx *ctx, const qg_tune_case *c, const qg_program_desc *d,
                         void *state, const long *v, int runs, double *ms, FILE *log)
{
    char p[512], note[2048];
    qg_tune_timing t;
    fmt_params(d, v, p, sizeof p);
    if (!qg__tune_verify(ctx, c, d, state, v, note, sizeof note)) {
        fprintf(log, "  skip %s: %s\n", p, note);
        fflush(log);
        return 0;
    }
    if (qg__tune_time_case(ctx, c, state, runs, &t) != QG_OK) {
        fprintf(log, "  skip %s: %s\n", p, qg_ctx_last_error(ctx));
        return 0;
    }
    *ms = t.min_ms;
    fprintf(log, "  %-40s %9.3f ms\n", v ? p : "(built-in parameters)", *ms);
    fflush(log); /* progress, also when the log is a file or a pipe */
    return 1;
}

/* The fastest candidates of the search, by min time, best first. */
enum { FINALISTS = 3 };
typedef struct finalists {
    candidate v[FINALISTS];
    double ms[FINALISTS];
    int n;
} finalists;

static void keep_finalist(finalists *f, const long *v, double ms)
{
    int k = f->n < FINALISTS ? f->n++ : FINALISTS;
    if (k == FINALISTS && !(ms < f->ms[FINALISTS - 1]))
        return;
    if (k == FINALISTS)
        k--;
    while (k > 0 && ms < f->ms[k - 1]) {
        f->v[k] = f->v[k - 1];
        f->ms[k] = f->ms[k - 1];
        k--;
    }
    memcpy(f->v[k].v, v, sizeof f->v[k].v);
    f->ms[k] = ms;
}

/* A min over a few runs on a busy machine can crown a lucky candidate:
 * the default and the finalists are re-timed interleaved (each run
 * re-applies its set, so load hits all alike) and compared by median.
 * Returns the index of the winner (0 = the default) and fills med[]. */
static int confirm(qg_ctx *ctx, const qg_tune_case *c, const qg_program_desc *d, void *state,
                   const candidate *sets, int nsets, int runs, double *med, FILE *log)
{
    double *ms = calloc((size_t)(nsets * runs), sizeof *ms);
    int win = 0;
    if (!ms)
        return 0;
    for (int r = -1; r < runs; r++)
        for (int k = 0; k < nsets; k++) {
            double t = INFINITY;
            if (qg__program_override(ctx, d->name, sets[k].v) != QG_OK ||
                qg__tune_time_run(ctx, c, state, &t) != QG_OK)
                t = INFINITY;
            if (r >= 0)
                ms[k * runs + r] = t;
        }
    for (int k = 0; k < nsets; k++) {
        qsort(ms + k * runs, (size_t)runs, sizeof *ms, cmp_double);
        med[k] = ms[k * runs + runs / 2];
        char p[512];
        fmt_params(d, sets[k].v, p, sizeof p);
        fprintf(log, "  confirm %-32s median %9.3f ms%s\n", p, med[k], k ? "" : " (default)");
        if (med[k] < med[win])
            win = k;
    }
    free(ms);
    return win;
}

qg_status qg__tune_case_run(qg_ctx *ctx, const qg_tune_case *c, const qg_tune_opts *o)
{
    const qg_program_desc *d = qg__tune_case_desc(c);
    FILE *log = o->log ? o->log : stderr;
    void *state = NULL;
    size_t n = 0, dropped = 0;
    qg_status st;
    if (!d)
        return qg__error(ctx, QG_ERR_NOT_FOUND, "tune case for unknown program '%s'",
                         c->program);
    candidate *cands = enumerate(ctx, d, &n, &dropped);
    if (!cands)
        return qg__error(ctx, QG_ERR_NOMEM, "out of memory enumerating candidates");
    fprintf(log, "%s [%s]: %zu candidates (%zu dropped by constraints), budget %.0f s\n",
            c->program, c->shape, n, dropped, o->budget_s);
    st = qg__tune_case_prepare(ctx, c, &state);
    if (st != QG_OK) {
        free(cands);
        return st;
    }
    /* The baseline: the .cl defaults, with no database influence. */
    long defv[QG_MAX_TUNABLES];
    for (int i = 0; i < d->ntunables; i++)
        defv[i] = qg__tunable_default(ctx, &d->tunables[i]);
    double def_ms = INFINITY, best_ms = INFINITY;
    long best[QG_MAX_TUNABLES];
    int have_best = 0, have_def = 0;
    int builtin = c->builtin != NULL;
    finalists fin = {.n = 0};
    if (builtin && c->builtin && c->builtin(ctx) != QG_OK)
        fprintf(log, "  note: %s; the baseline is the current parameters\n",
                qg_ctx_last_error(ctx));
    if (try_candidate(ctx, c, d, state, builtin ? NULL : defv, o->runs, &def_ms, log)) {
        best_ms = def_ms;
        memcpy(best, defv, sizeof defv);
        have_best = !builtin;
        have_def = 1;
    }
    unsigned seed = o->seed ? o->seed : 42;
    if (o->strategy != QG_TUNE_EXHAUSTIVE || builtin)
        shuffle(cands, n, &seed);
    double t0 = now_s();
    size_t tried = 0;
    if (o->strategy == QG_TUNE_ANNEAL && n > 1) {
        /* Simulated annealing over the shuffled list as a ring: moves go to
         * a random nearby index; worse moves are taken with a probability
         * that falls as the budget runs out. */
        size_t cur = 0;
        double cur_ms = INFINITY, temp = 0.3;
        while (tried < n && (o->budget_s <= 0 || now_s() - t0 < o->budget_s)) {
            seed = seed * 1103515245u + 12345u;
            size_t next = (cur + 1 + (seed >> 8) % (n < 5 ? n : 5)) % n;
            double ms;
            tried++;
            if (!try_candidate(ctx, c, d, state, cands[next].v, o->runs, &ms, log))
                continue;
            seed = seed * 1103515245u + 12345u;
            double u = (double)(seed >> 8) / 16777216.0;
            if (ms < cur_ms || u < exp(-(ms - cur_ms) / (cur_ms * temp + 1e-9))) {
                cur = next;
                cur_ms = ms;
            }
            keep_finalist(&fin, cands[next].v, ms);
            if (ms < best_ms) {
                best_ms = ms;
                memcpy(best, cands[next].v, sizeof best);
                have_best = 1;
            }
            temp *= 0.9;
        }
    } else {
        for (size_t i = 0; i < n; i++) {
            if (o->budget_s > 0 && now_s() - t0 >= o->budget_s) {
                fprintf(log, "  budget reached after %zu of %zu candidates\n", tried, n);
                break;
            }
            if (!builtin && memcmp(cands[i].v, defv, (size_t)d->ntunables * sizeof *defv) == 0)
                continue;
            double ms;
            tried++;
            if (!try_candidate(ctx, c, d, state, cands[i].v, o->runs, &ms, log))
                continue;
            keep_finalist(&fin, cands[i].v, ms);
            if (ms < best_ms) {
                best_ms = ms;
                memcpy(best, cands[i].v, sizeof best);
                have_best = 1;
            }
        }
    }
    if (!builtin && have_def && fin.n > 0) {
        candidate sets[FINALISTS + 1];
        double med[FINALISTS + 1];
        memcpy(sets[0].v, defv, sizeof defv);
        memcpy(sets + 1, fin.v, (size_t)fin.n * sizeof *sets);
        int w = confirm(ctx, c, d, state, sets, fin.n + 1, 2 * o->runs + 1, med, log);
        memcpy(best, sets[w].v, sizeof best);
        best_ms = med[w];
        def_ms = med[0];
    }
    if (!builtin)
        qg__program_override(ctx, d->name, NULL);
    c->release(state);
    free(cands);
    if (builtin && !have_best) {
        fprintf(log, "%s [%s]: no candidate beat the built-in parameters (%.3f ms); nothing "
                "stored\n", c->program, c->shape, def_ms);
        return QG_OK;
    }
    if (!have_best)
        return qg__error(ctx, QG_ERR_TUNE, "no candidate of program '%s' produced a correct "
                         "result on device '%s'", c->program, ctx->info.name);
    char p[512];
    fmt_params(d, best, p, sizeof p);
    double rate = c->work / (best_ms * 1e-3) / 1e9;
    fprintf(log, "%s [%s]: best %s %.3f ms (%.2f %s), default %.3f ms, speed-up %.2fx (%s)\n",
            c->program, c->shape, p, best_ms, rate, c->work_is_flops ? "GFLOP/s" : "GB/s",
            def_ms, def_ms / best_ms, builtin ? "min times" : "medians of the confirmation");
    qg_status st2 = QG_OK;
    if (!o->dry_run)
        st2 = qg__tunedb_store(ctx, c->program, c->db_shape ? c->db_shape : "*", best, best_ms,
                               def_ms);
    /* Leave the context running with the winner (CLBlast keeps the last
     * override; registry programs read it from the database). */
    if (st2 == QG_OK && builtin)
        st2 = c->apply(ctx, best);
    return st2;
}

qg_status qg__tune_run(qg_ctx *ctx, const qg_tune_opts *o)
{
    if (o->shapes_file)
        return qg__tune_run_shapes(ctx, o);
    size_t done = 0;
    for (size_t i = 0; i < qg__tune_case_count(); i++) {
        const qg_tune_case *c = qg__tune_case_at(i);
        if (o->kernel && strcmp(o->kernel, c->program) != 0)
            continue;
        qg_status st = qg__tune_case_run(ctx, c, o);
        if (st != QG_OK)
            return st;
        done++;
    }
    if (!done) {
        char names[512];
        qg__tune_case_names(names, sizeof names);
        return qg__error(ctx, QG_ERR_NOT_FOUND, "no tunable kernel named '%s' (known: %s)",
                         o->kernel ? o->kernel : "", names);
    }
    /* after conv_direct's and conv_masked's own search: where skipping
     * pays is weighed against the tuned kernels */
    if (!o->kernel || strcmp(o->kernel, "conv_masked") == 0)
        return qg__tune_convm_pays_builtin(ctx, o->runs > 0 ? o->runs : 5, o->dry_run,
                                           o->log ? o->log : stderr);
    return QG_OK;
}
