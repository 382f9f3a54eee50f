/* src/cl/tunedb.c: loading, lookup and atomic update of tuning
 * databases (see tunedb.h). Parsed with jansson. Tests:
 * tests/test_tune.c, tests/test_tune_shapes.c. */
#include "config.h"

#include <dirent.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/error.h"
#include "core/fileio.h"
#include "cl/tunedb.h"

typedef struct tune_entry {
    qg_prog_id prog;
    char shape[64];
    long values[QG_MAX_TUNABLES];
    int nvalues;
    int from_user;
} tune_entry;

typedef struct qg_tunedb {
    int loaded;
    char user_path[PATH_MAX];
    tune_entry *entries;
    size_t n, cap;
    char warnings[1024];
    char shown[1024];         /* the warnings last printed */
} tune_state;

void qg__tunedb_free(qg_ctx *ctx)
{
    tune_state *s = ctx->tunedb;
    if (s)
        free(s->entries);
    free(s);
    ctx->tunedb = NULL;
}

static void warn(tune_state *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void warn(tune_state *s, const char *fmt, ...)
{
    size_t off = strlen(s->warnings);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->warnings + off, sizeof s->warnings - off, fmt, ap);
    va_end(ap);
}

/* What qgate itself can have written for one tunable: WG a power of two
 * within the kernels' #error limit of 1..1024 (the device's limit is
 * desc->valid's), any other parameter one of its candidates or defaults
 * (the tuner only ever stores those). Checked before desc->valid, whose
 * arithmetic (CLBlast's divisibility rules) assumes sane values. */
static int tunable_ok(const qg_tunable *t, long v, char *why, size_t cap)
{
    if (t->host_only) {
        if (v >= t->lo && v <= t->hi)
            return 1;
        snprintf(why, cap, "%s=%ld is not in %ld..%ld", t->name, v, t->lo, t->hi);
        return 0;
    }
    if (strcmp(t->name, "WG") == 0) {
        if (v >= 1 && v <= 1024 && (v & (v - 1)) == 0)
            return 1;
        snprintf(why, cap, "WG=%ld is not a power of two in 1..1024", v);
        return 0;
    }
    if (v == t->def || (t->cpu_def && v == t->cpu_def))
        return 1;
    for (int i = 0; i < t->ncandidates; i++)
        if (v == t->candidates[i])
            return 1;
    snprintf(why, cap, "%s=%ld is not one of the values the kernels take", t->name, v);
    return 0;
}

