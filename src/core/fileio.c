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

qg_status qg__file_open_regular(struct qg_ctx *ctx, const char *path, int *fd,
                                uint64_t *size)
{
    *fd = -1;
    *size = 0;
    /* O_NONBLOCK: opening a FIFO for reading would otherwise wait for a
     * writer before fstat could refuse it. */
    int f = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (f < 0)
        return qg__error(ctx, QG_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    struct stat sb;
    if (fstat(f, &sb) != 0) {
        qg_status st = qg__error(ctx, QG_ERR_IO, "cannot stat '%s': %s", path,
                                 strerror(errno));
        close(f);
        return st;
    }
    if (!S_ISREG(sb.st_mode)) {
        close(f);
        return qg__error(ctx, QG_ERR_IO, "'%s' is %s, not a regular file", path,
                         qg__file_kind(sb.st_mode));
    }
    int fl = fcntl(f, F_GETFL);
    if (fl >= 0)
        fcntl(f, F_SETFL, fl & ~O_NONBLOCK);
    *fd = f;
    *size = (uint64_t)sb.st_size;
    return QG_OK;
}

qg_status qg__file_read_at(struct qg_ctx *ctx, int fd, const char *path, uint64_t offset,
                           void *buf, size_t len, size_t *got)
{
    unsigned char *p = buf;
    *got = 0;
    while (*got < len) {
        ssize_t r = pread(fd, p + *got, len - *got, (off_t)(offset + *got));
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return qg__error(ctx, QG_ERR_IO, "read error on '%s' at byte offset %llu: %s",
                             path, (unsigned long long)(offset + *got), strerror(errno));
        }
        if (r == 0)
            break;
        *got += (size_t)r;
    }
    return QG_OK;
}

qg_status qg__file_read(struct qg_ctx *ctx, const char *path, unsigned char **data,
                        size_t *len)
{
    *data = NULL;
    *len = 0;
    int fd;
    uint64_t size;
    qg_status st = qg__file_open_regular(ctx, path, &fd, &size);
    if (st != QG_OK)
        return st;
    if (size >= SIZE_MAX) {
        close(fd);
        return qg__error(ctx, QG_ERR_NOMEM, "'%s' is too large to read", path);
    }
    /* Bounded by the size fstat reported: a file that grows meanwhile is
     * read as it was; one that shrinks is short, which callers check. */
    unsigned char *buf = malloc((size_t)size + 1);
    if (!buf) {
        close(fd);
        return qg__error(ctx, QG_ERR_NOMEM, "out of memory reading '%s' (%llu bytes)", path,
                         (unsigned long long)size);
    }
    size_t n;
    st = qg__file_read_at(ctx, fd, path, 0, buf, (size_t)size, &n);
    close(fd);
    if (st != QG_OK) {
        free(buf);
        return st;
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

/* The rename at commit replaces whatever `path` names; refuse anything
 * that is not a regular file (a device node, FIFO, socket or directory
 * given as an output path must not be swapped for a plain file). A
 * symbolic link is followed for the check, and the link itself is then
 * replaced, as before. */
static qg_status check_target(struct qg_ctx *ctx, const char *path)
{
    struct stat sb;
    if (stat(path, &sb) != 0) {
        if (errno == ENOENT)
            return QG_OK;
        return qg__error(ctx, QG_ERR_IO, "cannot write '%s': %s", path, strerror(errno));
    }
    if (S_ISREG(sb.st_mode))
        return QG_OK;
    return qg__error(ctx, QG_ERR_IO, "refusing to write '%s': it exists and is %s, not a "
                     "regular file", path, qg__file_kind(sb.st_mode));
}

const char *qg__file_kind(unsigned mode)
{
    return S_ISDIR(mode)    ? "a directory"
           : S_ISCHR(mode)  ? "a character device"
           : S_ISBLK(mode)  ? "a block device"
           : S_ISFIFO(mode) ? "a FIFO (named pipe)"
           : S_ISSOCK(mode) ? "a socket"
           : S_ISREG(mode)  ? "a regular file"
                            : "a special file";
}

qg_status qg__atomic_open(struct qg_ctx *ctx, const char *path, qg_atomic_file *af)
{
    af->fd = -1;
    af->tmp[0] = af->path[0] = 0;
    int n = snprintf(af->tmp, sizeof af->tmp, "%s.tmp.%ld", path, (long)getpid());
    if (n < 0 || (size_t)n >= sizeof af->tmp)
        return qg__error(ctx, QG_ERR_INVALID_ARG, "cannot write '%s': the path is too long",
                         path);
    snprintf(af->path, sizeof af->path, "%s", path);
    qg_status st = check_target(ctx, path);
    if (st != QG_OK)
        return st;
    /* A temp file of ours left by a killed run of the same pid is stale;
     * O_EXCL | O_NOFOLLOW then makes sure we write a fresh file of our own
     * and never through a link planted under the temp name. */
    unlink(af->tmp);
    af->fd = open(af->tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
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
    if (close(af->fd) != 0) {
        af->fd = -1;
        qg_status st = qg__error(ctx, QG_ERR_IO, "closing '%s' failed: %s", af->tmp,
                                 strerror(errno));
        unlink(af->tmp);
        return st;
    }
    af->fd = -1;
    /* The target may have become a special file since the open. */
    qg_status cst = check_target(ctx, af->path);
    if (cst != QG_OK) {
        unlink(af->tmp);
        return cst;
    }
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
    if (af->fd < 0)
        return; /* never opened, or already committed or aborted */
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
