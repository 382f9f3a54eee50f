/* tests/test_program.c: kernel registry, program builds, the binary cache,
 * kernels by id (resolved once, again after an override; argument count
 * checked at launch) and the errors of each failure mode. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "support/support.h"
#include "cl/ctx.h"
#include "tensor/tensor_impl.h"

TestSuite(program);

static void tmpdir(char *buf, size_t cap, const char *tag)
{
    snprintf(buf, cap, "%s/qgate-test-%s-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp",
             tag);
    cr_assert_not_null(mkdtemp(buf));
}

static void write_text(const char *dir, const char *name, const char *text)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
}

static void copy_embedded(const char *dir, const char *name)
{
    for (size_t i = 0; i < qg__cl_source_count; i++)
        if (strcmp(qg__cl_sources[i].name, name) == 0) {
            char file[128];
            snprintf(file, sizeof file, "%s.cl", name);
            write_text(dir, file, (const char *)qg__cl_sources[i].bytes);
            return;
        }
    cr_assert_fail("no embedded source %s", name);
}

Test(program, every_registered_program_is_embedded_and_builds)
{
    qg_ctx *ctx;
    qg_ctx_opts o = {.cache_dir = ""};
    QG_EXPECT_OK(qg_ctx_new(&o, &ctx));
    cr_assert_gt(qg__program_count(), 0);
    for (size_t i = 0; i < qg__program_count(); i++) {
        const qg_program_desc *d = qg__program_at(i);
        cr_expect_eq(d->id, (qg_prog_id)i, "registry entry %zu ('%s') has id %d", i, d->name,
                     (int)d->id);
        if (d->external)
            cr_expect_eq(qg__program_build_current(ctx, d->name), QG_ERR_INVALID_ARG);
        else
            QG_EXPECT_OK(qg__program_build_current(ctx, d->name));
    }
    qg_ctx_free(ctx);
}

/* cl/kernels.h lists each program's kernels: exactly those its source
 * defines (CL_PROGRAM_KERNEL_NAMES of the built program), and every one is
 * created with its argument count. */
Test(program, kernel_ids_match_the_kernels_of_each_program)
{
    qg_ctx *ctx;
    qg_ctx_opts o = {.cache_dir = ""};
    QG_EXPECT_OK(qg_ctx_new(&o, &ctx));
    for (size_t i = 0; i < qg__program_count(); i++) {
        const qg_program_desc *d = qg__program_at(i);
        qg_variant *v;
        QG_EXPECT_OK(qg__variant_current(ctx, d->id, &v));
        int listed = 0;
        for (int k = 0; k < QG_K_COUNT; k++) {
            if (qg__kernel_program((qg_kernel_id)k) != d->id)
                continue;
            listed++;
            qg_kargs a;
            cr_expect_eq(qg__kargs_get(ctx, (qg_kernel_id)k, &a, NULL), QG_OK, "%s: %s",
                         qg__kernel_name((qg_kernel_id)k), qg_ctx_last_error(ctx));
            cr_expect_gt(a.nargs, 0, "%s", a.name);
            cr_expect_str_eq(a.name, qg__kernel_name((qg_kernel_id)k));
        }
        if (d->external) {
            cr_expect_eq(listed, 0, "'%s' has no cl/ kernels", d->name);
            continue;
        }
        char names[4096] = "";
        cr_assert_eq(clGetProgramInfo(v->program, CL_PROGRAM_KERNEL_NAMES, sizeof names, names,
                                      NULL), CL_SUCCESS);
        int in_source = 0;
        for (char *save = NULL, *t = strtok_r(names, ";", &save); t;
             t = strtok_r(NULL, ";", &save)) {
            in_source++;
            int found = 0;
            for (int k = 0; k < QG_K_COUNT; k++)
                found |= qg__kernel_program((qg_kernel_id)k) == d->id &&
                         strcmp(qg__kernel_name((qg_kernel_id)k), t) == 0;
            cr_expect(found, "kernel %s of cl/%s.cl has no qg_kernel_id", t, d->name);
        }
        cr_expect_eq(listed, in_source, "cl/%s.cl: %d kernels, %d ids", d->name, in_source,
                     listed);
    }
    qg_ctx_free(ctx);
}

