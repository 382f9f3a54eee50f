/* tests/test_tune.c: tuning database lookup order, corrupt and foreign
 * databases, atomic store, and the tuner: verified winners, a candidate
 * that fails to build is skipped, not fatal. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "support/support.h"
#include "cl/ctx.h"
#include "tune/tunedb.h"
#include "tune/tuner.h"

TestSuite(tune);

static char *tmp(const char *name)
{
    static char buf[4][512];
    static int k;
    char *b = buf[k++ % 4];
    snprintf(b, 512, "%s/qgate-tune-%ld-%s", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp",
             (long)getpid(), name);
    return b;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
}

static qg_ctx *ctx_with_db(const char *db)
{
    qg_ctx *ctx;
    qg_ctx_opts o = {.tune_db = db, .profiling = 1};
    QG_EXPECT_OK(qg_ctx_new(&o, &ctx));
    return ctx;
}

static long current_wg(qg_ctx *ctx, const char *program)
{
    long v[QG_MAX_TUNABLES];
    int n;
    QG_EXPECT_OK(qg__program_params(ctx, program, v, &n));
    return v[0];
}

Test(tune, lookup_prefers_user_db_then_defaults)
{
    char *db = tmp("user.json");
    qg_ctx *ctx = ctx_with_db(db);
    unlink(db);
    cr_expect_eq(current_wg(ctx, "eltwise"), 64, "default from the registry");
    char text[1024];
    snprintf(text, sizeof text, "{\"schema\": 1, \"entries\": [{\"device\": \"%s\", "
             "\"program\": \"eltwise\", \"shape\": \"*\", \"params\": {\"WG\": 256}}, "
             "{\"device\": \"some-other-gpu|1.0\", \"program\": \"reduce\", \"shape\": \"*\", "
             "\"params\": {\"WG\": 16}}]}", qg_ctx_device(ctx)->key);
    write_file(db, text);
    qg__tunedb_reset(ctx);
    cr_expect_eq(current_wg(ctx, "eltwise"), 256, "user DB entry for this device");
    cr_expect_eq(current_wg(ctx, "reduce"), 64, "another device's entry must not apply");
    long ov = 32;
    QG_EXPECT_OK(qg__program_override(ctx, "eltwise", &ov));
    cr_expect_eq(current_wg(ctx, "eltwise"), 32, "explicit override beats the DB");
    qg_ctx_free(ctx);
}

Test(tune, corrupt_and_foreign_databases_are_reported_and_ignored)
{
    char *db = tmp("corrupt.json");
    write_file(db, "{\"schema\": 1, \"entries\": [ {oops");
    qg_ctx *ctx = ctx_with_db(db);
    cr_expect_eq(current_wg(ctx, "eltwise"), 64);
    cr_expect_neq(strstr(qg__tunedb_warnings(ctx), "corrupt"), NULL, "%s",
                  qg__tunedb_warnings(ctx));
    cr_expect_neq(strstr(qg__tunedb_warnings(ctx), db), NULL);
    qg_ctx_free(ctx);

    write_file(db, "{\"schema\": 99, \"entries\": []}");
    ctx = ctx_with_db(db);
    cr_expect_eq(current_wg(ctx, "eltwise"), 64);
    cr_expect_neq(strstr(qg__tunedb_warnings(ctx), "schema"), NULL, "%s",
                  qg__tunedb_warnings(ctx));
    qg_ctx_free(ctx);
}

Test(tune, invalid_entry_is_ignored)
{
    char *db = tmp("invalid.json");
    qg_ctx *ctx = ctx_with_db(db);
    char text[512];
    snprintf(text, sizeof text, "{\"schema\": 1, \"entries\": [{\"device\": \"%s\", "
             "\"program\": \"reduce\", \"params\": {\"WG\": 48}}]}", qg_ctx_device(ctx)->key);
    write_file(db, text);
    qg__tunedb_reset(ctx);
    cr_expect_eq(current_wg(ctx, "reduce"), 64, "WG=48 violates the constraint");
    qg_ctx_free(ctx);
}

Test(tune, store_then_lookup_round_trip)
{
    char *db = tmp("store.json");
    unlink(db);
    qg_ctx *ctx = ctx_with_db(db);
    long v = 128;
    QG_EXPECT_OK(qg__tunedb_store(ctx, "reduce", "*", &v, 1.5, 2.0));
    cr_expect_eq(current_wg(ctx, "reduce"), 128);
    v = 256;
    QG_EXPECT_OK(qg__tunedb_store(ctx, "reduce", "*", &v, 1.0, 2.0));
    cr_expect_eq(current_wg(ctx, "reduce"), 256, "a new result replaces the old entry");
    qg_ctx_free(ctx);
    ctx = ctx_with_db(db);
    cr_expect_eq(current_wg(ctx, "reduce"), 256, "persisted across contexts");
    qg_ctx_free(ctx);
}

Test(tune, tuner_writes_a_verified_winner_and_skips_build_failures)
{
    char *db = tmp("tuner.json");
    unlink(db);
    /* A reduce.cl that refuses WG=32 at build time (the registry allows
     * it), so the tuner meets a failing candidate. */
    char dir[512];
    snprintf(dir, sizeof dir, "%s", tmp("kdir"));
    cr_assert_eq(mkdir(dir, 0755), 0);
    for (size_t i = 0; i < qg__cl_source_count; i++) {
        char path[600];
        snprintf(path, sizeof path, "%s/%s.cl", dir, qg__cl_sources[i].name);
        FILE *f = fopen(path, "w");
        cr_assert_not_null(f);
        if (strcmp(qg__cl_sources[i].name, "reduce") == 0)
            fputs("#if WG == 32\n#error \"refusing WG 32 for the test\"\n#endif\n", f);
        fputs((const char *)qg__cl_sources[i].bytes, f);
        fclose(f);
    }
    qg_ctx *ctx;
    qg_ctx_opts o = {.tune_db = db, .profiling = 1, .kernel_dir = dir, .cache_dir = ""};
    QG_EXPECT_OK(qg_ctx_new(&o, &ctx));
    char *log = NULL;
    size_t loglen = 0;
    FILE *lf = open_memstream(&log, &loglen);
    qg_tune_opts to = {.kernel = "reduce", .budget_s = 60, .runs = 1, .log = lf};
    QG_EXPECT_OK(qg__tune_run(ctx, &to));
    fclose(lf);
    cr_expect_neq(strstr(log, "skip WG=32"), NULL, "no skip note in:\n%s", log);
    cr_expect_neq(strstr(log, "best WG="), NULL, "%s", log);
    long wg = current_wg(ctx, "reduce");
    cr_expect_neq(wg, 32);
    FILE *f = fopen(db, "r");
    cr_expect_not_null(f, "database not written");
    if (f)
        fclose(f);
    free(log);
    cr_expect_eq(qg__tune_run(ctx, &(qg_tune_opts){.kernel = "nope", .runs = 1,
                                                   .log = stderr}), QG_ERR_NOT_FOUND);
    qg_ctx_free(ctx);
}

