/* src/tune/cases_shapes.c: `qgate tune --shapes FILE`. Each conv entry of
 * the file (tune/shapes_file.h) becomes a conv_direct case: the built-in
 * one (cases.c) run on that shape through case_conv.c, searched as usual
 * and stored under the entry's shape class, which a conv plan looks up
 * before the "*" entry. Programs without per-shape cases are not tuned in
 * this mode, and the output says so. Tests: tests/test_tune_shapes.c. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "core/error.h"
#include "tune/cases.h"
#include "tune/shapes_file.h"
#include "tune/tuner.h"

/* The one program with per-shape cases so far. */
static const char per_shape_program[] = "conv_direct";

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
        if (strcmp(p, per_shape_program) != 0)
            off += (size_t)snprintf(buf + off, cap - off, "%s%s", off ? ", " : "", p);
    }
}

qg_status qg__tune_run_shapes(qg_ctx *ctx, const qg_tune_opts *o)
{
    FILE *log = o->log ? o->log : stderr;
    const qg_tune_case *base = builtin_case(per_shape_program);
    if (o->kernel && strcmp(o->kernel, per_shape_program) != 0)
        return qg__error(ctx, QG_ERR_NOT_FOUND, "--kernel %s: with --shapes FILE only %s has "
                         "per-shape cases ('%s' is tuned with --shapes model)", o->kernel,
                         per_shape_program, o->kernel);
    if (!base)
        return qg__error(ctx, QG_ERR_NOT_FOUND, "no built-in tune case for '%s'",
                         per_shape_program);
    qg_tune_shapes sh;
    qg_status st = qg__tune_shapes_load(ctx, o->shapes_file, &sh);
    if (st != QG_OK)
        return st;
    char skipped[512];
    untuned_names(skipped, sizeof skipped);
    fprintf(log, "shapes file %s: %zu conv shape%s, tuned for %s per shape class; not tuned "
            "in this mode (no per-shape cases): %s\n", o->shapes_file, sh.nconv,
            sh.nconv == 1 ? "" : "s", per_shape_program, skipped);
    fflush(log);
    for (size_t i = 0; i < sh.nconv && st == QG_OK; i++) {
        const qg_tune_conv_shape *s = &sh.conv[i];
        qg_tune_case c = *base;
        c.shape = c.db_shape = sh.conv_class[i];
        c.prepare = NULL;
        c.prepare_arg = conv_prepare;
        c.arg = s;
        c.work = qg__tune_conv_flops(s);
        fprintf(log, "[%zu/%zu] %s, n=%d c=%d k=%d h=%d w=%d stride=%d: shape class %s\n", i + 1,
                sh.nconv, per_shape_program, s->n, s->c, s->k, s->h, s->w, s->stride,
                sh.conv_class[i]);
        fflush(log);
        st = qg__tune_case_run(ctx, &c, o);
        if (st != QG_OK)
            qg__error_append(ctx, "shape class %s (conv[%zu] of shapes file '%s')",
                             sh.conv_class[i], i, o->shapes_file);
    }
    if (st == QG_OK)
        fprintf(log, "shapes file %s: %zu shape class%s of %s %s\n", o->shapes_file, sh.nconv,
                sh.nconv == 1 ? "" : "es", per_shape_program,
                o->dry_run ? "tuned (dry run: nothing stored)"
                           : "stored; other shapes use the \"*\" entry or the defaults");
    qg__tune_shapes_free(&sh);
    return st;
}