/* The tunable enums of cl/kernels.h index the registry's tunables. */
Test(program, tunable_enums_name_the_registry_entries)
{
    static const struct {
        qg_prog_id p;
        int i;
        const char *name;
    } rows[] = {
        {QG_PROG_QUANT, QG_QUANT_CHUNK, "CHUNK"}, {QG_PROG_QUANT, QG_QUANT_VW, "VW"},
        {QG_PROG_CG, QG_CG_VW, "VW"}, {QG_PROG_BN, QG_BN_VW, "VW"},
        {QG_PROG_BN, QG_BN_PARTS, "PARTS"}, {QG_PROG_SHORTCUT, QG_SHORTCUT_ROW, "ROW"},
        {QG_PROG_CONV_DIRECT, QG_DIRECT_VW, "VW"}, {QG_PROG_CONV_DIRECT, QG_DIRECT_JT, "JT"},
        {QG_PROG_CONV_DIRECT, QG_DIRECT_KT, "KT"}, {QG_PROG_CONV_DIRECT, QG_DIRECT_WKT, "WKT"},
        {QG_PROG_CONV_DIRECT, QG_DIRECT_WN, "WN"},
        {QG_PROG_CLBLAST_XGEMM, QG_XGEMM_GEMMK, "GEMMK"},
        {QG_PROG_CLBLAST_XGEMM, QG_XGEMM_MWG, "MWG"},
        {QG_PROG_CLBLAST_XGEMM, QG_XGEMM_VWN, "VWN"},
    };
    for (size_t r = 0; r < sizeof rows / sizeof *rows; r++)
        cr_expect_str_eq(qg__program_desc(rows[r].p)->tunables[rows[r].i].name, rows[r].name);
    cr_expect_eq(qg__program_desc(QG_PROG_QUANT)->ntunables, QG_QUANT_NP);
    cr_expect_eq(qg__program_desc(QG_PROG_BN)->ntunables, QG_BN_NP);
    cr_expect_eq(qg__program_desc(QG_PROG_CONV_DIRECT)->ntunables, QG_DIRECT_NP);
    cr_expect_eq(qg__program_desc(QG_PROG_CLBLAST_XGEMM)->ntunables, QG_XGEMM_NP);
    for (size_t i = 0; i < qg__program_count(); i++) {
        const qg_program_desc *d = qg__program_at(i);
        if (!d->external)
            cr_expect_str_eq(d->tunables[QG_P_WG].name, "WG", "program '%s'", d->name);
    }
}

/* A kernel is resolved and created once; later gets return the same
 * handle without building. An override resolves it again (another
 * build), clearing the override returns to the first variant. */
Test(program, kernels_resolve_once_and_again_after_an_override)
{
    /* No database: the registry's defaults apply. */
    qg_ctx *ctx = qg_test_ctx_with_db(qg_test_tmp_path("program", "absent.json"));
    qg_build_stats bs;
    qg_kargs a;
    size_t wg = 0;
    QG_EXPECT_OK(qg__kargs_get(ctx, QG_K_ELTWISE_ADD, &a, &wg));
    cl_kernel first = a.k;
    cr_expect_eq(wg, 64);
    cr_expect_eq(a.nargs, 7, "qg_eltwise_add(x0, off, x1, off, y, off, n)");
    for (int i = 0; i < 3; i++) {
        QG_EXPECT_OK(qg__kargs_get(ctx, QG_K_ELTWISE_ADD, &a, &wg));
        cr_expect_eq(a.k, first);
    }
    qg_ctx_build_stats(ctx, &bs);
    cr_expect_eq(bs.programs_built + bs.programs_loaded, 1);

    long w = 128;
    QG_EXPECT_OK(qg__program_override(ctx, "eltwise", &w));
    QG_EXPECT_OK(qg__kargs_get(ctx, QG_K_ELTWISE_ADD, &a, &wg));
    cr_expect_eq(wg, 128);
    cr_expect_neq(a.k, first, "the override must take effect at the next launch");
    qg_ctx_build_stats(ctx, &bs);
    cr_expect_eq(bs.programs_built + bs.programs_loaded, 2);

    QG_EXPECT_OK(qg__program_override(ctx, "eltwise", NULL));
    QG_EXPECT_OK(qg__kargs_get(ctx, QG_K_ELTWISE_ADD, &a, &wg));
    cr_expect_eq(wg, 64);
    cr_expect_eq(a.k, first, "the first variant is reused");
    qg_ctx_build_stats(ctx, &bs);
    cr_expect_eq(bs.programs_built + bs.programs_loaded, 2);
    qg_ctx_free(ctx);
}

