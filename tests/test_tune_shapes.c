/* tests/test_tune_shapes.c: per-shape tuning (qgate tune --shapes FILE):
 * the shape class of a conv, the shapes file's validation
 * (src/tune/shapes_file.c), the tuner storing a winner under exactly the
 * file's shape class and the lookup order class -> "*" -> defaults
 * (qg__program_params_shape), and direct convs that run under stored
 * per-class sets matching src/ref/ref_conv.c, forward and backward, each
 * call with one parameter set.
 *
 * Tolerances as in tests/test_conv.c: |got - want| <= 1e-4 + 1e-4*|want|. */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "support/support.h"
#include "cl/ctx.h"
#include "ops/conv.h"
#include "ops/conv_masked.h"
#include "ref/ref_conv.h"
#include "tune/shapes_file.h"
#include "cl/tunedb.h"
#include "tune/tuner.h"
#include "tune/cases.h"

TestSuite(tune_shapes);

static char *tmp(const char *name)
{
    return qg_test_tmp_path("tune-shapes", name);
}

static void params_of(qg_ctx *ctx, const char *shape_class, long *v)
{
    int n = 0;
    QG_EXPECT_OK(qg__program_params_shape(ctx, "conv_direct", shape_class, v, &n));
    cr_assert_eq(n, 6, "conv_direct has %d tunables, the tests assume 6", n);
}

static int same_set(const long *a, const long *b)
{
    return memcmp(a, b, 6 * sizeof *a) == 0;
}

static void fmt_set(const long *v, char *buf, size_t cap)
{
    snprintf(buf, cap, "{%ld %ld %ld %ld %ld %ld}", v[0], v[1], v[2], v[3], v[4], v[5]);
}

#define EXPECT_SET(got, want, what)                                                    \
    do {                                                                               \
        char g_[96], w_[96];                                                           \
        fmt_set(got, g_, sizeof g_);                                                   \
        fmt_set(want, w_, sizeof w_);                                                  \
        cr_expect(same_set(got, want), "%s: got %s, want %s", what, g_, w_);           \
    } while (0)

Test(tune_shapes, shape_class_names_channels_map_and_stride_not_batch)
{
    qg_conv_desc a, b, c;
    char ca[QG_CONV_SHAPE_CLASS_MAX], cb[QG_CONV_SHAPE_CLASS_MAX], cc[QG_CONV_SHAPE_CLASS_MAX];
    QG_EXPECT_OK(qg__conv_desc_init(NULL, &a, 128, 16, 32, 32, 16, 3, 3, 1, 1, 1));
    QG_EXPECT_OK(qg__conv_desc_init(NULL, &b, 7, 16, 32, 32, 16, 3, 3, 1, 1, 1));
    QG_EXPECT_OK(qg__conv_desc_init(NULL, &c, 128, 16, 32, 30, 32, 3, 3, 2, 1, 1));
    qg__conv_shape_class(&a, ca, sizeof ca);
    qg__conv_shape_class(&b, cb, sizeof cb);
    qg__conv_shape_class(&c, cc, sizeof cc);
    cr_expect_str_eq(ca, "c16k16h32w32s1");
    cr_expect_str_eq(cb, ca, "the batch must not be part of the class");
    cr_expect_str_eq(cc, "c16k32h32w30s2");
    /* a grouped conv has its own class */
    QG_EXPECT_OK(qg__conv_desc_init(NULL, &c, 128, 16, 32, 32, 16, 3, 3, 1, 1, 4));
    qg__conv_shape_class(&c, cc, sizeof cc);
    cr_expect_str_eq(cc, "c16k16h32w32s1g4");
}

/* The optional "groups" of a conv entry: its shape class, and refused
 * where it does not divide both channel counts. */
Test(tune_shapes, groups_field_names_a_grouped_class)
{
    char *path = tmp("groups.json");
    qg_test_write_text(path, "{\"schema\": 1, \"conv\": [{\"n\": 2, \"c\": 16, \"k\": 16, "
                             "\"h\": 8, \"w\": 8, \"stride\": 1, \"groups\": 4}, {\"n\": 2, "
                             "\"c\": 16, \"k\": 16, \"h\": 8, \"w\": 8, \"stride\": 1}]}");
    qg_tune_shapes sh = {0};
    QG_EXPECT_OK(qg__tune_shapes_load(NULL, path, &sh));
    cr_assert_eq(sh.nconv, 2);
    cr_expect_eq(sh.conv[0].groups, 4);
    cr_expect_str_eq(sh.conv_class[0], "c16k16h8w8s1g4");
    cr_expect_str_eq(sh.conv_class[1], "c16k16h8w8s1");
    qg__tune_shapes_free(&sh);
    qg_test_write_text(path, "{\"schema\": 1, \"conv\": [{\"n\": 2, \"c\": 16, \"k\": 12, "
                             "\"h\": 8, \"w\": 8, \"stride\": 1, \"groups\": 8}]}");
    cr_expect_eq(qg__tune_shapes_load(NULL, path, &sh), QG_ERR_FORMAT);
    cr_expect_neq(strstr(qg_last_error(), "\"groups\" must be an integer dividing c (16) and "
                                          "k (12)"), NULL, "%s", qg_last_error());
    qg__tune_shapes_free(&sh);
    unlink(path);
}

