/* src/cl/sources.c: where kernel source text comes from: the copies
 * embedded at build time, or $QGATE_KERNEL_DIR for quick edits. Both give
 * the same bytes for the same file, hence the same cache key. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/fileio.h"
#include "cl/ctx.h"

qg_status qg__cl_source_load(qg_ctx *ctx, const char *name, char **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    if (ctx->kernel_dir[0]) {
        char path[PATH_MAX + 80];
        unsigned char *data;
        snprintf(path, sizeof path, "%s/%s.cl", ctx->kernel_dir, name);
        qg_status st = qg__file_read(ctx, path, &data, len);
        if (st != QG_OK) {
            qg__error_append(ctx, "kernel source for program '%s' (QGATE_KERNEL_DIR=%s)",
                             name, ctx->kernel_dir);
            return st;
        }
        *out = (char *)data;
        return QG_OK;
    }
    for (size_t i = 0; i < qg__cl_source_count; i++) {
        if (strcmp(qg__cl_sources[i].name, name) == 0) {
            char *s = malloc(qg__cl_sources[i].len + 1);
            if (!s)
                return qg__error(ctx, QG_ERR_NOMEM, "out of memory");
            memcpy(s, qg__cl_sources[i].bytes, qg__cl_sources[i].len);
            s[qg__cl_sources[i].len] = 0;
            *out = s;
            *len = qg__cl_sources[i].len;
            return QG_OK;
        }
    }
    return qg__error(ctx, QG_ERR_NOT_FOUND, "no kernel source 'cl/%s.cl' is embedded in "
                     "libqgate", name);
}
