/* tests/test_program.c: kernel registry, program builds, the binary cache
 * and the errors of each failure mode. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "support/support.h"
#include "cl/ctx.h"

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
        QG_EXPECT_OK(qg__program_build_current(ctx, d->name));
    }
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
    cr_expect_eq(qg__kernel_current(ctx, "eltwise", "qg_nope", &k, NULL, NULL), QG_ERR_CL);
    cr_expect_neq(strstr(qg_ctx_last_error(ctx), "CL_INVALID_KERNEL_NAME"), NULL, "%s",
                  qg_ctx_last_error(ctx));
    qg_ctx_free(ctx);
}