/* Each malformed file is rejected, and the message names the file and
 * what is wrong in it. */
Test(tune_shapes, malformed_files_are_rejected_naming_the_file)
{
    static const struct {
        const char *text, *what, *needle1, *needle2;
        qg_status st;
    } bad[] = {
        {"{\"schema\": 1, \"conv\": [", "bad JSON", "invalid JSON", "line", QG_ERR_FORMAT},
        {"[1, 2]", "not an object", "expected an object", NULL, QG_ERR_FORMAT},
        {"{\"schema\": 2, \"conv\": [{\"n\": 2, \"c\": 4, \"k\": 8, \"h\": 8, \"w\": 8, "
         "\"stride\": 1}]}", "wrong schema", "schema 2 is not supported", NULL, QG_ERR_FORMAT},
        {"{\"conv\": []}", "no schema", "missing integer \"schema\"", NULL, QG_ERR_FORMAT},
        {"{\"schema\": 1}", "no conv", "missing array \"conv\"", NULL, QG_ERR_FORMAT},
        {"{\"schema\": 1, \"conv\": []}", "empty conv", "\"conv\" is empty", NULL,
         QG_ERR_FORMAT},
        {"{\"schema\": 1, \"convs\": []}", "unknown key", "unknown key \"convs\"", NULL,
         QG_ERR_FORMAT},
        {"{\"schema\": 1, \"conv\": [{\"n\": 2, \"c\": 4, \"k\": 8, \"h\": 8, \"w\": 8, "
         "\"stride\": 1}, {\"n\": 2, \"c\": 4, \"k\": 8, \"h\": 8, \"w\": 8}]}", "missing field",
         "conv[1]: missing field \"stride\"", NULL, QG_ERR_FORMAT},
        {"{\"schema\": 1, \"conv\": [{\"n\": 2, \"c\": 4, \"k\": 8, \"h\": -8, \"w\": 8, "
         "\"stride\": 1}]}", "negative size", "conv[0]: field \"h\" must be between 1", "-8",
         QG_ERR_FORMAT},
        {"{\"schema\": 1, \"conv\": [{\"n\": 0, \"c\": 4, \"k\": 8, \"h\": 8, \"w\": 8, "
         "\"stride\": 1}]}", "zero batch", "conv[0]: field \"n\"", NULL, QG_ERR_FORMAT},
        {"{\"schema\": 1, \"conv\": [{\"n\": 2, \"c\": 4.5, \"k\": 8, \"h\": 8, \"w\": 8, "
         "\"stride\": 1}]}", "not an integer", "conv[0]: field \"c\" must be an integer", NULL,
         QG_ERR_FORMAT},
        {"{\"schema\": 1, \"conv\": [{\"n\": 2, \"c\": 4, \"k\": 8, \"h\": 8, \"w\": 8, "
         "\"stride\": 3}]}", "stride 3", "conv[0]: field \"stride\" must be 1 or 2", NULL,
         QG_ERR_FORMAT},
        {"{\"schema\": 1, \"conv\": [{\"n\": 2, \"c\": 4, \"k\": 8, \"h\": 8, \"w\": 8, "
         "\"stride\": 1, \"pad\": 0}]}", "unknown field", "conv[0]: unknown field \"pad\"",
         NULL, QG_ERR_FORMAT},
        {"{\"schema\": 1, \"conv\": [{\"n\": 2, \"c\": 4, \"k\": 8, \"h\": 8, \"w\": 8, "
         "\"stride\": 1}, {\"n\": 64, \"c\": 4, \"k\": 8, \"h\": 8, \"w\": 8, \"stride\": 1}]}",
         "duplicate class", "conv[0] and conv[1] have the same shape class c4k8h8w8s1", NULL,
         QG_ERR_FORMAT},
        {"{\"schema\": 1, \"conv\": [{\"n\": 65536, \"c\": 256, \"k\": 8, \"h\": 512, "
         "\"w\": 512, \"stride\": 1}]}", "too large", "conv[0]: conv2d", "2^31", QG_ERR_FORMAT},
        {"{\"schema\": 1, \"conv\": [7]}", "entry not an object", "conv[0] must be an object",
         NULL, QG_ERR_FORMAT},
    };
    char *path = tmp("bad.json");
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        qg_test_write_text(path, bad[i].text);
        qg_tune_shapes sh = {0};
        qg_status st = qg__tune_shapes_load(NULL, path, &sh);
        const char *msg = qg_last_error();
        cr_expect_eq(st, bad[i].st, "%s: got %s (%s)", bad[i].what, qg_status_str(st), msg);
        cr_expect_neq(strstr(msg, path), NULL, "%s: the message does not name the file: %s",
                      bad[i].what, msg);
        cr_expect_neq(strstr(msg, bad[i].needle1), NULL, "%s: no '%s' in: %s", bad[i].what,
                      bad[i].needle1, msg);
        if (bad[i].needle2)
            cr_expect_neq(strstr(msg, bad[i].needle2), NULL, "%s: no '%s' in: %s",
                          bad[i].what, bad[i].needle2, msg);
        cr_expect_eq(sh.nconv, 0, "%s: entries left after a failure", bad[i].what);
        cr_expect_null(sh.conv, "%s", bad[i].what);
    }
    unlink(path);
    qg_tune_shapes sh;
    const char *missing = tmp("no-such-file.json");
    cr_expect_eq(qg__tune_shapes_load(NULL, missing, &sh), QG_ERR_IO);
    cr_expect_neq(strstr(qg_last_error(), missing), NULL, "%s", qg_last_error());
}

