/* src/cl/registry.c: the kernel-program registry. Each cl/<name>.cl that
 * holds kernels has one entry naming its tunables (default, candidates,
 * meaning) and the constraints a parameter set must meet before any build;
 * the tuner and the tests walk this table. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "cl/ctx.h"
#include "tune/tunedb.h"

static int valid_wg(const qg_ctx *ctx, const long *v, char *why, size_t cap)
{
    long wg = v[0];
    if (wg < 1 || (wg & (wg - 1)) != 0) {
        snprintf(why, cap, "WG=%ld is not a power of two", wg);
        return 0;
    }
    if ((size_t)wg > ctx->info.max_work_group) {
        snprintf(why, cap, "WG=%ld exceeds the device's max work-group %zu", wg,
                 ctx->info.max_work_group);
        return 0;
    }
    return 1;
}

/* WG as above, then a choice of algorithm or loop layout among `n`
 * (quant's CHUNK: 2, shortcut's ROW: 3). */
static int valid_wg_choice(const qg_ctx *ctx, const long *v, long n, char *why, size_t cap)
{
    if (v[1] < 0 || v[1] >= n) {
        snprintf(why, cap, "the choice of layout (CHUNK, ROW) is %ld, not in 0..%ld", v[1],
                 n - 1);
        return 0;
    }
    return valid_wg(ctx, v, why, cap);
}

static int valid_wg_flag(const qg_ctx *ctx, const long *v, char *why, size_t cap)
{
    return valid_wg_choice(ctx, v, 2, why, cap);
}

static int valid_wg_row(const qg_ctx *ctx, const long *v, char *why, size_t cap)
{
    return valid_wg_choice(ctx, v, 3, why, cap);
}

/* dwconv: WG and the wgrad work-group WWG, both powers of two within the
 * device's limit; QT outputs per item; ROW a flag. */
static int valid_dwconv(const qg_ctx *ctx, const long *v, char *why, size_t cap)
{
    long wwg[1] = {v[2]};
    if (v[1] < 1 || v[1] > (v[3] ? 64 : 8) || v[2] < 16 || v[3] < 0 || v[3] > 1) {
        snprintf(why, cap, "QT=%ld is not in 1..8 (1..64 with ROW 1), WWG=%ld below 16 or "
                 "ROW=%ld not 0/1", v[1], v[2], v[3]);
        return 0;
    }
    return valid_wg(ctx, v, why, cap) && valid_wg(ctx, wwg, why, cap);
}

#define WG_TUNABLE(def_)                                                         \
    {"WG", def_, {16, 32, 64, 128, 256, 512}, 6, "work-group size (power of two)"}

static const qg_program_desc programs[] = {
    {"eltwise", "elementwise fill/axpby/add/mul/relu", {WG_TUNABLE(64)}, 1, valid_wg},
    {"reduce", "sum, absmax and per-channel statistics", {WG_TUNABLE(64)}, 1, valid_wg},
    {"quant", "quantizers, DoReFa, PACT, PG gate and gating loss",
     {WG_TUNABLE(64),
      {"CHUNK", 0, {0, 1}, 2, "share of the elements per item: interleaved 0, contiguous 1", 1},
      {"VW", 1, {1, 4, 8, 16}, 4, "elements per item step / vector width", 16}},
     3, valid_wg_flag},
    {"cg", "channel gating: weight split, gate fwd/bwd, channel shuffle",
     {{"WG", 64, {1, 2, 4, 8, 16, 32, 64, 128, 256}, 9, "work-group size (power of two)", 2},
      {"VW", 1, {1, 4, 8, 16}, 4, "gate values per item step / vector width", 16}}, 2,
     valid_wg},
    {"bn", "batch norm (+ fused residual add, ReLU): train/eval forward, backward",
     {{"WG", 256, {1, 2, 4, 8, 16, 32, 64, 128, 256, 512}, 10, "work-group size (power of two)",
       2},
      {"VW", 1, {1, 4, 8, 16}, 4, "values per chunk / vector width", 16},
      {"PARTS", 0, {0, 4, 8, 16, 32, 64}, 6,
       "training passes: 0 a work-group per channel, else items over whole images", 16}},
     3, valid_wg},
    {"pool", "max/avg/global-average pooling fwd+bwd", {WG_TUNABLE(64)}, 1, valid_wg},
    {"shortcut", "option-A residual shortcut fwd+bwd",
     {WG_TUNABLE(64),
      {"ROW", 0, {0, 1, 2}, 3, "items: one per element (0), row (1) or plane (2)", 2}},
     2,
     valid_wg_row},
    {"loss", "softmax cross-entropy: loss, correct, dlogits", {WG_TUNABLE(64)}, 1, valid_wg},
    {"optim", "SGD and Adam steps, sum of squares", {WG_TUNABLE(256)}, 1, valid_wg},
    {"im2col", "conv lowering: im2col, col2im, bias", {WG_TUNABLE(64)}, 1, valid_wg},
    {"conv_direct", "direct 3x3 conv fwd/bwd",
     {{"WG", 1, {1, 2, 4, 8}, 4, "local size"}, {"VW", 16, {8, 16}, 2, "vector width"},
      {"JT", 2, {1, 2, 3, 4}, 4, "fwd vectors per item"},
      {"KT", 8, {2, 4, 6, 8}, 4, "fwd channels per item"},
      {"WKT", 2, {1, 2, 3}, 3, "wgrad channels per item", 3},
      {"WN", 4, {1, 2, 4, 8, 16}, 5, "wgrad images per partial"}}, 6, valid_wg},
    {"chan", "channel split/concat/shuffle as strided channel copies",
     {WG_TUNABLE(64), {"EPI", 1, {1, 2, 4, 8}, 4, "consecutive elements per item", 4}}, 2,
     valid_wg},
    {"dwconv", "depthwise 3x3 conv fwd, data and weight gradients",
     {WG_TUNABLE(64), {"QT", 1, {1, 2, 4, 8, 16, 32}, 6, "outputs (ROW 0) or rows (ROW 1) per item", 16},
      {"WWG", 64, {16, 32, 64, 128, 256}, 5, "wgrad work-group (one per channel)", 16},
      {"ROW", 0, {0, 1}, 2, "items per QT outputs (0) or per QT output rows (1)", 1}}, 4,
     valid_dwconv},
};