/* Shape classes resolve once each; an override applies to every class. */
Test(program, shape_classes_are_cached_and_overrides_reach_them)
{
    qg_ctx *ctx = qg_test_ctx_with_db(qg_test_tmp_path("program", "absent.json"));
    qg_variant *a, *b, *a2;
    QG_EXPECT_OK(qg__variant_shape(ctx, QG_PROG_CONV_DIRECT, "c16k16h32w32s1", &a));
    QG_EXPECT_OK(qg__variant_shape(ctx, QG_PROG_CONV_DIRECT, "c32k32h16w16s1", &b));
    QG_EXPECT_OK(qg__variant_shape(ctx, QG_PROG_CONV_DIRECT, "c16k16h32w32s1", &a2));
    cr_expect_eq(a, a2);
    long set[QG_DIRECT_NP] = {2, 8, 1, 4, 1, 2};
    QG_EXPECT_OK(qg__program_override(ctx, "conv_direct", set));
    QG_EXPECT_OK(qg__variant_shape(ctx, QG_PROG_CONV_DIRECT, "c16k16h32w32s1", &a2));
    QG_EXPECT_OK(qg__variant_shape(ctx, QG_PROG_CONV_DIRECT, "c32k32h16w16s1", &b));
    for (int i = 0; i < QG_DIRECT_NP; i++) {
        cr_expect_eq(a2->values[i], set[i]);
        cr_expect_eq(b->values[i], set[i]);
    }
    cr_expect_eq(a2, b, "equal values share one variant");
    qg_ctx_free(ctx);
}

/* A launch with an argument left unset fails naming the kernel and both
 * counts, before anything is enqueued. */
Test(program, launch_checks_the_argument_count)
{
    qg_ctx *ctx;
    qg_ctx_opts o = {.cache_dir = ""};
    QG_EXPECT_OK(qg_ctx_new(&o, &ctx));
    qg_tensor *y;
    int64_t shape[1] = {16};
    QG_EXPECT_OK(qg_tensor_new(ctx, 1, shape, QG_DTYPE_F32, "y", &y));
    qg_kargs a;
    size_t wg, g = 16;
    QG_EXPECT_OK(qg__kargs_get(ctx, QG_K_ELTWISE_FILL, &a, &wg));
    qg__karg_tensor(&a, y); /* y and its offset; the value and n are missing */
    cr_expect_eq(qg__kargs_launch(&a, 1, &g, &wg), QG_ERR_INVALID_ARG);
    const char *e = qg_ctx_last_error(ctx);
    cr_expect_neq(strstr(e, "qg_eltwise_fill"), NULL, "%s", e);
    cr_expect_neq(strstr(e, "takes 4 arguments, but 2 were set"), NULL, "%s", e);
    QG_EXPECT_OK(qg__kargs_get(ctx, QG_K_ELTWISE_FILL, &a, &wg));
    qg__karg_tensor(&a, y);
    qg__karg_float(&a, 1.0f);
    qg__karg_int(&a, 16);
    QG_EXPECT_OK(qg__kargs_launch(&a, 1, &g, &wg));
    qg_tensor_free(y);
    qg_ctx_free(ctx);
}

Test(program, second_context_loads_binaries_from_disk_cache)
{
    char dir[256];
    tmpdir(dir, sizeof dir, "cache");
    qg_ctx_opts o = {.cache_dir = dir};
    qg_ctx *ctx;
    qg_build_stats bs;
    QG_EXPECT_OK(qg_ctx_new(&o, &ctx));
    QG_EXPECT_OK(qg__program_build_current(ctx, "eltwise"));
    qg_ctx_build_stats(ctx, &bs);
    cr_expect_eq(bs.programs_built, 1);
    cr_expect_eq(bs.programs_loaded, 0);
    qg_ctx_free(ctx);

    QG_EXPECT_OK(qg_ctx_new(&o, &ctx));
    QG_EXPECT_OK(qg__program_build_current(ctx, "eltwise"));
    qg_ctx_build_stats(ctx, &bs);
    cr_expect_eq(bs.programs_built, 0, "warm run rebuilt the program");
    cr_expect_eq(bs.programs_loaded, 1);
    /* Different options are a different binary. */
    qg_kparam p = {"WG", 128};
    QG_EXPECT_OK(qg__program_build(ctx, "eltwise", &p, 1));
    qg_ctx_build_stats(ctx, &bs);
    cr_expect_eq(bs.programs_built, 1);
    qg_ctx_free(ctx);
}

Test(program, corrupt_cache_file_falls_back_to_source)
{
    char dir[256];
    tmpdir(dir, sizeof dir, "corrupt");
    qg_ctx_opts o = {.cache_dir = dir};
    qg_ctx *ctx;
    QG_EXPECT_OK(qg_ctx_new(&o, &ctx));
    QG_EXPECT_OK(qg__program_build_current(ctx, "reduce"));
    qg_ctx_free(ctx);
    /* Overwrite every cached binary with garbage that keeps the header. */
    char cmd[600];
    snprintf(cmd, sizeof cmd, "for f in %s/*.bin; do head -c 300 \"$f\" > \"$f.x\"; "
             "printf garbage >> \"$f.x\"; mv \"$f.x\" \"$f\"; done", dir);
    cr_assert_eq(system(cmd), 0);
    QG_EXPECT_OK(qg_ctx_new(&o, &ctx));
    QG_EXPECT_OK(qg__program_build_current(ctx, "reduce"));
    qg_ctx_free(ctx);
}

