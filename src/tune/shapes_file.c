/* src/tune/shapes_file.c: reading and validating the shapes file of
 * `qgate tune --shapes FILE` (see shapes_file.h) with jansson. Tests:
 * tests/test_tune_shapes.c, tests/fuzz/fuzz_shapes.c. */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "core/error.h"
#include "tune/shapes_file.h"

static const char *const conv_fields[] = {"n", "c", "k", "h", "w", "stride"};
enum { NFIELDS = sizeof conv_fields / sizeof *conv_fields };

/* One conv entry into s; the message names the entry and field at fault. */
static qg_status parse_conv(qg_ctx *ctx, const char *path, size_t i, json_t *e,
                            qg_tune_conv_shape *s)
{
    int v[NFIELDS];
    const char *key;
    json_t *val;
    if (!json_is_object(e))
        return qg__error(ctx, QG_ERR_FORMAT, "shapes file '%s': conv[%zu] must be an object "
                         "{\"n\", \"c\", \"k\", \"h\", \"w\", \"stride\"}", path, i);
    json_object_foreach(e, key, val) {
        int known = 0;
        for (int f = 0; f < NFIELDS; f++)
            known |= strcmp(key, conv_fields[f]) == 0;
        known |= strcmp(key, "groups") == 0;
        if (!known)
            return qg__error(ctx, QG_ERR_FORMAT, "shapes file '%s': conv[%zu]: unknown field "
                             "\"%s\" (expected n, c, k, h, w, stride and optionally groups; "
                             "the kernel is 3x3 with padding 1)", path, i, key);
    }
    for (int f = 0; f < NFIELDS; f++) {
        json_t *j = json_object_get(e, conv_fields[f]);
        if (!j)
            return qg__error(ctx, QG_ERR_FORMAT, "shapes file '%s': conv[%zu]: missing field "
                             "\"%s\"", path, i, conv_fields[f]);
        if (!json_is_integer(j))
            return qg__error(ctx, QG_ERR_FORMAT, "shapes file '%s': conv[%zu]: field \"%s\" "
                             "must be an integer", path, i, conv_fields[f]);
        json_int_t x = json_integer_value(j);
        if (x < 1 || x > INT_MAX)
            return qg__error(ctx, QG_ERR_FORMAT, "shapes file '%s': conv[%zu]: field \"%s\" "
                             "must be between 1 and %d, got %" JSON_INTEGER_FORMAT, path, i,
                             conv_fields[f], INT_MAX, x);
        v[f] = (int)x;
    }
    if (v[5] != 1 && v[5] != 2)
        return qg__error(ctx, QG_ERR_FORMAT, "shapes file '%s': conv[%zu]: field \"stride\" "
                         "must be 1 or 2 (the strides of the direct 3x3 kernels), got %d", path,
                         i, v[5]);
    int groups = 1;
    json_t *jg = json_object_get(e, "groups");
    if (jg) {
        json_int_t x = json_is_integer(jg) ? json_integer_value(jg) : 0;
        if (x < 1 || x > v[1] || v[1] % x || v[2] % x)
            return qg__error(ctx, QG_ERR_FORMAT, "shapes file '%s': conv[%zu]: field "
                             "\"groups\" must be an integer dividing c (%d) and k (%d)", path,
                             i, v[1], v[2]);
        groups = (int)x;
    }
    *s = (qg_tune_conv_shape){.n = v[0], .c = v[1], .k = v[2], .h = v[3], .w = v[4], .r = 3,
                              .stride = v[5], .pad = 1, .groups = groups};
    /* The conv layer's own limits (2^31 elements per tensor). */
    qg_conv_desc d;
    if (qg__conv_desc_init(ctx, &d, s->n, s->c, s->h, s->w, s->k, 3, 3, s->stride, 1,
                           s->groups) != QG_OK)
        return qg__error(ctx, QG_ERR_FORMAT, "shapes file '%s': conv[%zu]: %s", path, i,
                         qg_last_error());
    return QG_OK;
}

