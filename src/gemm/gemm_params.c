/* src/gemm/gemm_params.c: applying CLBlast's Xgemm kernel parameters
 * through CLBlastOverrideParameters (all 16 must be given). They are the
 * registry program QG_PROG_CLBLAST_XGEMM (src/cl/registry.c: names,
 * candidates, CLBlast's constraints), so the tuning database stores them
 * like any program's. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include <clblast_c.h>

#include "core/error.h"
#include "cl/ctx.h"
#include "cl/tunedb.h"
#include "gemm/gemm.h"

/* ctx->gemm_state says which Xgemm parameters CLBlast runs for this
 * context: NULL = not decided yet (the first GEMM looks up the database),
 * &builtin_mark = CLBlast's own, &override_mark = a set we passed to
 * CLBlastOverrideParameters. The marks are never written. */
static char builtin_mark, override_mark;

qg_status qg__gemm_override(qg_ctx *ctx, const long *values)
{
    const qg_program_desc *d = qg__program_desc(QG_PROG_CLBLAST_XGEMM);
    const char *names[QG_XGEMM_NP];
    size_t vals[QG_XGEMM_NP];
    char why[256];
    if (!d->valid(ctx, values, why, sizeof why))
        return qg__error(ctx, QG_ERR_INVALID_ARG, "invalid CLBlast Xgemm parameters: %s", why);
    for (int i = 0; i < QG_XGEMM_NP; i++) {
        names[i] = d->tunables[i].name;
        vals[i] = (size_t)values[i];
    }
    CLBlastStatusCode s = CLBlastOverrideParameters(ctx->device, "Xgemm", CLBlastPrecisionSingle,
                                                    QG_XGEMM_NP, names, vals);
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
    if (!qg__tunedb_lookup(ctx, QG_PROG_CLBLAST_XGEMM, NULL, v)) {
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