/* Parses one file; entries for other devices are skipped. */
static void load_file(qg_ctx *ctx, tune_state *s, const char *path, int user)
{
    json_error_t jerr;
    FILE *f = fopen(path, "rb");
    if (!f)
        return; /* absent is normal */
    json_t *root = json_loadf(f, 0, &jerr);
    fclose(f);
    if (!root) {
        char where[64];
        snprintf(where, sizeof where, "line %d", jerr.line);
        warn(s, "ignoring corrupt tuning database '%s' (%s); ", path, where);
        return;
    }
    json_t *schema = json_object_get(root, "schema");
    json_t *entries = json_object_get(root, "entries");
    if (!json_is_integer(schema) || json_integer_value(schema) != QG_TUNEDB_SCHEMA ||
        !json_is_array(entries)) {
        warn(s, "ignoring tuning database '%s': %s; ", path,
             json_is_integer(schema) ? "unsupported schema version" : "no schema/entries");
        json_decref(root);
        return;
    }
    size_t i;
    json_t *e;
    json_array_foreach(entries, i, e) {
        const char *dev = json_string_value(json_object_get(e, "device"));
        const char *prog = json_string_value(json_object_get(e, "program"));
        const char *shape = json_string_value(json_object_get(e, "shape"));
        json_t *params = json_object_get(e, "params");
        if (!dev || !prog || !json_is_object(params) || strcmp(dev, ctx->info.key) != 0)
            continue;
        const qg_program_desc *d = qg__program_find(prog);
        if (!d)
            continue;
        tune_entry te = {0};
        te.prog = d->id;
        snprintf(te.shape, sizeof te.shape, "%s", shape ? shape : "*");
        te.nvalues = d->ntunables;
        te.from_user = user;
        /* A parameter the entry leaves out takes its default; one it
         * gives must be valid, or the whole entry is dropped (a kernel
         * #error would otherwise stop every run using it). */
        char why[256] = "";
        int ok = 1;
        for (int k = 0; k < d->ntunables && ok; k++) {
            json_t *v = json_object_get(params, d->tunables[k].name);
            if (!v) {
                te.values[k] = qg__tunable_default(ctx, &d->tunables[k]);
                continue;
            }
            if (!json_is_integer(v) || json_integer_value(v) < LONG_MIN ||
                json_integer_value(v) > LONG_MAX) {
                snprintf(why, sizeof why, "%s is not an integer", d->tunables[k].name);
                ok = 0;
                break;
            }
            te.values[k] = (long)json_integer_value(v);
            ok = tunable_ok(&d->tunables[k], te.values[k], why, sizeof why);
        }
        if (ok && d->valid && !d->valid(ctx, te.values, why, sizeof why))
            ok = 0;
        if (!ok) {
            warn(s, "ignoring entry %zu (program '%s', shape '%s') of tuning database '%s': "
                 "%s; using the defaults; ", i, prog, te.shape, path, why);
            continue;
        }
        if (s->n == s->cap) {
            size_t nc = s->cap ? s->cap * 2 : 16;
            tune_entry *ne = realloc(s->entries, nc * sizeof *ne);
            if (!ne)
                break;
            s->entries = ne;
            s->cap = nc;
        }
        s->entries[s->n++] = te;
    }
    json_decref(root);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void load_shipped(qg_ctx *ctx, tune_state *s)
{
    const char *env = getenv("QGATE_DATA_DIR");
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s/tuning", env && *env ? env : QG_PKGDATADIR);
    DIR *d = opendir(dir);
    if (!d)
        return;
    char *names[64];
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) && n < 64) {
        size_t l = strlen(de->d_name);
        if (l > 5 && strcmp(de->d_name + l - 5, ".json") == 0)
            names[n++] = strdup(de->d_name);
    }
    closedir(d);
    qsort(names, (size_t)n, sizeof *names, cmp_str);
    for (int i = 0; i < n; i++) {
        char path[PATH_MAX + 256];
        if (names[i]) {
            snprintf(path, sizeof path, "%s/%s", dir, names[i]);
            load_file(ctx, s, path, 0);
        }
        free(names[i]);
    }
}

static tune_state *state(qg_ctx *ctx)
{
    tune_state *s = ctx->tunedb;
    if (!s) {
        s = calloc(1, sizeof *s);
        if (!s)
            return NULL;
        ctx->tunedb = s;
        const char *env = getenv("QGATE_TUNE_DB");
        const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
        if (ctx->tune_db[0])
            snprintf(s->user_path, sizeof s->user_path, "%s", ctx->tune_db);
        else if (env && *env)
            snprintf(s->user_path, sizeof s->user_path, "%s", env);
        else if (xdg && *xdg)
            snprintf(s->user_path, sizeof s->user_path, "%s/qgate/tuning.json", xdg);
        else
            snprintf(s->user_path, sizeof s->user_path, "%s/.cache/qgate/tuning.json",
                     home && *home ? home : ".");
    }
    if (!s->loaded) {
        s->loaded = 1;
        s->n = 0;
        s->warnings[0] = 0;
        load_file(ctx, s, s->user_path, 1);
        load_shipped(ctx, s);
        /* Shown without --verbose: a database that is ignored changes
         * what runs. Once per context for the same text (the tuner
         * reloads after every store). */
        if (s->warnings[0] && strcmp(s->warnings, s->shown) != 0) {
            size_t len = strlen(s->warnings);
            while (len && (s->warnings[len - 1] == ' ' || s->warnings[len - 1] == ';'))
                len--;
            fprintf(stderr, "qgate: warning: %.*s\n", (int)len, s->warnings);
            snprintf(s->shown, sizeof s->shown, "%s", s->warnings);
        }
    }
    return s;
}

