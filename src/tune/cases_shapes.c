/* src/tune/cases_shapes.c: `qgate tune --shapes FILE`. Each conv entry of
 * the file (tune/shapes_file.h) becomes a conv_direct case: the built-in
 * one (cases.c) run on that shape through case_conv.c, searched as usual
 * and stored under the entry's shape class, which a conv plan looks up
 * before the "*" entry. Then, for each ungrouped shape, where the
 * output-masked conv stops paying against that tuned dense conv is
 * measured and stored as conv_masked's PAY of the class (convm_pays.c).
 * Programs without per-shape cases are not tuned in this mode, and the
 * output says so. Tests: tests/test_tune_shapes.c. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "core/error.h"
#include "tune/cases.h"
#include "tune/shapes_file.h"
#include "tune/tuner.h"

/* The programs with per-shape cases: conv_direct searched as usual, and
 * conv_masked's PAY measured (convm_pays.c) after it, as it weighs the
 * masked conv against the tuned dense one. */
static const char per_shape_program[] = "conv_direct";
static const char pays_program[] = "conv_masked";

static qg_status conv_prepare(qg_ctx *ctx, const void *arg, void **state)
{
    return qg__tune_conv_prepare(ctx, arg, state);
}

static const qg_tune_case *builtin_case(const char *program)
{
    for (size_t i = 0; i < qg__tune_case_count(); i++)
        if (strcmp(qg__tune_case_at(i)->program, program) == 0)
            return qg__tune_case_at(i);
    return NULL;
}

/* "clblast_xgemm, im2col, ...": the programs this mode leaves alone. */
static void untuned_names(char *buf, size_t cap)
{
    size_t off = 0;
    buf[0] = 0;
    for (size_t i = 0; i < qg__tune_case_count() && off < cap; i++) {
        const char *p = qg__tune_case_at(i)->program;
        if (strcmp(p, per_shape_program) != 0 && strcmp(p, pays_program) != 0)
            off += (size_t)snprintf(buf + off, cap - off, "%s%s", off ? ", " : "", p);
    }
}

static qg_status tune_direct(qg_ctx *ctx, const qg_tune_case *base, const qg_tune_shapes *sh,
                             const qg_tune_opts *o, FILE *log)
{
    qg_status st = QG_OK;
    for (size_t i = 0; i < sh->nconv && st == QG_OK; i++) {
        const qg_tune_conv_shape *s = &sh->conv[i];
        qg_tune_case c = *base;
        c.shape = c.db_shape = sh->conv_class[i];
        c.prepare = NULL;
        c.prepare_arg = conv_prepare;
        c.arg = s;
        c.work = qg__tune_conv_flops(s);
        fprintf(log, "[%zu/%zu] %s, n=%d c=%d k=%d h=%d w=%d stride=%d: shape class %s\n", i + 1,
                sh->nconv, per_shape_program, s->n, s->c, s->k, s->h, s->w, s->stride,
                sh->conv_class[i]);
        fflush(log);
        st = qg__tune_case_run(ctx, &c, o);
        if (st != QG_OK)
            qg__error_append(ctx, "shape class %s (conv[%zu] of shapes file '%s')",
                             sh->conv_class[i], i, o->shapes_file);
    }
    return st;
}

/* PAY of every ungrouped shape the masked conv takes (grouped ones and
 * 1-channel stems are no gated layer's conditional path). */
static qg_status tune_pays(qg_ctx *ctx, const qg_tune_shapes *sh, const qg_tune_opts *o,
                           FILE *log, size_t *done)
{
    qg_status st = QG_OK;
    *done = 0;
    for (size_t i = 0; i < sh->nconv && st == QG_OK; i++) {
        const qg_tune_conv_shape *s = &sh->conv[i];
        if (s->groups > 1 || s->stride > 2)
            continue;
        int pay;
        st = qg__tune_convm_pays(ctx, s, o->runs > 0 ? o->runs : 5, o->dry_run, log, &pay);
        if (st != QG_OK)
            qg__error_append(ctx, "measuring where skipping pays for shape class %s (conv[%zu] "
                             "of shapes file '%s')", sh->conv_class[i], i, o->shapes_file);
        else
            (*done)++;
    }
    return st;
}

qg_status qg__tune_run_shapes(qg_ctx *ctx, const qg_tune_opts *o)
{
    FILE *log = o->log ? o->log : stderr;
    const qg_tune_case *base = builtin_case(per_shape_program);
    int direct = !o->kernel || strcmp(o->kernel, per_shape_program) == 0;
    int pays = !o->kernel || strcmp(o->kernel, pays_program) == 0;
    if (!direct && !pays)
        return qg__error(ctx, QG_ERR_NOT_FOUND, "--kernel %s: with --shapes FILE only %s and "
                         "%s have per-shape cases ('%s' is tuned with --shapes model)",
                         o->kernel, per_shape_program, pays_program, o->kernel);
    if (!base)
        return qg__error(ctx, QG_ERR_NOT_FOUND, "no built-in tune case for '%s'",
                         per_shape_program);
    qg_tune_shapes sh;
    qg_status st = qg__tune_shapes_load(ctx, o->shapes_file, &sh);
    if (st != QG_OK)
        return st;
    char skipped[512];
    untuned_names(skipped, sizeof skipped);
    fprintf(log, "shapes file %s: %zu conv shape%s, tuned per shape class: %s; not tuned "
            "in this mode (no per-shape cases): %s\n", o->shapes_file, sh.nconv,
            sh.nconv == 1 ? "" : "s",
            direct && pays ? "conv_direct, then where conv_masked's skipping pays"
            : direct       ? "conv_direct"
                           : "where conv_masked's skipping pays",
            skipped);
    fflush(log);
    if (direct)
        st = tune_direct(ctx, base, &sh, o, log);
    size_t npays = 0;
    if (st == QG_OK && pays)
        st = tune_pays(ctx, &sh, o, log, &npays);
    if (st == QG_OK)
        fprintf(log, "shapes file %s: %zu shape class%s of %s%s, %zu PAY value%s of %s %s\n",
                o->shapes_file, direct ? sh.nconv : 0, direct && sh.nconv == 1 ? "" : "es",
                per_shape_program, direct ? "" : " (not asked)", npays, npays == 1 ? "" : "s",
                pays_program,
                o->dry_run ? "measured (dry run: nothing stored)"
                           : "stored; other shapes use the \"*\" entry or the defaults");
    qg__tune_shapes_free(&sh);
    return st;
}
