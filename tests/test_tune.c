/* tests/test_tune.c: tuning database lookup order, corrupt and foreign
 * databases, atomic store, and the tuner: verified winners, a candidate
 * that fails to build is skipped, not fatal, a wrong-but-fast one never
 * wins; every program has a tune case that verifies under its default
 * and two other parameter sets; qgate bench kernels' lines. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "support/support.h"
#include "cl/ctx.h"
#include "gemm/gemm.h"
#include "cl/tunedb.h"
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
    qg_ctx *ctx = qg_test_ctx_with_db(db);
    unlink(db);
    cr_expect_eq(current_wg(ctx, "eltwise"), 64, "default from the registry");
    char text[1024];
    snprintf(text, sizeof text, "{\"schema\": 1, \"entries\": [{\"device\": \"%s\", "
             "\"program\": \"eltwise\", \"shape\": \"*\", \"params\": {\"WG\": 256}}, "
             "{\"device\": \"some-other-gpu|1.0\", \"program\": \"reduce\", \"shape\": \"*\", "
             "\"params\": {\"WG\": 16}}]}", qg_ctx_device(ctx)->key);
    qg_test_write_text(db, text);
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
    qg_test_write_text(db, "{\"schema\": 1, \"entries\": [ {oops");
    qg_ctx *ctx = qg_test_ctx_with_db(db);
    cr_expect_eq(current_wg(ctx, "eltwise"), 64);
    cr_expect_neq(strstr(qg__tunedb_warnings(ctx), "corrupt"), NULL, "%s",
                  qg__tunedb_warnings(ctx));
    cr_expect_neq(strstr(qg__tunedb_warnings(ctx), db), NULL);
    qg_ctx_free(ctx);

    qg_test_write_text(db, "{\"schema\": 99, \"entries\": []}");
    ctx = qg_test_ctx_with_db(db);
    cr_expect_eq(current_wg(ctx, "eltwise"), 64);
    cr_expect_neq(strstr(qg__tunedb_warnings(ctx), "schema"), NULL, "%s",
                  qg__tunedb_warnings(ctx));
    qg_ctx_free(ctx);
}

Test(tune, invalid_entry_is_ignored)
{
    char *db = tmp("invalid.json");
    qg_ctx *ctx = qg_test_ctx_with_db(db);
    char text[512];
    snprintf(text, sizeof text, "{\"schema\": 1, \"entries\": [{\"device\": \"%s\", "
             "\"program\": \"reduce\", \"params\": {\"WG\": 48}}]}", qg_ctx_device(ctx)->key);
    qg_test_write_text(db, text);
    qg__tunedb_reset(ctx);
    cr_expect_eq(current_wg(ctx, "reduce"), 64, "WG=48 violates the constraint");
    qg_ctx_free(ctx);
}

Test(tune, store_then_lookup_round_trip)
{
    char *db = tmp("store.json");
    unlink(db);
    qg_ctx *ctx = qg_test_ctx_with_db(db);
    long v = 128;
    QG_EXPECT_OK(qg__tunedb_store(ctx, "reduce", "*", &v, 1.5, 2.0));
    cr_expect_eq(current_wg(ctx, "reduce"), 128);
    v = 256;
    QG_EXPECT_OK(qg__tunedb_store(ctx, "reduce", "*", &v, 1.0, 2.0));
    cr_expect_eq(current_wg(ctx, "reduce"), 256, "a new result replaces the old entry");
    qg_ctx_free(ctx);
    ctx = qg_test_ctx_with_db(db);
    cr_expect_eq(current_wg(ctx, "reduce"), 256, "persisted across contexts");
    qg_ctx_free(ctx);
}

/* A kernel directory with every embedded source, where reduce.cl fails to
 * build with WG=32 and computes wrong channel statistics (a quarter of the
 * work) with WG=16. */