Test(tune, shipped_database_is_used_after_the_user_db)
{
    char *dir = tmp("shipped");
    char sub[600], file[700];
    snprintf(sub, sizeof sub, "%s/tuning", dir);
    cr_assert_eq(mkdir(dir, 0755), 0);
    cr_assert_eq(mkdir(sub, 0755), 0);
    char *db = tmp("empty-user.json");
    unlink(db);
    setenv("QGATE_DATA_DIR", dir, 1);
    qg_ctx *ctx = ctx_with_db(db);
    char text[1024];
    snprintf(text, sizeof text, "{\"schema\": 1, \"entries\": [{\"device\": \"%s\", "
             "\"program\": \"reduce\", \"params\": {\"WG\": 128}}, {\"device\": \"%s\", "
             "\"program\": \"eltwise\", \"params\": {\"WG\": 32}}]}", qg_ctx_device(ctx)->key,
             qg_ctx_device(ctx)->key);
    snprintf(file, sizeof file, "%s/pocl.json", sub);
    write_file(file, text);
    qg__tunedb_reset(ctx);
    cr_expect_eq(current_wg(ctx, "reduce"), 128, "shipped entry applies");
    snprintf(text, sizeof text, "{\"schema\": 1, \"entries\": [{\"device\": \"%s\", "
             "\"program\": \"eltwise\", \"params\": {\"WG\": 256}}]}", qg_ctx_device(ctx)->key);
    write_file(db, text);
    qg__tunedb_reset(ctx);
    cr_expect_eq(current_wg(ctx, "eltwise"), 256, "the user DB wins over the shipped one");
    cr_expect_eq(current_wg(ctx, "reduce"), 128);
    qg_ctx_free(ctx);
    unsetenv("QGATE_DATA_DIR");
}
