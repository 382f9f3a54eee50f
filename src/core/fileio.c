/* src/core/fileio.c: whole-file reads, atomic writes, hashing. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"
#include "core/fileio.h"

qg_status qg__file_read(struct qg_ctx *ctx, const char *path, unsigned char **data,
                        size_t *len)
{
    *data = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return qg__error(ctx, QG_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    unsigned char *buf = malloc(cap + 1);
    while (buf) {
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (n < cap)
            break;
        cap *= 2;
        unsigned char *nb = realloc(buf, cap + 1);
        if (!nb) {
            free(buf);
            buf = NULL;
        }
        buf = nb;
    }
    int err = ferror(f);
    fclose(f);
    if (!buf)
        return qg__error(ctx, QG_ERR_NOMEM, "out of memory reading '%s'", path);
    if (err) {
        free(buf);
        return qg__error(ctx, QG_ERR_IO, "read error on '%s'", path);
    }
    buf[n] = 0;
    *data = buf;
    *len = n;
    return QG_OK;
}

qg_status qg__mkdirs(struct qg_ctx *ctx, const char *dir)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", dir);
    for (char *p = tmp + 1; *p; p++) {
        if (*p == '/') {
            *p = 0;
            if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
                return qg__error(ctx, QG_ERR_IO, "cannot create directory '%s': %s", tmp,
                                 strerror(errno));
            *p = '/';
        }
    }
    if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
        return qg__error(ctx, QG_ERR_IO, "cannot create directory '%s': %s", tmp,
                         strerror(errno));
    return QG_OK;
}

qg_status qg__mkdirs_parent(struct qg_ctx *ctx, const char *path)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash || slash == dir)
        return QG_OK; /* in the current directory, or directly under / */
    *slash = 0;
    return qg__mkdirs(ctx, dir);
}

qg_status qg__atomic_open(struct qg_ctx *ctx, const char *path, qg_atomic_file *af)
{
    snprintf(af->path, sizeof af->path, "%s", path);
    snprintf(af->tmp, sizeof af->tmp, "%s.tmp.%ld", path, (long)getpid());
    af->fd = open(af->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (af->fd < 0)
        return qg__error(ctx, QG_ERR_IO, "cannot create '%s': %s", af->tmp, strerror(errno));
    return QG_OK;
}

qg_status qg__atomic_write(struct qg_ctx *ctx, qg_atomic_file *af, const void *data,
                           size_t len)
{
    const unsigned char *p = data;
    while (len) {
        ssize_t w = write(af->fd, p, len);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return qg__error(ctx, QG_ERR_IO, "write to '%s' failed: %s", af->tmp,
                             strerror(errno));
        }
        p += w;
        len -= (size_t)w;
    }
    return QG_OK;
}

qg_status qg__atomic_commit(struct qg_ctx *ctx, qg_atomic_file *af)
{
    if (fsync(af->fd) != 0) {
        qg_status st = qg__error(ctx, QG_ERR_IO, "fsync of '%s' failed: %s", af->tmp,
                                 strerror(errno));
        qg__atomic_abort(af);
        return st;
    }
    close(af->fd);
    af->fd = -1;
    if (rename(af->tmp, af->path) != 0) {
        qg_status st = qg__error(ctx, QG_ERR_IO, "cannot rename '%s' to '%s': %s", af->tmp,
                                 af->path, strerror(errno));
        unlink(af->tmp);
        return st;
    }
    /* The rename itself must reach the disk, or a power loss could bring
     * the old directory entry back. */
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", af->path);
    char *slash = strrchr(dir, '/');
    if (slash)
        *(slash == dir ? slash + 1 : slash) = 0;
    else
        snprintf(dir, sizeof dir, ".");
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return QG_OK;
}

void qg__atomic_abort(qg_atomic_file *af)
{
    if (af->fd >= 0)
        close(af->fd);
    af->fd = -1;
    unlink(af->tmp);
}

qg_status qg__file_write_atomic(struct qg_ctx *ctx, const char *path, const void *data,
                                size_t len)
{
    qg_atomic_file af;
    qg_status st = qg__atomic_open(ctx, path, &af);
    if (st != QG_OK)
        return st;
    st = qg__atomic_write(ctx, &af, data, len);
    if (st != QG_OK) {
        qg__atomic_abort(&af);
        return st;
    }
    return qg__atomic_commit(ctx, &af);
}

uint64_t qg__fnv1a(uint64_t h, const void *data, size_t len)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}
