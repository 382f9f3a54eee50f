/* src/cl/registry.c: the kernel-program registry and the resolution of a
 * program's parameters. Each cl/<name>.cl that holds kernels has one entry
 * (indexed by qg_prog_id, cl/kernels.h) naming its tunables (default,
 * candidates, meaning) and the constraints a parameter set must meet before
 * any build; CLBlast's Xgemm parameters have one too, so the tuning
 * database and the tuner treat them like any program. The tuner and the
 * tests walk this table.
 *
 * Resolution: a program's current values (override, else the tuning
 * database, else defaults) are looked up once and kept as a qg_variant in
 * the context; the per-shape-class ones (conv_direct) are kept in a small
 * hash table. An override or a database change forgets them all. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/fileio.h"
#include "cl/ctx.h"
#include "cl/tunedb.h"

static int valid_wg(const qg_ctx *ctx, const long *v, char *why, size_t cap)
{
    long wg = v[QG_P_WG];
    if (wg < 1 || (wg & (wg - 1)) != 0 || wg > 1024) {
        snprintf(why, cap, "WG=%ld is not a power of two in 1..1024 (the kernels' limit)", wg);
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
    long wwg[1] = {v[QG_DW_WWG]};
    long qt = v[QG_DW_QT], row = v[QG_DW_ROW];
    if (qt < 1 || qt > (row ? 64 : 8) || wwg[0] < 16 || row < 0 || row > 1) {
        snprintf(why, cap, "QT=%ld is not in 1..8 (1..64 with ROW 1), WWG=%ld below 16 or "
                 "ROW=%ld not 0/1", qt, wwg[0], row);
        return 0;
    }
    return valid_wg(ctx, v, why, cap) && valid_wg(ctx, wwg, why, cap);
}

/* The constraints of CLBlast's own Xgemm tuner. Only GEMMK=0, KREG=1 is
 * offered: the 2-D register-tiled variant; GEMMK=1 targets other
 * hardware. */
static int valid_xgemm(const qg_ctx *ctx, const long *v, char *why, size_t cap)
{
#define NEED(cond, msg)                                                           \
    do {                                                                          \
        if (!(cond)) {                                                            \
            snprintf(why, cap, "%s", msg);                                        \
            return 0;                                                             \
        }                                                                         \
    } while (0)
    NEED(v[QG_XGEMM_GEMMK] == 0 && v[QG_XGEMM_KREG] == 1, "only GEMMK=0, KREG=1 is supported");
    NEED(v[QG_XGEMM_KWI] > 0 && v[QG_XGEMM_KWG] % v[QG_XGEMM_KWI] == 0,
         "KWG must be a multiple of KWI");
    NEED(v[QG_XGEMM_MWG] % (v[QG_XGEMM_MDIMC] * v[QG_XGEMM_VWM]) == 0,
         "MWG must be a multiple of MDIMC*VWM");
    NEED(v[QG_XGEMM_NWG] % (v[QG_XGEMM_NDIMC] * v[QG_XGEMM_VWN]) == 0,
         "NWG must be a multiple of NDIMC*VWN");
    NEED(v[QG_XGEMM_MWG] % (v[QG_XGEMM_MDIMA] * v[QG_XGEMM_VWM]) == 0,
         "MWG must be a multiple of MDIMA*VWM");
    NEED(v[QG_XGEMM_NWG] % (v[QG_XGEMM_NDIMB] * v[QG_XGEMM_VWN]) == 0,
         "NWG must be a multiple of NDIMB*VWN");
    long threads = v[QG_XGEMM_MDIMC] * v[QG_XGEMM_NDIMC];
    NEED(threads % v[QG_XGEMM_MDIMA] == 0 &&
             v[QG_XGEMM_KWG] % (threads / v[QG_XGEMM_MDIMA]) == 0,
         "KWG must be a multiple of MDIMC*NDIMC/MDIMA");
    NEED(threads % v[QG_XGEMM_NDIMB] == 0 &&
             v[QG_XGEMM_KWG] % (threads / v[QG_XGEMM_NDIMB]) == 0,
         "KWG must be a multiple of MDIMC*NDIMC/NDIMB");
    NEED((size_t)threads <= ctx->info.max_work_group, "work-group larger than the device's");
    unsigned long long lmem =
        4ULL * ((v[QG_XGEMM_SA] ? v[QG_XGEMM_KWG] * v[QG_XGEMM_MWG] : 0) +
                (v[QG_XGEMM_SB] ? v[QG_XGEMM_KWG] * v[QG_XGEMM_NWG] : 0));
    NEED(lmem <= ctx->info.local_mem, "local memory exceeds the device's");
#undef NEED
    return 1;
}

