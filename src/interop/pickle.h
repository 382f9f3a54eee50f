/* src/interop/pickle.h: a safe subset of Python's pickle machine, enough to
 * read PyTorch state dicts (internal; used by src/interop/pth.c, tested by
 * tests/test_pth.c).
 *
 * No code from the stream runs. The opcodes that build plain data (None,
 * bools, ints, floats, strings, bytes, tuples, lists, dicts, memo, marks,
 * persistent ids) are interpreted; a GLOBAL is accepted only when it names
 * one of the few callables a state dict needs (OrderedDict, torch's tensor
 * rebuild functions, the storage types, _codecs.encode) and each of those
 * is evaluated here by C code, never imported. Anything else (os.system,
 * a model class, numpy) is refused with its name. Every read is bounds
 * checked, memory is capped (all values live in one arena freed at once),
 * memo indices and container sizes are bounded, and nothing recurses on
 * the input, so a hostile stream yields QG_ERR_FORMAT with a message that
 * names the byte offset and what is wrong. */
#ifndef QG_INTEROP_PICKLE_H
#define QG_INTEROP_PICKLE_H

#include <stddef.h>
#include <stdint.h>
#include "qgate/status.h"

typedef enum qg_pk_type {
    QG_PK_NONE,
    QG_PK_BOOL,
    QG_PK_INT,       /* fits int64 */
    QG_PK_BIGINT,    /* longer: little-endian two's complement bytes in str */
    QG_PK_FLOAT,
    QG_PK_STR,       /* UTF-8 (unicode) or raw (py2 str) text */
    QG_PK_BYTES,
    QG_PK_TUPLE,
    QG_PK_LIST,
    QG_PK_DICT,      /* items holds key, value, key, value... in order */
    QG_PK_GLOBAL,    /* an allowed callable, not yet called */
    QG_PK_STORAGE,   /* a persistent id resolved by the caller */
    QG_PK_TENSOR
} qg_pk_type;

/* Allowed globals (everything else is refused by name). */
typedef enum qg_pk_global {
    QG_PKG_ORDERED_DICT,
    QG_PKG_REBUILD_TENSOR_V2,
    QG_PKG_REBUILD_TENSOR,
    QG_PKG_REBUILD_PARAMETER,
    QG_PKG_CODECS_ENCODE,
    QG_PKG_STORAGE_TYPE      /* torch.FloatStorage etc.; dtype in .dtype */
} qg_pk_global;

/* Element types of torch storages. */
typedef enum qg_pk_dtype {
    QG_PKD_F32, QG_PKD_F64, QG_PKD_F16, QG_PKD_BF16, QG_PKD_I64, QG_PKD_I32, QG_PKD_I16,
    QG_PKD_I8, QG_PKD_U8, QG_PKD_BOOL
} qg_pk_dtype;
size_t qg__pk_dtype_size(qg_pk_dtype d);
const char *qg__pk_dtype_name(qg_pk_dtype d);

#define QG_PK_MAX_DIMS 8

typedef struct qg_pk_value qg_pk_value;
struct qg_pk_value {
    qg_pk_type type;
    union {
        int64_t i;                     /* BOOL, INT */
        double f;                      /* FLOAT */
        struct {
            char *s;                   /* NUL-terminated copy */
            size_t len;
        } str;                         /* STR, BYTES, BIGINT */
        struct {
            qg_pk_value **items;
            size_t n, cap;             /* DICT: n counts keys and values */
        } seq;                         /* TUPLE, LIST, DICT */
        struct {
            qg_pk_global which;
            qg_pk_dtype dtype;         /* STORAGE_TYPE */
        } global;
        struct {
            qg_pk_dtype dtype;
            const char *key;           /* the storage's name in the file */
            int64_t numel;             /* elements of this storage (view) */
            const char *root_key;      /* legacy views: the root storage */
            int64_t root_offset;       /* elements into the root */
        } storage;
        struct {
            const qg_pk_value *storage;
            int64_t offset;            /* elements into the storage */
            int ndim;
            int64_t size[QG_PK_MAX_DIMS];
            int64_t stride[QG_PK_MAX_DIMS];
        } tensor;
    } u;
};

typedef struct qg_pickle qg_pickle;

/* Limits (defaults: 256 MiB of values, memo index < 2^20). */
typedef struct qg_pk_limits {
    size_t max_bytes;
    uint32_t max_memo;
} qg_pk_limits;

qg_pickle *qg__pickle_new(const qg_pk_limits *lim);
void qg__pickle_free(qg_pickle *pk);

/* Runs one pickle from data[*pos] to its STOP; *pos moves past it. The
 * value lives as long as pk. `what` names the stream in messages. A
 * persistent id is only accepted with storages on (the torch container's
 * tuple ('storage', type, key, location, numel[, view])). */
qg_status qg__pickle_load(qg_pickle *pk, const unsigned char *data, size_t len, size_t *pos,
                          const char *what, int storages, qg_pk_value **out);

/* Every storage value the persistent ids of all loads so far produced. */
size_t qg__pickle_storages(const qg_pickle *pk, const qg_pk_value *const **list);

/* Dict lookup by string key (the last one wins, as in Python); NULL when
 * absent or not a dict. */
const qg_pk_value *qg__pk_dict_get(const qg_pk_value *d, const char *key);

#endif