int qg__tunedb_lookup(qg_ctx *ctx, qg_prog_id p, const char *shape, long *values)
{
    tune_state *s = state(ctx);
    if (!s)
        return 0;
    /* The user DB was loaded first, so the first match wins. */
    for (int pass = 0; pass < 2; pass++) {
        const char *want = pass == 0 ? shape : "*";
        if (!want)
            continue;
        for (size_t i = 0; i < s->n; i++)
            if (s->entries[i].prog == p && strcmp(s->entries[i].shape, want) == 0) {
                memcpy(values, s->entries[i].values,
                       (size_t)s->entries[i].nvalues * sizeof *values);
                return 1;
            }
    }
    return 0;
}

const char *qg__tunedb_user_path(qg_ctx *ctx)
{
    tune_state *s = state(ctx);
    return s ? s->user_path : "";
}

const char *qg__tunedb_warnings(qg_ctx *ctx)
{
    tune_state *s = state(ctx);
    return s ? s->warnings : "";
}

void qg__tunedb_reset(qg_ctx *ctx)
{
    tune_state *s = ctx->tunedb;
    if (s)
        s->loaded = 0;
    qg__program_invalidate(ctx);
}

qg_status qg__tunedb_store(qg_ctx *ctx, const char *program, const char *shape,
                           const long *values, double time_ms, double default_ms)
{
    const qg_program_desc *d = qg__program_find(program);
    tune_state *s = state(ctx);
    if (!d || !s)
        return qg__error(ctx, QG_ERR_NOT_FOUND, "no kernel program '%s'", program);
    const char *path = s->user_path;
    json_error_t jerr;
    json_t *root = NULL;
    FILE *f = fopen(path, "rb");
    if (f) {
        root = json_loadf(f, 0, &jerr);
        fclose(f);
        json_t *sc = root ? json_object_get(root, "schema") : NULL;
        if (!root || !json_is_integer(sc) || json_integer_value(sc) != QG_TUNEDB_SCHEMA ||
            !json_is_array(json_object_get(root, "entries"))) {
            /* Never merge into a file we cannot read: start afresh and say so. */
            fprintf(stderr, "qgate: warning: replacing unreadable tuning database '%s'\n", path);
            json_decref(root);
            root = NULL;
        }
    }
    if (!root) {
        root = json_object();
        json_object_set_new(root, "schema", json_integer(QG_TUNEDB_SCHEMA));
        json_object_set_new(root, "entries", json_array());
    }
    json_t *entries = json_object_get(root, "entries");
    size_t i;
    json_t *e;
    json_array_foreach(entries, i, e) {
        const char *dev = json_string_value(json_object_get(e, "device"));
        const char *prog = json_string_value(json_object_get(e, "program"));
        const char *sh = json_string_value(json_object_get(e, "shape"));
        if (dev && prog && strcmp(dev, ctx->info.key) == 0 && strcmp(prog, program) == 0 &&
            strcmp(sh ? sh : "*", shape) == 0) {
            json_array_remove(entries, i);
            break;
        }
    }
    json_t *params = json_object();
    for (int k = 0; k < d->ntunables; k++)
        json_object_set_new(params, d->tunables[k].name, json_integer(values[k]));
    json_t *ne = json_object();
    json_object_set_new(ne, "device", json_string(ctx->info.key));
    json_object_set_new(ne, "device_name", json_string(ctx->info.name));
    json_object_set_new(ne, "driver", json_string(ctx->info.driver));
    json_object_set_new(ne, "program", json_string(program));
    json_object_set_new(ne, "shape", json_string(shape));
    json_object_set_new(ne, "params", params);
    json_object_set_new(ne, "time_ms", json_real(time_ms));
    json_object_set_new(ne, "default_ms", json_real(default_ms));
    json_array_append_new(entries, ne);
    char *text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(root);
    if (!text)
        return qg__error(ctx, QG_ERR_NOMEM, "out of memory writing '%s'", path);
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    qg_status st = QG_OK;
    if (slash && slash != dir) {
        *slash = 0;
        st = qg__mkdirs(ctx, dir);
    }
    if (st == QG_OK)
        st = qg__file_write_atomic(ctx, path, text, strlen(text));
    free(text);
    qg__tunedb_reset(ctx);
    return st;
}