/* The example files in bench/shapes stay loadable (they are in no build). */
Test(tune_shapes, example_shapes_files_load)
{
    static const struct {
        const char *name, *first_class;
    } files[] = {{"resnet20.json", "c1k16h28w28s1"}, {"resnet20_cifar.json", "c3k16h32w32s1"}};
    const char *data = getenv("QG_TEST_DATA");
    cr_assert_not_null(data, "QG_TEST_DATA is not set (run through make check)");
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/../../bench/shapes/%s", data, files[i].name);
        qg_tune_shapes sh;
        QG_EXPECT_OK(qg__tune_shapes_load(NULL, path, &sh));
        cr_expect_eq(sh.nconv, 6, "%s: ResNet-20 has 6 distinct 3x3 conv shapes", path);
        cr_expect_str_eq(sh.conv_class[0], files[i].first_class, "%s", path);
        cr_expect_eq(sh.conv[0].n, 128);
        cr_expect_eq(sh.conv[0].r, 3);
        cr_expect_eq(sh.conv[0].pad, 1);
        qg__tune_shapes_free(&sh);
    }
}

/* Reads the user DB back: the (program, shape, params) of every entry for
 * this device. */
typedef struct db_entry {
    char program[64], shape[64];
    long v[6];  /* the program's first six tunables */
    long pay;   /* conv_masked's PAY; -2 for other programs */
} db_entry;

static size_t read_db(qg_ctx *ctx, const char *path, db_entry *out, size_t cap)
{
    json_error_t err;
    json_t *root = json_load_file(path, 0, &err);
    cr_assert_not_null(root, "%s: %s", path, err.text);
    json_t *entries = json_object_get(root, "entries");
    cr_assert(json_is_array(entries), "%s: no entries", path);
    size_t n = 0, i;
    json_t *e;
    json_array_foreach(entries, i, e) {
        const char *dev = json_string_value(json_object_get(e, "device"));
        if (!dev || strcmp(dev, qg_ctx_device(ctx)->key) != 0 || n == cap)
            continue;
        snprintf(out[n].program, sizeof out[n].program, "%s",
                 json_string_value(json_object_get(e, "program")));
        const qg_program_desc *d = qg__program_find(out[n].program);
        cr_assert_not_null(d, "%s: entry %zu names program '%s'", path, i, out[n].program);
        snprintf(out[n].shape, sizeof out[n].shape, "%s",
                 json_string_value(json_object_get(e, "shape")));
        json_t *params = json_object_get(e, "params");
        for (int k = 0; k < 6; k++) {
            json_t *pv = json_object_get(params, d->tunables[k].name);
            cr_assert(json_is_integer(pv), "%s: entry %zu lacks %s", path, i,
                      d->tunables[k].name);
            out[n].v[k] = (long)json_integer_value(pv);
        }
        json_t *pay = json_object_get(params, "PAY");
        out[n].pay = d->id == QG_PROG_CONV_MASKED && json_is_integer(pay)
                         ? (long)json_integer_value(pay) : -2;
        n++;
    }
    json_decref(root);
    return n;
}

/* A valid conv_direct set different from both a and b. */
static void other_set(qg_ctx *ctx, const long *a, const long *b, long *out)
{
    static const long pool[][6] = {
        {4, 8, 1, 2, 1, 1}, {2, 16, 3, 6, 3, 2}, {8, 8, 4, 4, 2, 8}};
    const qg_program_desc *d = qg__program_find("conv_direct");
    for (size_t i = 0; i < sizeof pool / sizeof *pool; i++) {
        char why[256];
        if (same_set(pool[i], a) || same_set(pool[i], b) ||
            !d->valid(ctx, pool[i], why, sizeof why))
            continue;
        memcpy(out, pool[i], sizeof pool[i]);
        return;
    }
    cr_assert_fail("no valid conv_direct set differs from the two given");
}