#define WG_TUNABLE(def_)                                                         \
    {"WG", def_, {16, 32, 64, 128, 256, 512}, 6, "work-group size (power of two)"}

/* Entry `id_` of the table, knowing its own id. */
#define ENTRY(id_, ...) [id_] = {__VA_ARGS__, .id = id_}

static const qg_program_desc programs[] = {
    ENTRY(QG_PROG_ELTWISE, "eltwise", "elementwise fill/axpby/add/mul/relu/dropout",
          {WG_TUNABLE(64)}, 1, valid_wg),
    ENTRY(QG_PROG_REDUCE, "reduce", "sum, absmax and per-channel statistics",
          {WG_TUNABLE(64)}, 1, valid_wg),
    ENTRY(QG_PROG_QUANT, "quant", "quantizers, DoReFa, PACT, PG gate and gating loss",
          {[QG_QUANT_WG] = WG_TUNABLE(64),
           [QG_QUANT_CHUNK] = {"CHUNK", 0, {0, 1}, 2,
                               "share of the elements per item: interleaved 0, contiguous 1", 1},
           [QG_QUANT_VW] = {"VW", 1, {1, 4, 8, 16}, 4, "elements per item step / vector width",
                            16}},
          QG_QUANT_NP, valid_wg_flag),
    ENTRY(QG_PROG_CG, "cg", "channel gating: weight split, gate fwd/bwd, channel shuffle",
          {[QG_CG_WG] = {"WG", 64, {1, 2, 4, 8, 16, 32, 64, 128, 256}, 9,
                         "work-group size (power of two)", 2},
           [QG_CG_VW] = {"VW", 1, {1, 4, 8, 16}, 4, "gate values per item step / vector width",
                         16}},
          QG_CG_NP, valid_wg),
    ENTRY(QG_PROG_BN, "bn", "batch norm (+ fused residual add, ReLU): train/eval forward, backward",
          {[QG_BN_WG] = {"WG", 256, {1, 2, 4, 8, 16, 32, 64, 128, 256, 512}, 10,
                         "work-group size (power of two)", 2},
           [QG_BN_VW] = {"VW", 1, {1, 4, 8, 16}, 4, "values per chunk / vector width", 16},
           [QG_BN_PARTS] = {"PARTS", 0, {0, 4, 8, 16, 32, 64}, 6,
                            "training passes: 0 a work-group per channel, else items over whole "
                            "images", 16}},
          QG_BN_NP, valid_wg),
    ENTRY(QG_PROG_POOL, "pool", "max/avg/global-average pooling fwd+bwd", {WG_TUNABLE(64)}, 1,
          valid_wg),
    ENTRY(QG_PROG_SHORTCUT, "shortcut", "option-A residual shortcut fwd+bwd",
          {[QG_SHORTCUT_WG] = WG_TUNABLE(64),
           [QG_SHORTCUT_ROW] = {"ROW", 0, {0, 1, 2}, 3,
                                "items: one per element (0), row (1) or plane (2)", 2}},
          QG_SHORTCUT_NP, valid_wg_row),
    ENTRY(QG_PROG_LOSS, "loss", "softmax cross-entropy: loss, correct, dlogits",
          {WG_TUNABLE(64)}, 1, valid_wg),
    ENTRY(QG_PROG_OPTIM, "optim", "SGD and Adam steps, sum of squares", {WG_TUNABLE(256)}, 1,
          valid_wg),
    ENTRY(QG_PROG_IM2COL, "im2col", "conv lowering: im2col, col2im, bias", {WG_TUNABLE(64)}, 1,
          valid_wg),
    ENTRY(QG_PROG_CONV_DIRECT, "conv_direct", "direct 3x3 conv fwd/bwd",
          {[QG_DIRECT_WG] = {"WG", 1, {1, 2, 4, 8}, 4, "local size"},
           [QG_DIRECT_VW] = {"VW", 16, {8, 16}, 2, "vector width"},
           [QG_DIRECT_JT] = {"JT", 2, {1, 2, 3, 4}, 4, "fwd vectors per item"},
           [QG_DIRECT_KT] = {"KT", 8, {2, 4, 6, 8}, 4, "fwd channels per item"},
           [QG_DIRECT_WKT] = {"WKT", 2, {1, 2, 3}, 3, "wgrad channels per item", 3},
           [QG_DIRECT_WN] = {"WN", 4, {1, 2, 4, 8, 16}, 5, "wgrad images per partial"}},
          QG_DIRECT_NP, valid_wg),
    /* Defaults are CLBlast's generic values; candidates cover CPU-friendly
     * (large tiles, wide vectors) and GPU-friendly (local memory) shapes.
     * src/gemm/gemm_params.c applies a set with CLBlastOverrideParameters. */
    ENTRY(QG_PROG_CLBLAST_XGEMM, "clblast_xgemm", "CLBlast Xgemm kernel parameters (SGEMM)",
          {[QG_XGEMM_GEMMK] = {"GEMMK", 0, {0}, 1, "GEMM kernel variant"},
           [QG_XGEMM_KREG] = {"KREG", 1, {1}, 1, "register tiling in K (GEMMK=1 only)"},
           [QG_XGEMM_KWG] = {"KWG", 16, {16, 32}, 2, "K tile per work-group"},
           [QG_XGEMM_KWI] = {"KWI", 2, {2, 8}, 2, "K unroll"},
           [QG_XGEMM_MDIMA] = {"MDIMA", 8, {8, 16}, 2, "A-tile loading threads (M)"},
           [QG_XGEMM_MDIMC] = {"MDIMC", 8, {8, 16}, 2, "threads in M"},
           [QG_XGEMM_MWG] = {"MWG", 64, {32, 64, 128}, 3, "M tile per work-group"},
           [QG_XGEMM_NDIMB] = {"NDIMB", 8, {8, 16}, 2, "B-tile loading threads (N)"},
           [QG_XGEMM_NDIMC] = {"NDIMC", 8, {8, 16}, 2, "threads in N"},
           [QG_XGEMM_NWG] = {"NWG", 64, {32, 64, 128}, 3, "N tile per work-group"},
           [QG_XGEMM_SA] = {"SA", 0, {0, 1}, 2, "cache A tile in local memory"},
           [QG_XGEMM_SB] = {"SB", 0, {0, 1}, 2, "cache B tile in local memory"},
           [QG_XGEMM_STRM] = {"STRM", 0, {0}, 1, "strided A loads"},
           [QG_XGEMM_STRN] = {"STRN", 0, {0}, 1, "strided B loads"},
           [QG_XGEMM_VWM] = {"VWM", 4, {1, 2, 4, 8}, 4, "vector width in M"},
           [QG_XGEMM_VWN] = {"VWN", 4, {1, 2, 4, 8}, 4, "vector width in N"}},
          QG_XGEMM_NP, valid_xgemm, .external = 1),
    ENTRY(QG_PROG_CHAN, "chan", "channel split/concat/shuffle as strided channel copies",
          {[QG_CHAN_WG] = WG_TUNABLE(64),
           [QG_CHAN_EPI] = {"EPI", 1, {1, 2, 4, 8}, 4, "consecutive elements per item", 4}},
          QG_CHAN_NP, valid_wg),
    ENTRY(QG_PROG_DWCONV, "dwconv", "depthwise 3x3 conv fwd, data and weight gradients",
          {[QG_DW_WG] = WG_TUNABLE(64),
           [QG_DW_QT] = {"QT", 1, {1, 2, 4, 8, 16, 32}, 6,
                         "outputs (ROW 0) or rows/planes (ROW 1) per item", 16},
           [QG_DW_WWG] = {"WWG", 64, {16, 32, 64, 128, 256}, 5,
                          "wgrad work-group (one per channel)", 16},
           [QG_DW_ROW] = {"ROW", 0, {0, 1}, 2, "items per QT outputs (0) or whole rows/planes (1)",
                          1}},
          QG_DW_NP, valid_dwconv),
    ENTRY(QG_PROG_PSGD, "psgd", "PSGD weight grid: running range, quantization, gradient scale; activation quantizer",
          {WG_TUNABLE(256)}, 1, valid_wg),
    ENTRY(QG_PROG_BSQ, "bsq", "BSQ bit planes: weights fwd/bwd, group-Lasso regulariser, clamp",
          {WG_TUNABLE(64)}, 1, valid_wg),
    ENTRY(QG_PROG_CONV_MASKED, "conv_masked",
          "output-masked 3x3 conv: tiles or per-output gather, fwd and weight gradient",
          {[QG_MASKED_WG] = {"WG", 1, {1, 2, 4, 8}, 4, "local size"},
           [QG_MASKED_VW] = {"VW", 16, {8, 16}, 2, "tile width / vector width"},
           [QG_MASKED_KT] = {"KT", 4, {1, 2, 4, 8}, 4, "output channels per tile"},
           [QG_MASKED_SP] = {"SP", 1, {1, 2, 4, 8}, 4, "fwd items per (image, channel block)"},
           /* the tune case times one wide shape, whose winner would be
            * stored for every shape: MODE stays with the width rule (2)
            * unless set by hand */
           [QG_MASKED_MODE] = {"MODE", 2, {2}, 1,
                               "tiles (0), per-output gather (1), gather on maps under 12 wide (2)"},
           [QG_MASKED_GV] = {"GV", 8, {4, 8}, 2, "gather: channel vector width"},
           /* measured per device and shape class by qgate tune --shapes
            * (src/tune/convm_pays.c), read by qg__convm_pays */
           [QG_MASKED_PAY] = {"PAY", -1, {-1}, 1,
                              "percent of work units up to which skipping beats the dense "
                              "conv (-1: the built-in rule)", .host_only = 1, .lo = -1,
                              .hi = 100}},
          QG_MASKED_NP, valid_wg),
};

