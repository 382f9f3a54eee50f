/* src/core/fileio.h: whole-file reads, atomic writes, hashing (internal). */
#ifndef QG_CORE_FILEIO_H
#define QG_CORE_FILEIO_H

#include <stddef.h>
#include <stdint.h>
#include "qgate/status.h"

struct qg_ctx;

/* Reads a whole regular file (anything else is refused, so a device or
 * FIFO cannot make it read without end); at most the size the file had
 * when opened. *data is malloc'd with a NUL after the last byte. */
qg_status qg__file_read(struct qg_ctx *ctx, const char *path, unsigned char **data,
                        size_t *len);

/* Opens `path` for reading when it is a regular file (QG_ERR_IO naming
 * what it is otherwise, without blocking on a FIFO); *size from fstat. */
qg_status qg__file_open_regular(struct qg_ctx *ctx, const char *path, int *fd,
                                uint64_t *size);
/* pread of up to len bytes at offset; *got < len only at end of file. */
qg_status qg__file_read_at(struct qg_ctx *ctx, int fd, const char *path, uint64_t offset,
                           void *buf, size_t len, size_t *got);
/* "a directory", "a character device", ... for a stat st_mode. */
const char *qg__file_kind(unsigned mode);

/* Writes `path` so that a crash at any point leaves either the old file or
 * the complete new one: temp file in the same directory, fsync, rename,
 * fsync of the directory. A `path` that exists and is not a regular file
 * (device, FIFO, directory, ...) is refused with QG_ERR_IO before anything
 * is written; on every error the temp file is removed. */
qg_status qg__file_write_atomic(struct qg_ctx *ctx, const char *path,
                                const void *data, size_t len);

/* Streaming variant for large files: open a temp file, write pieces, then
 * commit (fsync + rename) or abort (unlink). */
typedef struct qg_atomic_file {
    int fd;
    char tmp[4096];
    char path[4096];
} qg_atomic_file;
qg_status qg__atomic_open(struct qg_ctx *ctx, const char *path, qg_atomic_file *af);
qg_status qg__atomic_write(struct qg_ctx *ctx, qg_atomic_file *af, const void *data,
                           size_t len);
qg_status qg__atomic_commit(struct qg_ctx *ctx, qg_atomic_file *af);
void qg__atomic_abort(qg_atomic_file *af);

/* mkdir -p. */
qg_status qg__mkdirs(struct qg_ctx *ctx, const char *dir);
/* mkdir -p of the directory that will hold `path` (a file to be written). */
qg_status qg__mkdirs_parent(struct qg_ctx *ctx, const char *path);

/* 64-bit FNV-1a, chained through `h` (start with QG_FNV_INIT). */
#define QG_FNV_INIT 0xcbf29ce484222325ULL
uint64_t qg__fnv1a(uint64_t h, const void *data, size_t len);

#endif