Test(tune_shapes, tuner_stores_under_the_class_and_lookup_falls_back, .timeout = 300)
{
    char *shapes = tmp("one.json"), *db = tmp("db.json");
    qg_test_write_text(shapes, "{\"schema\": 1, \"conv\": [{\"n\": 2, \"c\": 4, \"k\": 8, \"h\": 8, "
                       "\"w\": 8, \"stride\": 1}]}");
    unlink(db);
    qg_ctx *ctx = qg_test_ctx_with_db(db);
    char *log = NULL;
    size_t loglen = 0;
    FILE *lf = open_memstream(&log, &loglen);
    /* A short budget: the default, a candidate or two and the confirmation
     * round; which set wins does not matter here, where it is stored does. */
    qg_tune_opts to = {.kernel = "conv_direct", .shapes_file = shapes, .budget_s = 0.5,
                       .runs = 1, .log = lf};
    QG_EXPECT_OK(qg__tune_run(ctx, &to));
    fclose(lf);
    cr_expect_neq(strstr(log, "[1/1] conv_direct"), NULL, "no progress line in:\n%s", log);
    cr_expect_neq(strstr(log, "conv_direct [c4k8h8w8s1]: best"), NULL, "%s", log);
    cr_expect_neq(strstr(log, "not tuned in this mode"), NULL, "%s", log);
    cr_expect_neq(strstr(log, "bn"), NULL, "untuned programs not listed:\n%s", log);
    free(log);

    db_entry e[8];
    size_t n = read_db(ctx, db, e, 8);
    cr_assert_eq(n, 1, "%zu entries stored, want exactly the file's one shape class", n);
    cr_expect_str_eq(e[0].program, "conv_direct");
    cr_expect_str_eq(e[0].shape, "c4k8h8w8s1");

    /* That class gets the entry; another class, with no "*" entry yet,
     * the defaults. */
    const qg_program_desc *d = qg__program_find("conv_direct");
    long got[QG_MAX_TUNABLES], defv[6];
    for (int k = 0; k < 6; k++)
        defv[k] = qg__tunable_default(ctx, &d->tunables[k]);
    params_of(ctx, "c4k8h8w8s1", got);
    EXPECT_SET(got, e[0].v, "the tuned class");
    params_of(ctx, "c4k8h8w8s2", got);
    EXPECT_SET(got, defv, "another class without a \"*\" entry");

    /* With a "*" entry (a set unlike the winner and the defaults), the
     * class keeps its own entry and every other class gets "*". */
    long star[6];
    other_set(ctx, e[0].v, defv, star);
    QG_EXPECT_OK(qg__tunedb_store(ctx, "conv_direct", "*", star, 1.0, 2.0));
    params_of(ctx, "c4k8h8w8s1", got);
    EXPECT_SET(got, e[0].v, "the tuned class beside a \"*\" entry");
    params_of(ctx, "c4k8h8w8s2", got);
    EXPECT_SET(got, star, "another class");
    params_of(ctx, NULL, got);
    EXPECT_SET(got, star, "no class");
    /* An explicit override beats both. */
    long ov[6];
    other_set(ctx, e[0].v, star, ov);
    QG_EXPECT_OK(qg__program_override(ctx, "conv_direct", ov));
    params_of(ctx, "c4k8h8w8s1", got);
    EXPECT_SET(got, ov, "override");
    qg_ctx_free(ctx);

    /* A dry run stores nothing, and --kernel other than conv_direct or
     * conv_masked is refused in this mode. */
    unlink(db);
    ctx = qg_test_ctx_with_db(db);
    lf = open_memstream(&log, &loglen);
    to.dry_run = 1;
    to.log = lf;
    QG_EXPECT_OK(qg__tune_run(ctx, &to));
    fclose(lf);
    free(log);
    cr_expect_neq(access(db, F_OK), 0, "a dry run wrote the database");
    to.kernel = "bn";
    cr_expect_eq(qg__tune_run(ctx, &to), QG_ERR_NOT_FOUND);
    cr_expect_neq(strstr(qg_ctx_last_error(ctx), "--shapes model"), NULL, "%s",
                  qg_ctx_last_error(ctx));
    qg_ctx_free(ctx);
    unlink(shapes);
}

/* " -DNAME=value" as a whole option in a build-options string. */
static int has_opt(const char *options, const char *name, long value)
{
    char tok[64];
    size_t l = (size_t)snprintf(tok, sizeof tok, " -D%s=%ld", name, value);
    for (const char *p = strstr(options, tok); p; p = strstr(p + 1, tok))
        if (p[l] == ' ' || p[l] == 0)
            return 1;
    return 0;
}