static qg_status parse_root(qg_ctx *ctx, const char *path, json_t *root, qg_tune_shapes *out)
{
    const char *key;
    json_t *val;
    if (!json_is_object(root))
        return qg__error(ctx, QG_ERR_FORMAT, "shapes file '%s': expected an object "
                         "{\"schema\": %d, \"conv\": [...]}", path, QG_TUNE_SHAPES_SCHEMA);
    json_object_foreach(root, key, val) {
        if (strcmp(key, "schema") != 0 && strcmp(key, "conv") != 0)
            return qg__error(ctx, QG_ERR_FORMAT, "shapes file '%s': unknown key \"%s\" "
                             "(expected \"schema\" and \"conv\")", path, key);
    }
    json_t *schema = json_object_get(root, "schema");
    if (!json_is_integer(schema))
        return qg__error(ctx, QG_ERR_FORMAT, "shapes file '%s': missing integer \"schema\" "
                         "(expected %d)", path, QG_TUNE_SHAPES_SCHEMA);
    if (json_integer_value(schema) != QG_TUNE_SHAPES_SCHEMA)
        return qg__error(ctx, QG_ERR_FORMAT, "shapes file '%s': schema %" JSON_INTEGER_FORMAT
                         " is not supported (this qgate reads schema %d)", path,
                         json_integer_value(schema), QG_TUNE_SHAPES_SCHEMA);
    json_t *conv = json_object_get(root, "conv");
    if (!json_is_array(conv))
        return qg__error(ctx, QG_ERR_FORMAT, "shapes file '%s': missing array \"conv\"", path);
    size_t n = json_array_size(conv);
    if (n == 0)
        return qg__error(ctx, QG_ERR_FORMAT, "shapes file '%s': \"conv\" is empty, nothing to "
                         "tune", path);
    out->conv = calloc(n, sizeof *out->conv);
    out->conv_class = calloc(n, sizeof *out->conv_class);
    if (!out->conv || !out->conv_class)
        return qg__error(ctx, QG_ERR_NOMEM, "out of memory reading shapes file '%s'", path);
    for (size_t i = 0; i < n; i++) {
        qg_status st = parse_conv(ctx, path, i, json_array_get(conv, i), &out->conv[i]);
        if (st != QG_OK)
            return st;
        const qg_tune_conv_shape *s = &out->conv[i];
        qg_conv_desc d = {.N = s->n, .C = s->c, .K = s->k, .H = s->h, .W = s->w,
                          .stride = s->stride, .groups = s->groups};
        qg__conv_shape_class(&d, out->conv_class[i], sizeof out->conv_class[i]);
        for (size_t j = 0; j < i; j++)
            if (strcmp(out->conv_class[j], out->conv_class[i]) == 0)
                return qg__error(ctx, QG_ERR_FORMAT, "shapes file '%s': conv[%zu] and "
                                 "conv[%zu] have the same shape class %s (the batch n is not "
                                 "part of it); keep one", path, j, i, out->conv_class[i]);
        out->nconv = i + 1;
    }
    return QG_OK;
}

static qg_status parse_text(qg_ctx *ctx, const char *path, json_t *root,
                            const json_error_t *jerr, qg_tune_shapes *out)
{
    if (!root)
        return qg__error(ctx, QG_ERR_FORMAT, "shapes file '%s': invalid JSON at line %d, "
                         "column %d: %s", path, jerr->line, jerr->column, jerr->text);
    qg_status st = parse_root(ctx, path, root, out);
    json_decref(root);
    if (st != QG_OK)
        qg__tune_shapes_free(out);
    return st;
}

qg_status qg__tune_shapes_load(qg_ctx *ctx, const char *path, qg_tune_shapes *out)
{
    *out = (qg_tune_shapes){0};
    FILE *f = fopen(path, "rb");
    if (!f)
        return qg__error(ctx, QG_ERR_IO, "shapes file '%s': cannot open: %s", path,
                         strerror(errno));
    /* A pipe is fine (--shapes <(...)); a directory reads as an error. */
    struct stat sb;
    if (fstat(fileno(f), &sb) == 0 && S_ISDIR(sb.st_mode)) {
        fclose(f);
        return qg__error(ctx, QG_ERR_IO, "shapes file '%s' is a directory", path);
    }
    json_error_t jerr;
    json_t *root = json_loadf(f, 0, &jerr);
    fclose(f);
    return parse_text(ctx, path, root, &jerr, out);
}

qg_status qg__tune_shapes_load_memory(qg_ctx *ctx, const char *name, const void *data,
                                      size_t len, qg_tune_shapes *out)
{
    *out = (qg_tune_shapes){0};
    json_error_t jerr;
    json_t *root = json_loadb(data ? data : "", len, 0, &jerr);
    return parse_text(ctx, name, root, &jerr, out);
}

void qg__tune_shapes_free(qg_tune_shapes *s)
{
    free(s->conv);
    free(s->conv_class);
    *s = (qg_tune_shapes){0};
}
