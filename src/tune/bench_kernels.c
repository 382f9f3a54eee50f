/* src/tune/bench_kernels.c: `qgate bench kernels` (see tuner.h): every
 * tune case timed with its program's default parameters and with the
 * tuned ones from the databases, after both were verified against the C
 * reference. Registry programs alternate default and tuned runs, so load
 * from other processes hits both alike; CLBlast cannot switch back to its
 * built-in parameters once overridden, so its default runs come first. */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "cl/tunedb.h"
#include "tune/tuner.h"

typedef struct variant {
    const char *label;          /* "default" or "tuned" */
    const long *values;         /* NULL: the library's built-in set (CLBlast) */
    char params[256];
    int ok;
    char note[1024];
    double *ms;                 /* samples */
    int n;
} variant;

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void fmt_values(const qg_program_desc *d, const long *v, char *buf, size_t cap)
{
    size_t off = 0;
    if (!v) {
        snprintf(buf, cap, "(built-in)");
        return;
    }
    buf[0] = 0;
    for (int i = 0; i < d->ntunables && off < cap; i++)
        off += (size_t)snprintf(buf + off, cap - off, "%s%s=%ld", i ? " " : "",
                                d->tunables[i].name, v[i]);
}

static qg_status apply(qg_ctx *ctx, const qg_tune_case *c, const qg_program_desc *d,
                       const long *values)
{
    if (!values)
        return c->builtin ? c->builtin(ctx) : QG_OK;
    return c->apply ? c->apply(ctx, values) : qg__program_override(ctx, d->name, values);
}

/* One timed run of variant v (after re-applying its parameters). */
static qg_status sample(qg_ctx *ctx, const qg_tune_case *c, const qg_program_desc *d,
                        void *state, variant *v, int record)
{
    double ms;
    qg_status st = apply(ctx, c, d, v->values);
    if (st == QG_OK)
        st = qg__tune_time_run(ctx, c, state, &ms);
    if (st == QG_OK && record)
        v->ms[v->n++] = ms;
    return st;
}

static void print_line(FILE *out, const qg_ctx *ctx, const qg_tune_case *c, const variant *v,
                       const variant *base)
{
    if (!v->ok) {
        fprintf(out, "%-44s %-14s %-9s %-8s FAILED: %s\n", ctx->info.key, c->program, c->shape,
                v->label, v->note);
        return;
    }
    qsort(v->ms, (size_t)v->n, sizeof *v->ms, cmp_double);
    double mn = v->ms[0], med = v->ms[v->n / 2];
    double rate = c->work / (mn * 1e-3) / 1e9;
    char sp[32] = "-";
    if (base && base->ok && base->n)
        snprintf(sp, sizeof sp, "%.2fx", base->ms[base->n / 2] / med);
    fprintf(out, "%-44s %-14s %-9s %-8s %9.3f %9.3f %9.2f %-7s %7s  %s\n", ctx->info.key,
            c->program, c->shape, v->label, mn, med, rate,
            c->work_is_flops ? "GFLOP/s" : "GB/s", sp, v->params);
}

static qg_status bench_case(qg_ctx *ctx, const qg_tune_case *c, int runs, FILE *out,
                            int *failures)
{
    const qg_program_desc *d = qg__tune_case_desc(c);
    void *state = NULL;
    long defv[QG_MAX_TUNABLES], tuned[QG_MAX_TUNABLES];
    variant vs[2];
    int nv = 1;
    qg_status st = QG_OK;
    if (!d)
        return qg__error(ctx, QG_ERR_NOT_FOUND, "bench case for unknown program '%s'",
                         c->program);
    for (int i = 0; i < d->ntunables; i++)
        defv[i] = d->tunables[i].def;
    memset(vs, 0, sizeof vs);
    vs[0].label = "default";
    vs[0].values = c->builtin ? NULL : defv;
    /* (a per-shape case's own entry: the class it is stored under) */
    if (qg__tunedb_lookup(ctx, d->id, c->db_shape ? c->db_shape : c->shape, tuned)) {
        vs[1].label = "tuned";
        vs[1].values = tuned;
        nv = 2;
    }
    for (int k = 0; k < nv; k++) {
        fmt_values(d, vs[k].values, vs[k].params, sizeof vs[k].params);
        vs[k].ms = calloc((size_t)runs, sizeof *vs[k].ms);
        if (!vs[k].ms) {
            st = qg__error(ctx, QG_ERR_NOMEM, "out of memory");
            goto fail;
        }
    }
    QG_TRY(c->prepare(ctx, &state));
    /* CLBlast: all default runs before the first override. Registry
     * programs: verify both, then alternate. */
    int alternate = c->builtin == NULL;
    for (int k = 0; k < nv; k++) {
        variant *v = &vs[k];
        if (apply(ctx, c, d, v->values) != QG_OK) {
            snprintf(v->note, sizeof v->note, "%s", qg_ctx_last_error(ctx));
            continue;
        }
        v->ok = qg__tune_verify(ctx, c, d, state, NULL, v->note, sizeof v->note);
        for (int r = 0; v->ok && !alternate && r <= runs; r++)
            if (sample(ctx, c, d, state, v, r > 0) != QG_OK) {
                snprintf(v->note, sizeof v->note, "%s", qg_ctx_last_error(ctx));
                v->ok = 0;
            }
    }
    for (int r = 0; alternate && r <= runs; r++)
        for (int k = 0; k < nv; k++)
            if (vs[k].ok && sample(ctx, c, d, state, &vs[k], r > 0) != QG_OK) {
                snprintf(vs[k].note, sizeof vs[k].note, "%s", qg_ctx_last_error(ctx));
                vs[k].ok = 0;
            }
    for (int k = 0; k < nv; k++) {
        print_line(out, ctx, c, &vs[k], k ? &vs[0] : NULL);
        if (!vs[k].ok)
            (*failures)++;
    }
    if (nv == 1)
        fprintf(out, "%-44s %-14s %-9s %-8s (no entry for this device in the tuning databases)\n",
                ctx->info.key, c->program, c->shape, "tuned");
    fflush(out);
fail:
    if (!c->builtin)
        qg__program_override(ctx, d->name, NULL);
    if (state)
        c->release(state);
    for (int k = 0; k < 2; k++)
        free(vs[k].ms);
    return st;
}

qg_status qg__bench_kernels(qg_ctx *ctx, const qg_bench_kernels_opts *o, int *failures)
{
    FILE *out = o->out ? o->out : stdout;
    size_t done = 0;
    *failures = 0;
    for (size_t i = 0; o->kernel && i < qg__tune_case_count(); i++)
        done += strcmp(o->kernel, qg__tune_case_at(i)->program) == 0;
    if (o->kernel && !done) {
        char names[512];
        qg__tune_case_names(names, sizeof names);
        return qg__error(ctx, QG_ERR_NOT_FOUND, "no benchmark case for kernel '%s' (known: %s)",
                         o->kernel, names);
    }
    fprintf(out, "%-44s %-14s %-9s %-8s %9s %9s %17s %7s  %s\n", "device", "kernel", "shape",
            "params", "min_ms", "median_ms", "rate (at min)", "speedup", "values");
    for (size_t i = 0; i < qg__tune_case_count(); i++) {
        const qg_tune_case *c = qg__tune_case_at(i);
        if (o->kernel && strcmp(o->kernel, c->program) != 0)
            continue;
        qg_status st = bench_case(ctx, c, o->runs, out, failures);
        if (st != QG_OK)
            return st;
    }
    return QG_OK;
}