static char *tampered_kernel_dir(const char *name)
{
    static char dir[512];
    snprintf(dir, sizeof dir, "%s", tmp(name));
    cr_assert_eq(mkdir(dir, 0755), 0);
    for (size_t i = 0; i < qg__cl_source_count; i++) {
        char path[600];
        const char *src = (const char *)qg__cl_sources[i].bytes;
        snprintf(path, sizeof path, "%s/%s.cl", dir, qg__cl_sources[i].name);
        FILE *f = fopen(path, "w");
        cr_assert_not_null(f);
        if (strcmp(qg__cl_sources[i].name, "reduce") == 0) {
            const char *loop = "for (int i = l; i < total; i += WG)";
            const char *at = strstr(src, loop);
            cr_assert_not_null(at, "reduce.cl changed: no channel statistics loop");
            fputs("#if WG == 32\n#error \"refusing WG 32 for the test\"\n#elif WG == 16\n", f);
            fwrite(src, 1, (size_t)(at - src), f);
            fputs("for (int i = l; i < total; i += 4 * WG)", f);
            fputs(at + strlen(loop), f);
            fputs("\n#else\n", f);
            fputs(src, f);
            fputs("\n#endif\n", f);
        } else {
            fputs(src, f);
        }
        fclose(f);
    }
    return dir;
}

/* A context reading its kernels from `dir`, with no binary cache. */
static qg_ctx *ctx_with_kernels(const char *db, const char *dir)
{
    qg_ctx *ctx;
    qg_ctx_opts o = {.tune_db = db, .profiling = 1, .kernel_dir = dir, .cache_dir = ""};
    QG_EXPECT_OK(qg_ctx_new(&o, &ctx));
    return ctx;
}

Test(tune, tuner_writes_a_verified_winner_and_skips_build_failures)
{
    char *db = tmp("tuner.json");
    unlink(db);
    /* A reduce.cl that refuses WG=32 at build time (the registry allows
     * it), so the tuner meets a failing candidate, and whose WG=16 build
     * skips three quarters of the channel statistics' loop: faster and
     * wrong, so it must be rejected by the check, never stored. */
    qg_ctx *ctx = ctx_with_kernels(db, tampered_kernel_dir("kdir"));
    char *log = NULL;
    size_t loglen = 0;
    FILE *lf = open_memstream(&log, &loglen);
    qg_tune_opts to = {.kernel = "reduce", .budget_s = 60, .runs = 1, .log = lf};
    QG_EXPECT_OK(qg__tune_run(ctx, &to));
    fclose(lf);
    cr_expect_neq(strstr(log, "skip WG=32"), NULL, "no skip note in:\n%s", log);
    cr_expect_neq(strstr(log, "skip WG=16: wrong result"), NULL, "no rejection in:\n%s", log);
    cr_expect_neq(strstr(log, "confirm WG=64"), NULL, "no confirmation round in:\n%s", log);
    cr_expect_neq(strstr(log, "best WG="), NULL, "%s", log);
    long wg = current_wg(ctx, "reduce");
    cr_expect_neq(wg, 32);
    cr_expect_neq(wg, 16, "the wrong candidate won");
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
    qg_ctx *ctx = qg_test_ctx_with_db(db);
    char text[1024];
    snprintf(text, sizeof text, "{\"schema\": 1, \"entries\": [{\"device\": \"%s\", "
             "\"program\": \"reduce\", \"params\": {\"WG\": 128}}, {\"device\": \"%s\", "
             "\"program\": \"eltwise\", \"params\": {\"WG\": 32}}]}", qg_ctx_device(ctx)->key,
             qg_ctx_device(ctx)->key);
    snprintf(file, sizeof file, "%s/pocl.json", sub);
    qg_test_write_text(file, text);
    qg__tunedb_reset(ctx);
    cr_expect_eq(current_wg(ctx, "reduce"), 128, "shipped entry applies");
    snprintf(text, sizeof text, "{\"schema\": 1, \"entries\": [{\"device\": \"%s\", "
             "\"program\": \"eltwise\", \"params\": {\"WG\": 256}}]}", qg_ctx_device(ctx)->key);
    qg_test_write_text(db, text);
    qg__tunedb_reset(ctx);
    cr_expect_eq(current_wg(ctx, "eltwise"), 256, "the user DB wins over the shipped one");
    cr_expect_eq(current_wg(ctx, "reduce"), 128);
    qg_ctx_free(ctx);
    unsetenv("QGATE_DATA_DIR");
}

/* One program-wide case per program (stored under "*"); a program may
 * have more cases stored under their own shape classes (conv_direct's
 * grouped conv of Channel Gating). */