_Static_assert(sizeof programs / sizeof *programs == QG_PROG_COUNT,
               "the registry needs one entry per qg_prog_id");
_Static_assert(QG_XGEMM_NP <= QG_MAX_TUNABLES && QG_DIRECT_NP <= QG_MAX_TUNABLES &&
                   QG_DW_NP <= QG_MAX_TUNABLES,
               "QG_MAX_TUNABLES too small");

static const struct {
    qg_prog_id prog;
    const char *name;
} kernels[] = {
#define QG_KERNEL_ROW_(prog, kernel, name) [QG_K_##kernel] = {QG_PROG_##prog, name},
    QG_KERNEL_LIST(QG_KERNEL_ROW_)
#undef QG_KERNEL_ROW_
};

_Static_assert(sizeof kernels / sizeof *kernels == QG_K_COUNT, "one row per qg_kernel_id");

const qg_program_desc *qg__program_find(const char *name)
{
    for (size_t i = 0; i < QG_PROG_COUNT; i++)
        if (strcmp(programs[i].name, name) == 0)
            return &programs[i];
    return NULL;
}

const qg_program_desc *qg__program_desc(qg_prog_id id)
{
    return (unsigned)id < QG_PROG_COUNT ? &programs[id] : NULL;
}

size_t qg__program_count(void)
{
    return QG_PROG_COUNT;
}