/* The conv_direct programs the context built, each matched to one of
 * `sets`; returns how many there are and fails on one matching none. */
static int direct_programs(const qg_ctx *ctx, const long (*sets)[6], int nsets)
{
    const qg_program_desc *d = qg__program_find("conv_direct");
    int n = 0;
    for (const qg_program_entry *e = ctx->programs; e; e = e->next) {
        if (strcmp(e->program, "conv_direct") != 0)
            continue;
        n++;
        int match = 0;
        for (int s = 0; s < nsets && !match; s++) {
            int all = 1;
            for (int k = 0; k < 6; k++)
                all &= has_opt(e->options, d->tunables[k].name, sets[s][k]);
            match = all;
        }
        cr_expect(match, "conv_direct built with a set no lookup should give: %s", e->options);
    }
    return n;
}

static void expect_close(const char *label, const qg_test_buf *b, const float *want)
{
    float *got = qg_test_buf_get(b, label);
    cr_expect(qg_test_allclose(label, got, want, b->n, 1e-4f, 1e-4f), "%s", label);
    free(got);
}

/* Forward, both gradients in one call, and each gradient alone, against
 * the reference. */
static void run_conv(qg_ctx *ctx, const qg_conv_desc *d, uint32_t seed, const char *what)
{
    size_t nx = (size_t)d->N * d->C * d->H * d->W, ny = (size_t)d->N * d->K * d->P * d->Q;
    size_t nw = (size_t)d->K * d->C * d->R * d->S;
    float *x = malloc(nx * 4), *w = malloc(nw * 4), *dy = malloc(ny * 4);
    float *y_ref = malloc(ny * 4), *dx_ref = malloc(nx * 4), *dw_ref = malloc(nw * 4);
    qg_test_fill(x, nx, -1, 1, seed);
    qg_test_fill(w, nw, -1, 1, seed + 1);
    qg_test_fill(dy, ny, -1, 1, seed + 2);
    qg_ref_conv2d_fwd(d, x, w, NULL, y_ref);
    qg_ref_conv2d_bwd_data(d, dy, w, dx_ref);
    qg_ref_conv2d_bwd_weight(d, x, dy, dw_ref, NULL);
    int64_t xs[4] = {d->N, d->C, d->H, d->W}, ws4[4] = {d->K, d->C, d->R, d->S};
    qg_conv_plan *pl = NULL;
    QG_EXPECT_OK(qg__conv_plan_new(ctx, d, NULL, &pl));
    cr_assert(pl != NULL);
    int64_t ys[4] = {d->N, d->K, d->P, d->Q}, wss[1] = {(int64_t)qg__conv_plan_ws_floats(pl)};
    qg_test_buf tx = qg_test_buf_new(ctx, 4, xs, x), tw = qg_test_buf_new(ctx, 4, ws4, w);
    qg_test_buf tdy = qg_test_buf_new(ctx, 4, ys, dy), ty = qg_test_buf_new(ctx, 4, ys, NULL);
    qg_test_buf tdx = qg_test_buf_new(ctx, 4, xs, NULL), tdw = qg_test_buf_new(ctx, 4, ws4, NULL);
    qg_test_buf tws = qg_test_buf_new(ctx, 1, wss, NULL);
    char l[160];

    QG_EXPECT_OK(qg__conv_enqueue_fwd(pl, tx.view, tw.view, NULL, ty.view, tws.view, NULL));
    snprintf(l, sizeof l, "%s: forward", what);
    expect_close(l, &ty, y_ref);
    QG_EXPECT_OK(qg__conv_enqueue_bwd(pl, tx.view, tdy.view, tw.view, tdx.view, 0, tdw.view,
                                      NULL, 0, tws.view, NULL));
    snprintf(l, sizeof l, "%s: backward data (both in one call)", what);
    expect_close(l, &tdx, dx_ref);
    snprintf(l, sizeof l, "%s: backward weight (both in one call)", what);
    expect_close(l, &tdw, dw_ref);
    QG_EXPECT_OK(qg__conv_enqueue_bwd_data(pl, tdy.view, tw.view, tdx.view, tws.view, 0));
    snprintf(l, sizeof l, "%s: backward data alone", what);
    expect_close(l, &tdx, dx_ref);
    QG_EXPECT_OK(qg__conv_enqueue_bwd_weight(pl, tx.view, tdy.view, tdw.view, NULL, tws.view,
                                             0));
    snprintf(l, sizeof l, "%s: backward weight alone", what);
    expect_close(l, &tdw, dw_ref);

    qg_test_buf *bs[] = {&tx, &tw, &tdy, &ty, &tdx, &tdw, &tws};
    for (size_t i = 0; i < sizeof bs / sizeof *bs; i++)
        qg_test_buf_free(bs[i]);
    qg__conv_plan_free(pl);
    free(x);
    free(w);
    free(dy);
    free(y_ref);
    free(dx_ref);
    free(dw_ref);
}

