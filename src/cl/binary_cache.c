/* src/cl/binary_cache.c: compiled program binaries on disk.
 *
 * File: <cache_dir>/<fnv64(key)>.bin =
 *   "QGBIN2\n" + key + "\n" + fnv64(binary) as 16 hex digits + "\n" + binary.
 * The full key is stored and compared, so a hash collision or a file from
 * another driver is a miss, never a wrong program; the checksum keeps a
 * damaged binary away from the driver (PoCL crashes on some). Writes are atomic, so
 * concurrent processes (parallel tests) never see half a file. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/fileio.h"
#include "cl/ctx.h"

#define MAGIC "QGBIN2\n"
#define SUMLEN 17 /* 16 hex digits + newline */

static void path_for(const qg_ctx *ctx, const char *key, char *path, size_t cap)
{
    uint64_t h = qg__fnv1a(QG_FNV_INIT, key, strlen(key));
    snprintf(path, cap, "%s/%016llx.bin", ctx->cache_dir, (unsigned long long)h);
}

qg_status qg__bincache_load(qg_ctx *ctx, const char *key, unsigned char **bin, size_t *len)
{
    char path[PATH_MAX + 32];
    unsigned char *data;
    size_t n;
    *bin = NULL;
    *len = 0;
    if (!ctx->cache_dir[0])
        return QG_ERR_NOT_FOUND;
    path_for(ctx, key, path, sizeof path);
    char saved[sizeof ctx->head.err];
    memcpy(saved, ctx->head.err, sizeof saved);
    qg_status st = qg__file_read(ctx, path, &data, &n);
    memcpy(ctx->head.err, saved, sizeof saved); /* a miss is not an error */
    if (st != QG_OK)
        return QG_ERR_NOT_FOUND;
    size_t ml = strlen(MAGIC), kl = strlen(key);
    size_t off = ml + kl + 1 + SUMLEN;
    if (n <= off || memcmp(data, MAGIC, ml) != 0 || memcmp(data + ml, key, kl) != 0 ||
        data[ml + kl] != '\n') {
        free(data);
        return QG_ERR_NOT_FOUND;
    }
    char sum[SUMLEN + 1];
    snprintf(sum, sizeof sum, "%016llx\n",
             (unsigned long long)qg__fnv1a(QG_FNV_INIT, data + off, n - off));
    if (memcmp(sum, data + ml + kl + 1, SUMLEN) != 0) {
        if (ctx->verbose)
            fprintf(stderr, "qgate: ignoring damaged cached binary %s\n", path);
        free(data);
        return QG_ERR_NOT_FOUND;
    }
    memmove(data, data + off, n - off);
    *bin = data;
    *len = n - off;
    return QG_OK;
}

void qg__bincache_store(qg_ctx *ctx, const char *key, const unsigned char *bin, size_t len)
{
    char path[PATH_MAX + 32];
    char saved[sizeof ctx->head.err];
    if (!ctx->cache_dir[0])
        return;
    /* The cache is an optimisation: failing to write it must not fail the
     * build, nor leave an error message behind. */
    memcpy(saved, ctx->head.err, sizeof saved);
    if (qg__mkdirs(ctx, ctx->cache_dir) == QG_OK) {
        path_for(ctx, key, path, sizeof path);
        size_t ml = strlen(MAGIC), kl = strlen(key);
        size_t off = ml + kl + 1 + SUMLEN;
        unsigned char *buf = malloc(off + len + 1);
        if (buf) {
            memcpy(buf, MAGIC, ml);
            memcpy(buf + ml, key, kl);
            buf[ml + kl] = '\n';
            snprintf((char *)buf + ml + kl + 1, SUMLEN + 1, "%016llx\n",
                     (unsigned long long)qg__fnv1a(QG_FNV_INIT, bin, len));
            memcpy(buf + off, bin, len);
            if (qg__file_write_atomic(ctx, path, buf, off + len) != QG_OK &&
                ctx->verbose)
                fprintf(stderr, "qgate: warning: %s\n", ctx->head.err);
            free(buf);
        }
    } else if (ctx->verbose) {
        fprintf(stderr, "qgate: warning: kernel cache disabled: %s\n", ctx->head.err);
    }
    memcpy(ctx->head.err, saved, sizeof saved);
}