Test(program, missing_kernel_source_names_the_file)
{
    char dir[256];
    tmpdir(dir, sizeof dir, "missing");
    copy_embedded(dir, "common");
    qg_ctx_opts o = {.kernel_dir = dir, .cache_dir = ""};
    qg_ctx *ctx;
    QG_EXPECT_OK(qg_ctx_new(&o, &ctx));
    cr_assert_eq(qg__program_build_current(ctx, "eltwise"), QG_ERR_IO);
    const char *e = qg_ctx_last_error(ctx);
    cr_expect_neq(strstr(e, "eltwise.cl"), NULL, "error does not name the file: %s", e);
    qg_ctx_free(ctx);
}

Test(program, corrupted_kernel_source_reports_build_log)
{
    char dir[256];
    tmpdir(dir, sizeof dir, "broken");
    copy_embedded(dir, "common");
    write_text(dir, "eltwise.cl", "__kernel void qg_eltwise_fill(__global float *y) "
                                  "{ y[0] = undeclared_thing; }\n");
    qg_ctx_opts o = {.kernel_dir = dir, .cache_dir = ""};
    qg_ctx *ctx;
    QG_EXPECT_OK(qg_ctx_new(&o, &ctx));
    cr_assert_eq(qg__program_build_current(ctx, "eltwise"), QG_ERR_BUILD);
    const char *e = qg_ctx_last_error(ctx);
    cr_expect_neq(strstr(e, "eltwise"), NULL, "%s", e);
    cr_expect_neq(strstr(e, "CL_BUILD_PROGRAM_FAILURE"), NULL, "%s", e);
    cr_expect_neq(strstr(e, "undeclared_thing"), NULL, "build log missing: %s", e);
    qg_ctx_free(ctx);
}

Test(program, failing_build_option_reports_options_and_log)
{
    qg_ctx *ctx;
    qg_ctx_opts o = {.cache_dir = ""};
    QG_EXPECT_OK(qg_ctx_new(&o, &ctx));
    /* reduce.cl refuses a non-power-of-two work-group with #error. */
    qg_kparam p = {"WG", 48};
    cr_assert_eq(qg__program_build(ctx, "reduce", &p, 1), QG_ERR_BUILD);
    const char *e = qg_ctx_last_error(ctx);
    cr_expect_neq(strstr(e, "-DWG=48"), NULL, "options missing: %s", e);
    cr_expect_neq(strstr(e, "power of two"), NULL, "#error text missing: %s", e);
    /* The registry check refuses it before any build. */
    long v = 48;
    cr_expect_eq(qg__program_override(ctx, "reduce", &v), QG_ERR_INVALID_ARG);
    cr_expect_eq(qg__program_override(ctx, "no-such-program", &v), QG_ERR_NOT_FOUND);
    qg_ctx_free(ctx);
}

Test(program, options_are_sorted_and_validated)
{
    qg_ctx *ctx;
    qg_ctx_opts o = {.cache_dir = "", .kernel_dir = NULL};
    QG_EXPECT_OK(qg_ctx_new(&o, &ctx));
    qg_kparam bad[2] = {{"WG", 64}, {"WG", 32}};
    cr_expect_eq(qg__program_build(ctx, "eltwise", bad, 2), QG_ERR_INVALID_ARG);
    qg_kparam inj = {"WG -DEVIL", 1};
    cr_expect_eq(qg__program_build(ctx, "eltwise", &inj, 1), QG_ERR_INVALID_ARG);
    /* Same parameters in another order reuse the same program. */
    qg_kparam ab[2] = {{"ZZ", 1}, {"AA", 2}}, ba[2] = {{"AA", 2}, {"ZZ", 1}};
    qg_build_stats bs;
    QG_EXPECT_OK(qg__program_build(ctx, "eltwise", ab, 2));
    QG_EXPECT_OK(qg__program_build(ctx, "eltwise", ba, 2));
    qg_ctx_build_stats(ctx, &bs);
    cr_expect_eq(bs.programs_built, 1);
    qg_ctx_free(ctx);
}

Test(program, unknown_kernel_name_is_reported)
{
    qg_ctx *ctx;
    qg_ctx_opts o = {.cache_dir = ""};
    QG_EXPECT_OK(qg_ctx_new(&o, &ctx));
    cl_kernel k;
    cr_expect_eq(qg__kernel_get(ctx, "eltwise", NULL, 0, "qg_nope", &k), QG_ERR_CL);
    cr_expect_neq(strstr(qg_ctx_last_error(ctx), "CL_INVALID_KERNEL_NAME"), NULL, "%s",
                  qg_ctx_last_error(ctx));
    qg_ctx_free(ctx);
}