/* Stored non-default sets for two shape classes (stride 1 and 2, odd
 * sizes so tiles stay partial) and a third set under "*": each conv runs
 * with its class's set, a conv of another class with "*", every result
 * matches the reference, and no conv builds from a set it should not see
 * (one lookup per plan, used by every launch). */
Test(tune_shapes, convs_under_stored_class_sets_match_the_reference, .timeout = 300)
{
    char *db = tmp("classes.json");
    unlink(db);
    qg_ctx *ctx = qg_test_ctx_with_db(db);
    static const long sets[3][6] = {
        {4, 8, 1, 2, 1, 1},  /* class of s1 */
        {2, 16, 3, 6, 3, 2}, /* class of s2 */
        {8, 8, 4, 4, 2, 8},  /* "*" */
    };
    const qg_program_desc *pd = qg__program_find("conv_direct");
    for (int s = 0; s < 3; s++) {
        int is_default = 1;
        for (int k = 0; k < 6; k++)
            is_default &= sets[s][k] == qg__tunable_default(ctx, &pd->tunables[k]);
        cr_assert(!is_default, "set %d is the default: the test would prove nothing", s);
    }
    qg_conv_desc s1, s2, s3;
    QG_EXPECT_OK(qg__conv_desc_init(ctx, &s1, 3, 5, 7, 6, 7, 3, 3, 1, 1, 1));
    QG_EXPECT_OK(qg__conv_desc_init(ctx, &s2, 3, 5, 7, 6, 7, 3, 3, 2, 1, 1));
    QG_EXPECT_OK(qg__conv_desc_init(ctx, &s3, 2, 4, 8, 8, 6, 3, 3, 1, 1, 1));
    char c1[QG_CONV_SHAPE_CLASS_MAX], c2[QG_CONV_SHAPE_CLASS_MAX];
    qg__conv_shape_class(&s1, c1, sizeof c1);
    qg__conv_shape_class(&s2, c2, sizeof c2);
    QG_EXPECT_OK(qg__tunedb_store(ctx, "conv_direct", c1, sets[0], 1.0, 2.0));
    QG_EXPECT_OK(qg__tunedb_store(ctx, "conv_direct", c2, sets[1], 1.0, 2.0));
    QG_EXPECT_OK(qg__tunedb_store(ctx, "conv_direct", "*", sets[2], 1.0, 2.0));

    run_conv(ctx, &s1, 11, c1);
    cr_expect_eq(direct_programs(ctx, sets, 1), 1, "the stride-1 conv built other sets");
    run_conv(ctx, &s2, 21, c2);
    cr_expect_eq(direct_programs(ctx, sets, 2), 2, "the stride-2 conv built other sets");
    run_conv(ctx, &s3, 31, "class without an entry");
    cr_expect_eq(direct_programs(ctx, sets, 3), 3, "the third conv did not use \"*\"");
    qg_ctx_free(ctx);
    unlink(db);
}

/* ---- conv_masked's PAY: where skipping stops paying (src/tune/convm_pays.c) ---- */

/* Hand values: the crossing is linear between the last share that paid
 * and the first that did not, in percent rounded down (exact binary
 * fractions here), with the ends and a noisy sweep. */
Test(tune_shapes, pays_crossing_is_the_interpolated_break_even)
{
    const double sh[5] = {0, 0.25, 0.5, 0.75, 1}, ms[5] = {1, 2, 3, 4, 5};
    cr_expect_eq(qg__tune_pays_crossing(sh, ms, 5, 3.5), 62, "3.5 ms lies 62.5%% of the way");
    cr_expect_eq(qg__tune_pays_crossing(sh, ms, 5, 0.5), 0, "slower with nothing on");
    cr_expect_eq(qg__tune_pays_crossing(sh, ms, 5, 5.0), 100, "no slower with all on");
    cr_expect_eq(qg__tune_pays_crossing(sh, ms, 5, 9.0), 100);
    const double sh2[2] = {0, 0.5}, ms2[2] = {1, 101};
    cr_expect_eq(qg__tune_pays_crossing(sh2, ms2, 2, 1.1), 1, "a crossing above 0 is >= 1");
    /* the first point over the dense time decides, not a later dip */
    const double sh3[3] = {0, 0.5, 1}, ms3[3] = {1, 5, 2};
    cr_expect_eq(qg__tune_pays_crossing(sh3, ms3, 3, 3.0), 25);
}

