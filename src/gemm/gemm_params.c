/* src/gemm/gemm_params.c: CLBlast's Xgemm kernel parameters as a tunable
 * "program" for the tuning database, and applying a stored set through
 * CLBlastOverrideParameters (all 16 must be given). The constraints are
 * those of CLBlast's own Xgemm tuner. Only GEMMK=0, KREG=1 is offered:
 * the 2-D register-tiled variant; GEMMK=1 targets other hardware. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include <clblast_c.h>

#include "core/error.h"
#include "cl/ctx.h"
#include "gemm/gemm.h"
#include "tune/tunedb.h"

enum { P_GEMMK, P_KREG, P_KWG, P_KWI, P_MDIMA, P_MDIMC, P_MWG, P_NDIMB, P_NDIMC, P_NWG, P_SA,
       P_SB, P_STRM, P_STRN, P_VWM, P_VWN, P_COUNT };

static int valid_xgemm(const qg_ctx *ctx, const long *v, char *why, size_t cap)
{
#define NEED(cond, msg)                                                           \
    do {                                                                          \
        if (!(cond)) {                                                            \
            snprintf(why, cap, "%s", msg);                                        \
            return 0;                                                             \
        }                                                                         \
    } while (0)
    NEED(v[P_GEMMK] == 0 && v[P_KREG] == 1, "only GEMMK=0, KREG=1 is supported");
    NEED(v[P_KWI] > 0 && v[P_KWG] % v[P_KWI] == 0, "KWG must be a multiple of KWI");
    NEED(v[P_MWG] % (v[P_MDIMC] * v[P_VWM]) == 0, "MWG must be a multiple of MDIMC*VWM");
    NEED(v[P_NWG] % (v[P_NDIMC] * v[P_VWN]) == 0, "NWG must be a multiple of NDIMC*VWN");
    NEED(v[P_MWG] % (v[P_MDIMA] * v[P_VWM]) == 0, "MWG must be a multiple of MDIMA*VWM");
    NEED(v[P_NWG] % (v[P_NDIMB] * v[P_VWN]) == 0, "NWG must be a multiple of NDIMB*VWN");
    long threads = v[P_MDIMC] * v[P_NDIMC];
    NEED(threads % v[P_MDIMA] == 0 && v[P_KWG] % (threads / v[P_MDIMA]) == 0,
         "KWG must be a multiple of MDIMC*NDIMC/MDIMA");
    NEED(threads % v[P_NDIMB] == 0 && v[P_KWG] % (threads / v[P_NDIMB]) == 0,
         "KWG must be a multiple of MDIMC*NDIMC/NDIMB");
    NEED((size_t)threads <= ctx->info.max_work_group, "work-group larger than the device's");
    unsigned long long lmem = 4ULL * ((v[P_SA] ? v[P_KWG] * v[P_MWG] : 0) +
                                      (v[P_SB] ? v[P_KWG] * v[P_NWG] : 0));
    NEED(lmem <= ctx->info.local_mem, "local memory exceeds the device's");
#undef NEED
    return 1;
}

/* Defaults are CLBlast's generic values; candidates cover CPU-friendly
 * (large tiles, wide vectors) and GPU-friendly (local memory) shapes. */
static const qg_program_desc xgemm_desc = {
    "clblast_xgemm",
    "CLBlast Xgemm kernel parameters (SGEMM)",
    {
        {"GEMMK", 0, {0}, 1, "GEMM kernel variant"},
        {"KREG", 1, {1}, 1, "register tiling in K (GEMMK=1 only)"},
        {"KWG", 16, {16, 32}, 2, "K tile per work-group"},
        {"KWI", 2, {2, 8}, 2, "K unroll"},
        {"MDIMA", 8, {8, 16}, 2, "A-tile loading threads (M)"},
        {"MDIMC", 8, {8, 16}, 2, "threads in M"},
        {"MWG", 64, {32, 64, 128}, 3, "M tile per work-group"},
        {"NDIMB", 8, {8, 16}, 2, "B-tile loading threads (N)"},
        {"NDIMC", 8, {8, 16}, 2, "threads in N"},
        {"NWG", 64, {32, 64, 128}, 3, "N tile per work-group"},
        {"SA", 0, {0, 1}, 2, "cache A tile in local memory"},
        {"SB", 0, {0, 1}, 2, "cache B tile in local memory"},
        {"STRM", 0, {0}, 1, "strided A loads"},
        {"STRN", 0, {0}, 1, "strided B loads"},
        {"VWM", 4, {1, 2, 4, 8}, 4, "vector width in M"},
        {"VWN", 4, {1, 2, 4, 8}, 4, "vector width in N"},
    },
    P_COUNT,
    valid_xgemm,
};

const qg_program_desc *qg__gemm_program_desc(void)
{
    return &xgemm_desc;
}

/* ctx->gemm_state says which Xgemm parameters CLBlast runs for this
 * context: NULL = not decided yet (the first GEMM looks up the database),
 * &builtin_mark = CLBlast's own, &override_mark = a set we passed to
 * CLBlastOverrideParameters. The marks are never written. */
static char builtin_mark, override_mark;

qg_status qg__gemm_override(qg_ctx *ctx, const long *values)
{
    const char *names[P_COUNT];
    size_t vals[P_COUNT];
    char why[256];
    if (!valid_xgemm(ctx, values, why, sizeof why))
        return qg__error(ctx, QG_ERR_INVALID_ARG, "invalid CLBlast Xgemm parameters: %s", why);
    for (int i = 0; i < P_COUNT; i++) {
        names[i] = xgemm_desc.tunables[i].name;
        vals[i] = (size_t)values[i];
    }
    CLBlastStatusCode s = CLBlastOverrideParameters(ctx->device, "Xgemm", CLBlastPrecisionSingle,
                                                    P_COUNT, names, vals);
    if (s != CLBlastSuccess)
        return qg__error(ctx, QG_ERR_CLBLAST, "CLBlastOverrideParameters(Xgemm) failed with "
                         "status %d on device '%s'", (int)s, ctx->info.name);
    ctx->gemm_state = &override_mark;
    return QG_OK;
}

/* Called before every GEMM: the first time, a tuned set from the
 * database replaces CLBlast's built-in one. */
qg_status qg__gemm_apply_tuned(qg_ctx *ctx)
{
    long v[QG_MAX_TUNABLES];
    if (ctx->gemm_state)
        return QG_OK;
    if (!qg__tunedb_lookup(ctx, "clblast_xgemm", NULL, v)) {
        ctx->gemm_state = &builtin_mark;
        return QG_OK;
    }
    return qg__gemm_override(ctx, v);
}

qg_status qg__gemm_use_builtin(qg_ctx *ctx)
{
    if (ctx->gemm_state == &override_mark)
        return qg__error(ctx, QG_ERR_UNSUPPORTED, "CLBlast's built-in Xgemm parameters cannot "
                         "be restored on device '%s' once overridden (CLBlast keeps overrides "
                         "for the life of the process)", ctx->info.name);
    ctx->gemm_state = &builtin_mark;
    return QG_OK;
}