const qg_program_desc *qg__program_at(size_t i)
{
    return i < QG_PROG_COUNT ? &programs[i] : NULL;
}

const char *qg__kernel_name(qg_kernel_id k)
{
    return (unsigned)k < QG_K_COUNT ? kernels[k].name : "(no such kernel)";
}

qg_prog_id qg__kernel_program(qg_kernel_id k)
{
    return kernels[k].prog;
}

long qg__tunable_default(const qg_ctx *ctx, const qg_tunable *t)
{
    return ctx->info.type == QG_DEVICE_TYPE_CPU && t->cpu_def ? t->cpu_def : t->def;
}

/* ---- resolution ---- */

/* A shape class's resolution: open addressing over (program, class). */
#define QG_SHAPE_CLASS_MAX 64
typedef struct qg_shape_slot {
    unsigned long long hash;    /* 0: empty */
    qg_prog_id prog;
    char shape[QG_SHAPE_CLASS_MAX];
    qg_variant *v;
} qg_shape_slot;

static unsigned long long shape_hash(qg_prog_id p, const char *shape)
{
    unsigned long long h = qg__fnv1a(QG_FNV_INIT, &p, sizeof p);
    h = qg__fnv1a(h, shape, strlen(shape));
    return h ? h : 1;
}

void qg__program_invalidate(qg_ctx *ctx)
{
    memset(ctx->current, 0, sizeof ctx->current);
    if (ctx->shapes)
        memset(ctx->shapes, 0, ctx->shapes_cap * sizeof *ctx->shapes);
    ctx->nshapes = 0;
}