static qg_convm *masked_conv(qg_ctx *ctx, int C, int K, int H, int stride)
{
    qg_conv_desc d;
    qg_convm *c = NULL;
    QG_EXPECT_OK(qg__conv_desc_init(ctx, &d, 4, C, H, H, K, 3, 3, stride, 1, 1));
    QG_EXPECT_OK(qg__convm_new(ctx, &d, &c));
    cr_assert_not_null(c);
    return c;
}

/* qg__tune_run with its log caught in memory (the caller frees it). */
static char *tune_logged(qg_ctx *ctx, qg_tune_opts *to)
{
    char *log = NULL;
    size_t len = 0;
    FILE *lf = open_memstream(&log, &len);
    cr_assert_not_null(lf);
    to->log = lf;
    QG_EXPECT_OK(qg__tune_run(ctx, to));
    fclose(lf);
    to->log = NULL;
    return log;
}

/* `qgate tune --shapes FILE --kernel conv_masked` measures a PAY per
 * shape class and stores it (with the program's other parameters
 * unchanged); a masked conv of that class reads it, others do not. */
Test(tune_shapes, pays_are_measured_and_stored_per_class, .timeout = 300)
{
    char *shapes = tmp("pays.json"), *db = tmp("pays-db.json");
    qg_test_write_text(shapes, "{\"schema\": 1, \"conv\": ["
                       "{\"n\": 2, \"c\": 8, \"k\": 8, \"h\": 14, \"w\": 14, \"stride\": 1},"
                       "{\"n\": 2, \"c\": 8, \"k\": 16, \"h\": 8, \"w\": 8, \"stride\": 1}]}");
    unlink(db);
    qg_ctx *ctx = qg_test_ctx_with_db(db);
    qg_tune_opts to = {.kernel = "conv_masked", .shapes_file = shapes, .runs = 1};
    char *log = tune_logged(ctx, &to);
    cr_expect_neq(strstr(log, "conv_masked c8k8h14w14s1 (tiles)"), NULL, "%s", log);
    cr_expect_neq(strstr(log, "conv_masked c8k16h8w8s1 (outputs)"), NULL, "%s", log);
    cr_expect_neq(strstr(log, "skipping pays up to"), NULL, "%s", log);
    cr_expect_eq(strstr(log, "[1/2] conv_direct"), NULL, "conv_direct tuned though not asked");
    free(log);

    db_entry e[8];
    size_t n = read_db(ctx, db, e, 8);
    cr_assert_eq(n, 2, "%zu entries stored, want one per shape class", n);
    const qg_program_desc *d = qg__program_find("conv_masked");
    long defv[6];
    for (int k = 0; k < 6; k++)
        defv[k] = qg__tunable_default(ctx, &d->tunables[k]);
    for (size_t i = 0; i < n; i++) {
        cr_expect_str_eq(e[i].program, "conv_masked");
        cr_expect(e[i].pay >= 0 && e[i].pay <= 100, "PAY %ld", e[i].pay);
        EXPECT_SET(e[i].v, defv, "conv_masked's kernel parameters beside PAY");
    }
    cr_expect_str_eq(e[0].shape, "c8k8h14w14s1");
    cr_expect_str_eq(e[1].shape, "c8k16h8w8s1");

    qg_convm *a = masked_conv(ctx, 8, 8, 14, 1), *b = masked_conv(ctx, 8, 16, 8, 1);
    qg_convm *other = masked_conv(ctx, 8, 8, 14, 2);
    cr_expect_eq(qg__convm_pay_percent(a), e[0].pay);
    cr_expect_eq(qg__convm_pay_percent(b), e[1].pay);
    cr_expect_eq(qg__convm_pay_percent(other), -1, "a class without an entry has a PAY");
    qg__convm_free(a), qg__convm_free(b), qg__convm_free(other);
    qg_ctx_free(ctx);
    unlink(db);
    unlink(shapes);
}

/* A stored PAY decides qg__convm_pays and qg__convm_keeps_paying in place
 * of the built-in rule, and is no build option: convs of two PAYs share
 * one program. An out-of-range PAY in a database is refused. */