Test(tune, every_program_has_exactly_one_case)
{
    for (size_t p = 0; p < qg__program_count(); p++) {
        const char *name = qg__program_at(p)->name;
        int n = 0;
        for (size_t i = 0; i < qg__tune_case_count(); i++)
            n += strcmp(qg__tune_case_at(i)->program, name) == 0 &&
                 !qg__tune_case_at(i)->db_shape;
        cr_expect_eq(n, 1, "program '%s' has %d program-wide tune cases (the tuner stores one "
                     "\"*\" entry per program, so it needs exactly one)", name, n);
    }
    int grouped = 0;
    for (size_t i = 0; i < qg__tune_case_count(); i++) {
        const qg_tune_case *c = qg__tune_case_at(i);
        grouped += c->db_shape && strcmp(c->db_shape, "c16k16h32w32s1g4") == 0 &&
                   strcmp(c->program, "conv_direct") == 0;
    }
    cr_expect_eq(grouped, 1, "conv_direct has no case for CG's 4-group conv");
    for (size_t i = 0; i < qg__tune_case_count(); i++)
        cr_expect_not_null(qg__tune_case_desc(qg__tune_case_at(i)), "case '%s'",
                           qg__tune_case_at(i)->program);
    cr_expect_null(qg__tune_case_at(qg__tune_case_count()));
}

/* The first and the last valid non-default parameter sets of a program
 * (mixed-radix order over the candidates), as the tuner would meet them. */
static int two_other_sets(qg_ctx *ctx, const qg_program_desc *d, long sets[2][QG_MAX_TUNABLES])
{
    size_t total = 1;
    int found = 0;
    for (int i = 0; i < d->ntunables; i++)
        total *= (size_t)d->tunables[i].ncandidates;
    for (size_t k = 0; k < total; k++) {
        long v[QG_MAX_TUNABLES];
        size_t r = k;
        int is_default = 1;
        for (int i = 0; i < d->ntunables; i++) {
            v[i] = d->tunables[i].candidates[r % (size_t)d->tunables[i].ncandidates];
            r /= (size_t)d->tunables[i].ncandidates;
            is_default &= v[i] == d->tunables[i].def;
        }
        char why[256];
        if (is_default || (d->valid && !d->valid(ctx, v, why, sizeof why)))
            continue;
        memcpy(sets[found ? 1 : 0], v, sizeof sets[0]);
        found = found ? 2 : 1;
    }
    return found == 2;
}

/* Every registry program's case (the one the tuner times) verifies against
 * its C reference under the default and two other valid parameter sets;
 * the kernels' own tests sweep odd sizes, this checks the tuner's checks. */
Test(tune, cases_verify_under_default_and_two_other_sets, .timeout = 600)
{
    qg_ctx *ctx = qg_test_ctx_with_db(tmp("cases.json"));
    for (size_t i = 0; i < qg__tune_case_count(); i++) {
        const qg_tune_case *c = qg__tune_case_at(i);
        if (c->builtin)
            continue; /* CLBlast: built in, timed by its own tuner test */
        const qg_program_desc *d = qg__tune_case_desc(c);
        long sets[3][QG_MAX_TUNABLES];
        for (int k = 0; k < d->ntunables; k++)
            sets[0][k] = d->tunables[k].def;
        cr_assert(two_other_sets(ctx, d, sets + 1), "program '%s' has < 2 other valid sets",
                  c->program);
        void *state = NULL;
        QG_EXPECT_OK(c->prepare(ctx, &state));
        for (int k = 0; k < 3; k++) {
            char note[2048] = "";
            cr_expect(qg__tune_verify(ctx, c, d, state, sets[k], note, sizeof note),
                      "case '%s', set %d (WG=%ld): %s", c->program, k, sets[k][0], note);
            /* A second run must verify too (outputs added into are reset). */
            cr_expect(qg__tune_verify(ctx, c, d, state, NULL, note, sizeof note),
                      "case '%s', set %d, second run: %s", c->program, k, note);
        }
        c->release(state);
        QG_EXPECT_OK(qg__program_override(ctx, d->name, NULL));
    }
    qg_ctx_free(ctx);
}