void qg__variants_free(qg_ctx *ctx)
{
    for (qg_variant *v = ctx->variants, *n; v; v = n) {
        n = v->next;
        for (int k = 0; k < QG_K_COUNT; k++)
            if (v->kernels[k])
                clReleaseKernel(v->kernels[k]);
        free(v);
    }
    ctx->variants = NULL;
    free(ctx->shapes);
    ctx->shapes = NULL;
    ctx->shapes_cap = 0;
    qg__program_invalidate(ctx);
}

/* The context's variant of p with these values, made when new. */
static qg_status variant_for(qg_ctx *ctx, qg_prog_id p, const long *values, qg_variant **out)
{
    int n = programs[p].ntunables;
    for (qg_variant *v = ctx->variants; v; v = v->next)
        if (v->prog == p && memcmp(v->values, values, (size_t)n * sizeof *values) == 0) {
            *out = v;
            return QG_OK;
        }
    qg_variant *v = calloc(1, sizeof *v);
    if (!v)
        return qg__error(ctx, QG_ERR_NOMEM, "out of memory resolving program '%s'",
                         programs[p].name);
    v->prog = p;
    memcpy(v->values, values, (size_t)n * sizeof *values);
    v->next = ctx->variants;
    ctx->variants = v;
    *out = v;
    return QG_OK;
}

/* Override, else the databases (shape class, then "*"), else defaults. */
static void lookup_values(qg_ctx *ctx, qg_prog_id p, const char *shape_class, long *values)
{
    const qg_program_desc *d = &programs[p];
    if (ctx->overridden[p]) {
        memcpy(values, ctx->override_values[p], (size_t)d->ntunables * sizeof *values);
        return;
    }
    if (qg__tunedb_lookup(ctx, p, shape_class, values))
        return;
    for (int i = 0; i < d->ntunables; i++)
        values[i] = qg__tunable_default(ctx, &d->tunables[i]);
}