const qg_program_desc *qg__program_find(const char *name)
{
    for (size_t i = 0; i < sizeof programs / sizeof *programs; i++)
        if (strcmp(programs[i].name, name) == 0)
            return &programs[i];
    return NULL;
}

size_t qg__program_count(void)
{
    return sizeof programs / sizeof *programs;
}

const qg_program_desc *qg__program_at(size_t i)
{
    return i < qg__program_count() ? &programs[i] : NULL;
}

long qg__tunable_default(const qg_ctx *ctx, const qg_tunable *t)
{
    return ctx->info.type == QG_DEVICE_TYPE_CPU && t->cpu_def ? t->cpu_def : t->def;
}

struct qg_param_override {
    const qg_program_desc *desc;
    long values[QG_MAX_TUNABLES];
    struct qg_param_override *next;
};

static struct qg_param_override *find_override(qg_ctx *ctx, const qg_program_desc *d)
{
    for (struct qg_param_override *o = ctx->overrides; o; o = o->next)
        if (o->desc == d)
            return o;
    return NULL;
}

qg_status qg__program_params(qg_ctx *ctx, const char *program, long *values, int *n)
{
    return qg__program_params_shape(ctx, program, NULL, values, n);
}

qg_status qg__program_params_shape(qg_ctx *ctx, const char *program, const char *shape_class,
                                   long *values, int *n)
{
    const qg_program_desc *d = qg__program_find(program);
    if (!d)
        return qg__error(ctx, QG_ERR_NOT_FOUND, "no kernel program '%s' in the registry",
                         program);
    struct qg_param_override *o = find_override(ctx, d);
    *n = d->ntunables;
    if (o) {
        memcpy(values, o->values, (size_t)d->ntunables * sizeof *values);
        return QG_OK;
    }
    /* The database tries the shape class first, then its "*" entry. */
    if (qg__tunedb_lookup(ctx, program, shape_class, values))
        return QG_OK;
    for (int i = 0; i < d->ntunables; i++)
        values[i] = qg__tunable_default(ctx, &d->tunables[i]);
    return QG_OK;
}

qg_status qg__program_override(qg_ctx *ctx, const char *program, const long *values)
{
    const qg_program_desc *d = qg__program_find(program);
    if (!d)
        return qg__error(ctx, QG_ERR_NOT_FOUND, "no kernel program '%s' in the registry",
                         program);
    struct qg_param_override *o = find_override(ctx, d);
    if (!values) {
        if (o) {
            struct qg_param_override **pp = &ctx->overrides;
            while (*pp != o)
                pp = &(*pp)->next;
            *pp = o->next;
            free(o);
        }
        return QG_OK;
    }
    char why[256] = "";
    if (d->valid && !d->valid(ctx, values, why, sizeof why))
        return qg__error(ctx, QG_ERR_INVALID_ARG, "invalid parameters for program '%s': %s",
                         program, why);
    if (!o) {
        o = calloc(1, sizeof *o);
        if (!o)
            return qg__error(ctx, QG_ERR_NOMEM, "out of memory");
        o->desc = d;
        o->next = ctx->overrides;
        ctx->overrides = o;
    }
    memcpy(o->values, values, (size_t)d->ntunables * sizeof *values);
    return QG_OK;
}

void qg__overrides_free(qg_ctx *ctx)
{
    for (struct qg_param_override *o = ctx->overrides, *n; o; o = n) {
        n = o->next;
        free(o);
    }
    ctx->overrides = NULL;
}

static int to_kparams(qg_ctx *ctx, const char *program, qg_kparam *kp, qg_status *st)
{
    long values[QG_MAX_TUNABLES];
    int n = 0;
    *st = qg__program_params(ctx, program, values, &n);
    if (*st != QG_OK)
        return 0;
    const qg_program_desc *d = qg__program_find(program);
    for (int i = 0; i < n; i++) {
        kp[i].name = d->tunables[i].name;
        kp[i].value = values[i];
    }
    return n;
}

qg_status qg__program_build_current(qg_ctx *ctx, const char *program)
{
    qg_kparam kp[QG_MAX_TUNABLES];
    qg_status st;
    int n = to_kparams(ctx, program, kp, &st);
    if (st != QG_OK)
        return st;
    return qg__program_build(ctx, program, kp, (size_t)n);
}

qg_status qg__kernel_current(qg_ctx *ctx, const char *program, const char *kernel,
                             cl_kernel *out, const char *param, long *param_value)
{
    qg_kparam kp[QG_MAX_TUNABLES];
    qg_status st;
    int n = to_kparams(ctx, program, kp, &st);
    if (st != QG_OK)
        return st;
    for (int i = 0; i < n; i++)
        if (param && param_value && strcmp(param, kp[i].name) == 0)
            *param_value = kp[i].value;
    return qg__kernel_get(ctx, program, kp, (size_t)n, kernel, out);
}