Test(tune_shapes, stored_pay_decides_skipping_and_shares_the_build)
{
    char *db = tmp("pay-rule.json");
    unlink(db);
    qg_ctx *ctx = qg_test_ctx_with_db(db);
    const qg_program_desc *d = qg__program_find("conv_masked");
    long v[QG_MAX_TUNABLES];
    for (int k = 0; k < d->ntunables; k++)
        v[k] = qg__tunable_default(ctx, &d->tunables[k]);
    cr_assert_eq(v[QG_MASKED_PAY], -1);

    /* no entry: the built-in rule (tiles on a 14-wide map, 80% of tiles) */
    qg_convm *c = masked_conv(ctx, 8, 8, 14, 1);
    cr_expect(qg__convm_pays(c));
    cr_expect(qg__convm_keeps_paying(c, 79, 100));
    cr_expect(!qg__convm_keeps_paying(c, 81, 100));
    qg__convm_free(c);

    v[QG_MASKED_PAY] = 0;
    QG_EXPECT_OK(qg__tunedb_store(ctx, "conv_masked", "c8k8h14w14s1", v, 1, 1));
    c = masked_conv(ctx, 8, 8, 14, 1);
    cr_expect(!qg__convm_pays(c), "PAY 0 must keep the dense path");
    qg__convm_free(c);

    v[QG_MASKED_PAY] = 30;
    QG_EXPECT_OK(qg__tunedb_store(ctx, "conv_masked", "c8k8h14w14s1", v, 1, 1));
    c = masked_conv(ctx, 8, 8, 14, 1);
    cr_expect(qg__convm_pays(c));
    cr_expect(qg__convm_keeps_paying(c, 30, 100));
    cr_expect(!qg__convm_keeps_paying(c, 31, 100));
    /* a PAY on an 8-wide class, where the rule alone would also skip */
    v[QG_MASKED_PAY] = 10;
    QG_EXPECT_OK(qg__tunedb_store(ctx, "conv_masked", "c8k16h8w8s1", v, 1, 1));
    qg_convm *g = masked_conv(ctx, 8, 16, 8, 1);
    cr_expect(qg__convm_keeps_paying(g, 10, 100));
    cr_expect(!qg__convm_keeps_paying(g, 11, 100), "PAY 10, not the gather's built-in 60%%");

    /* both convs (PAY 30 and 10) run; one conv_masked build, no -DPAY */
    qg_conv_desc dd[2];
    QG_EXPECT_OK(qg__conv_desc_init(ctx, &dd[0], 4, 8, 14, 14, 8, 3, 3, 1, 1, 1));
    QG_EXPECT_OK(qg__conv_desc_init(ctx, &dd[1], 4, 8, 8, 8, 16, 3, 3, 1, 1, 1));
    qg_convm *cs[2] = {c, g};
    for (int i = 0; i < 2; i++) {
        int64_t xs[4] = {4, 8, dd[i].H, dd[i].W}, ws[4] = {dd[i].K, 8, 3, 3};
        int64_t ys[4] = {4, dd[i].K, dd[i].P, dd[i].Q};
        qg_tensor *x, *w, *m, *y;
        QG_EXPECT_OK(qg_tensor_new(ctx, 4, xs, QG_DTYPE_F32, "x", &x));
        QG_EXPECT_OK(qg_tensor_new(ctx, 4, ws, QG_DTYPE_F32, "w", &w));
        QG_EXPECT_OK(qg_tensor_new(ctx, 4, ys, QG_DTYPE_F32, "m", &m));
        QG_EXPECT_OK(qg_tensor_new(ctx, 4, ys, QG_DTYPE_F32, "y", &y));
        QG_EXPECT_OK(qg_tensor_zero(x));
        QG_EXPECT_OK(qg_tensor_zero(w));
        QG_EXPECT_OK(qg_tensor_zero(m));
        QG_EXPECT_OK(qg__convm_fwd(cs[i], x, w, m, y));
        qg_tensor_free(x), qg_tensor_free(w), qg_tensor_free(m), qg_tensor_free(y);
    }
    int builds = 0;
    for (const qg_program_entry *e = ctx->programs; e; e = e->next)
        if (strcmp(e->program, "conv_masked") == 0) {
            builds++;
            cr_expect_eq(strstr(e->options, "-DPAY"), NULL, "PAY built in: %s", e->options);
        }
    cr_expect_eq(builds, 1, "%d conv_masked builds for two PAYs", builds);
    qg__convm_free(c), qg__convm_free(g);

    /* out of range: an override is refused, a database entry dropped
     * with a warning naming PAY */
    v[QG_MASKED_PAY] = 101;
    cr_expect_eq(qg__program_override(ctx, "conv_masked", v), QG_ERR_INVALID_ARG);
    cr_expect_neq(strstr(qg_ctx_last_error(ctx), "PAY=101 is not in -1..100"), NULL, "%s",
                  qg_ctx_last_error(ctx));
    char text[1024];
    snprintf(text, sizeof text, "{\"schema\": 1, \"entries\": [{\"device\": \"%s\", \"program\": "
             "\"conv_masked\", \"shape\": \"c8k8h14w14s1\", \"params\": {\"PAY\": 101}}]}",
             qg_ctx_device(ctx)->key);
    qg_test_write_text(db, text);
    qg__tunedb_reset(ctx);
    c = masked_conv(ctx, 8, 8, 14, 1);
    cr_expect_eq(qg__convm_pay_percent(c), -1);
    cr_expect_neq(strstr(qg__tunedb_warnings(ctx), "PAY=101 is not in -1..100"), NULL, "%s",
                  qg__tunedb_warnings(ctx));
    qg__convm_free(c);
    qg_ctx_free(ctx);
    unlink(db);
}