qg_status qg__variant_resolve(qg_ctx *ctx, qg_prog_id p, const char *shape_class,
                              qg_variant **out)
{
    long values[QG_MAX_TUNABLES] = {0};
    if ((unsigned)p >= QG_PROG_COUNT)
        return qg__error(ctx, QG_ERR_INVALID_ARG, "no kernel program %d in the registry",
                         (int)p);
    lookup_values(ctx, p, shape_class, values);
    qg_status st = variant_for(ctx, p, values, out);
    if (st == QG_OK && !shape_class)
        ctx->current[p] = *out;
    return st;
}

static qg_status shapes_grow(qg_ctx *ctx)
{
    size_t cap = ctx->shapes_cap ? 2 * ctx->shapes_cap : 64;
    qg_shape_slot *t = calloc(cap, sizeof *t);
    if (!t)
        return qg__error(ctx, QG_ERR_NOMEM, "out of memory caching shape classes");
    for (size_t i = 0; i < ctx->shapes_cap; i++) {
        qg_shape_slot *s = &ctx->shapes[i];
        if (!s->hash)
            continue;
        size_t j = (size_t)s->hash & (cap - 1);
        while (t[j].hash)
            j = (j + 1) & (cap - 1);
        t[j] = *s;
    }
    free(ctx->shapes);
    ctx->shapes = t;
    ctx->shapes_cap = cap;
    return QG_OK;
}

qg_status qg__variant_shape(qg_ctx *ctx, qg_prog_id p, const char *shape_class,
                            qg_variant **out)
{
    if (!shape_class)
        return qg__variant_current(ctx, p, out);
    size_t len = strlen(shape_class);
    if (len >= QG_SHAPE_CLASS_MAX) /* too long to cache: resolve each time */
        return qg__variant_resolve(ctx, p, shape_class, out);
    unsigned long long h = shape_hash(p, shape_class);
    if (ctx->shapes_cap) {
        for (size_t j = (size_t)h & (ctx->shapes_cap - 1);; j = (j + 1) & (ctx->shapes_cap - 1)) {
            qg_shape_slot *s = &ctx->shapes[j];
            if (!s->hash)
                break;
            if (s->hash == h && s->prog == p && memcmp(s->shape, shape_class, len + 1) == 0) {
                *out = s->v;
                return QG_OK;
            }
        }
    }
    qg_status st = qg__variant_resolve(ctx, p, shape_class, out);
    if (st != QG_OK)
        return st;
    if (2 * (ctx->nshapes + 1) > ctx->shapes_cap && (st = shapes_grow(ctx)) != QG_OK)
        return st;
    size_t j = (size_t)h & (ctx->shapes_cap - 1);
    while (ctx->shapes[j].hash)
        j = (j + 1) & (ctx->shapes_cap - 1);
    ctx->shapes[j] = (qg_shape_slot){.hash = h, .prog = p, .v = *out};
    memcpy(ctx->shapes[j].shape, shape_class, len + 1);
    ctx->nshapes++;
    return QG_OK;
}

/* ---- by name: tests, the tuner, tools ---- */

static qg_status find(qg_ctx *ctx, const char *program, const qg_program_desc **d)
{
    *d = program ? qg__program_find(program) : NULL;
    if (!*d)
        return qg__error(ctx, QG_ERR_NOT_FOUND, "no kernel program '%s' in the registry",
                         program ? program : "(null)");
    return QG_OK;
}

qg_status qg__program_params(qg_ctx *ctx, const char *program, long *values, int *n)
{
    return qg__program_params_shape(ctx, program, NULL, values, n);
}

qg_status qg__program_params_shape(qg_ctx *ctx, const char *program, const char *shape_class,
                                   long *values, int *n)
{
    const qg_program_desc *d;
    qg_variant *v;
    qg_status st = find(ctx, program, &d);
    if (st == QG_OK)
        st = qg__variant_shape(ctx, d->id, shape_class, &v);
    if (st != QG_OK)
        return st;
    *n = d->ntunables;
    memcpy(values, v->values, (size_t)d->ntunables * sizeof *values);
    return QG_OK;
}