Test(tune, gemm_baseline_is_the_builtin_set_until_overridden)
{
    char *db = tmp("gemm.json");
    unlink(db);
    qg_ctx *ctx = qg_test_ctx_with_db(db);
    const qg_program_desc *d = qg__program_desc(QG_PROG_CLBLAST_XGEMM);
    long v[QG_MAX_TUNABLES];
    for (int i = 0; i < d->ntunables; i++)
        v[i] = d->tunables[i].def;
    QG_EXPECT_OK(qg__tunedb_store(ctx, "clblast_xgemm", "*", v, 1.0, 2.0));
    /* A tuned set exists, but the baseline asks for CLBlast's own. */
    QG_EXPECT_OK(qg__gemm_use_builtin(ctx));
    QG_EXPECT_OK(qg__gemm_apply_tuned(ctx));
    QG_EXPECT_OK(qg__gemm_use_builtin(ctx));
    QG_EXPECT_OK(qg__gemm_override(ctx, v));
    cr_expect_eq(qg__gemm_use_builtin(ctx), QG_ERR_UNSUPPORTED);
    cr_expect_neq(strstr(qg_ctx_last_error(ctx), "cannot be restored"), NULL, "%s",
                  qg_ctx_last_error(ctx));
    v[0] = 1; /* GEMMK=1 is not offered */
    cr_expect_eq(qg__gemm_override(ctx, v), QG_ERR_INVALID_ARG);
    qg_ctx_free(ctx);
}

Test(tune, bench_kernels_prints_default_and_tuned_lines)
{
    char *db = tmp("bench.json");
    unlink(db);
    qg_ctx *ctx = ctx_with_kernels(db, tampered_kernel_dir("bench-kdir"));
    long v = 128;
    QG_EXPECT_OK(qg__tunedb_store(ctx, "pool", "*", &v, 1.0, 2.0));
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    int failures = -1;
    QG_EXPECT_OK(qg__bench_kernels(ctx, &(qg_bench_kernels_opts){.kernel = "pool", .runs = 3,
                                                                 .out = f}, &failures));
    fclose(f);
    cr_expect_eq(failures, 0, "%s", out);
    const char *dl = strstr(out, " default "), *tl = strstr(out, " tuned ");
    cr_assert(dl && tl, "missing lines:\n%s", out);
    cr_expect_neq(strstr(out, qg_ctx_device(ctx)->key), NULL, "no device key:\n%s", out);
    double mn, med, rate, sp;
    char unit[16];
    cr_expect_eq(sscanf(dl, " default %lf %lf %lf %15s", &mn, &med, &rate, unit), 4, "%s", dl);
    cr_expect(mn > 0 && med >= mn && rate > 0, "%s", dl);
    cr_expect_str_eq(unit, "GB/s");
    cr_expect_eq(sscanf(tl, " tuned %lf %lf %lf %15s %lfx", &mn, &med, &rate, unit, &sp), 5,
                 "%s", tl);
    cr_expect(sp > 0, "%s", tl);
    cr_expect_neq(strstr(tl, "WG=128"), NULL, "%s", tl);
    free(out);

    /* A tuned set that no longer builds is reported, not fatal; a program
     * without an entry says so. */
    v = 32;
    QG_EXPECT_OK(qg__tunedb_store(ctx, "reduce", "*", &v, 1.0, 2.0));
    f = open_memstream(&out, &len);
    QG_EXPECT_OK(qg__bench_kernels(ctx, &(qg_bench_kernels_opts){.kernel = "reduce", .runs = 2,
                                                                 .out = f}, &failures));
    fclose(f);
    cr_expect_eq(failures, 1, "%s", out);
    cr_expect_neq(strstr(out, "tuned    FAILED"), NULL, "%s", out);
    cr_expect_neq(strstr(out, "refusing WG 32"), NULL, "build log missing:\n%s", out);
    free(out);
    f = open_memstream(&out, &len);
    QG_EXPECT_OK(qg__bench_kernels(ctx, &(qg_bench_kernels_opts){.kernel = "loss", .runs = 2,
                                                                 .out = f}, &failures));
    fclose(f);
    cr_expect_neq(strstr(out, "no entry for this device"), NULL, "%s", out);
    free(out);
    cr_expect_eq(qg__bench_kernels(ctx, &(qg_bench_kernels_opts){.kernel = "nope", .runs = 1,
                                                                 .out = stderr}, &failures),
                 QG_ERR_NOT_FOUND);
    qg_ctx_free(ctx);
}