qg_status qg__program_override(qg_ctx *ctx, const char *program, const long *values)
{
    const qg_program_desc *d;
    qg_status st = find(ctx, program, &d);
    if (st != QG_OK)
        return st;
    if (values) {
        char why[256] = "";
        for (int i = 0; i < d->ntunables; i++)
            if (d->tunables[i].host_only &&
                (values[i] < d->tunables[i].lo || values[i] > d->tunables[i].hi))
                return qg__error(ctx, QG_ERR_INVALID_ARG, "invalid parameters for program "
                                 "'%s': %s=%ld is not in %ld..%ld", program,
                                 d->tunables[i].name, values[i], d->tunables[i].lo,
                                 d->tunables[i].hi);
        if (d->valid && !d->valid(ctx, values, why, sizeof why))
            return qg__error(ctx, QG_ERR_INVALID_ARG,
                             "invalid parameters for program '%s': %s", program, why);
        memcpy(ctx->override_values[d->id], values, (size_t)d->ntunables * sizeof *values);
    }
    ctx->overridden[d->id] = values != NULL;
    qg__program_invalidate(ctx);
    return QG_OK;
}

static int to_kparams(const qg_variant *v, qg_kparam *kp)
{
    const qg_program_desc *d = &programs[v->prog];
    int n = 0;
    for (int i = 0; i < d->ntunables; i++)
        if (!d->tunables[i].host_only)
            kp[n++] = (qg_kparam){d->tunables[i].name, v->values[i]};
    return n;
}

qg_status qg__program_build_current(qg_ctx *ctx, const char *program)
{
    const qg_program_desc *d;
    qg_variant *v;
    qg_kparam kp[QG_MAX_TUNABLES];
    qg_status st = find(ctx, program, &d);
    if (st == QG_OK)
        st = qg__variant_current(ctx, d->id, &v);
    if (st != QG_OK)
        return st;
    if (d->external)
        return qg__error(ctx, QG_ERR_INVALID_ARG, "program '%s' has no cl/ source to build",
                         program);
    return qg__program_build(ctx, program, kp, (size_t)to_kparams(v, kp));
}

/* ---- kernels of a variant ---- */

qg_status qg__variant_kernel(qg_ctx *ctx, qg_variant *v, qg_kernel_id k)
{
    if ((unsigned)k >= QG_K_COUNT || kernels[k].prog != v->prog)
        return qg__error(ctx, QG_ERR_INVALID_ARG, "kernel %d is not one of program '%s'",
                         (int)k, programs[v->prog].name);
    if (programs[v->prog].external)
        return qg__error(ctx, QG_ERR_INVALID_ARG, "program '%s' has no cl/ source to build",
                         programs[v->prog].name);
    qg_status st;
    if (!v->program) {
        qg_kparam kp[QG_MAX_TUNABLES];
        st = qg__program_build_get(ctx, programs[v->prog].name, kp,
                                   (size_t)to_kparams(v, kp), &v->program);
        if (st != QG_OK)
            return st;
    }
    cl_int e;
    cl_kernel kern = clCreateKernel(v->program, kernels[k].name, &e);
    if (e != CL_SUCCESS)
        return qg__error(ctx, QG_ERR_CL, "clCreateKernel('%s') in program '%s' failed with %s",
                         kernels[k].name, programs[v->prog].name, qg_cl_error_name(e));
    cl_uint nargs = 0;
    e = clGetKernelInfo(kern, CL_KERNEL_NUM_ARGS, sizeof nargs, &nargs, NULL);
    if (e != CL_SUCCESS) {
        clReleaseKernel(kern);
        return qg__cl_error(ctx, e, "clGetKernelInfo(CL_KERNEL_NUM_ARGS)", __FILE__, __LINE__);
    }
    v->kernels[k] = kern;
    v->nargs[k] = nargs;
    return QG_OK;
}
