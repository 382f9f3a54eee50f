/* src/interop/pth.h: PyTorch checkpoint files (torch.save) read without
 * Python and without running pickled code (internal; tests:
 * tests/test_pth.c, fixtures from tests/tools/gen_pth_fixtures.py).
 *
 * Two containers exist. The zip file of torch >= 1.6 holds
 * <name>/data.pkl (the pickled object, tensors as persistent ids naming a
 * storage) and <name>/data/<key> (each storage's raw little-endian bytes);
 * it is read with libzip. The legacy stream of older torch (and of
 * `torch.save(..., _use_new_zipfile_serialization=False)`) is five pickles
 * in a row: the magic number 0x1950a86a20f9469cfc6c, the protocol version
 * 1001, a sys-info dict (byte order, type sizes), the object, and the
 * sorted list of storage keys; after them each storage in that order as an
 * int64 element count and its bytes. Legacy views of a storage carry
 * (view key, byte offset, size) and share their root's bytes.
 *
 * The object may be a bare state dict or a dict holding one under
 * 'state_dict' (also 'model_state_dict', 'model', 'net') next to scalars
 * such as 'epoch', 'acc', 'best_acc'. Tensors come out contiguous in
 * their own dtype, named by their key path (nested dicts joined by '.');
 * the other top-level entries come out as metadata strings. */
#ifndef QG_INTEROP_PTH_H
#define QG_INTEROP_PTH_H

#include <stddef.h>
#include <stdint.h>
#include "interop/pickle.h"

typedef struct qg_pth_tensor {
    char *name;
    qg_pk_dtype dtype;
    int ndim;
    int64_t shape[QG_PK_MAX_DIMS];
    size_t numel;
    void *data;              /* numel elements of dtype, C order */
} qg_pth_tensor;

typedef struct qg_pth_meta {
    char *key;               /* top-level key ("epoch", "best_acc", "Nbit_dict") */
    char *value;             /* number or text as written; containers as JSON */
} qg_pth_meta;

typedef enum qg_pth_format {
    QG_PTH_LEGACY = 1,
    QG_PTH_ZIP = 2
} qg_pth_format;

typedef struct qg_pth {
    qg_pth_format format;
    char state_key[32];      /* "" for a bare state dict, else its key */
    qg_pth_tensor *tensors;
    size_t ntensors;
    qg_pth_meta *meta;
    size_t nmeta;
    char skipped[256];       /* top-level keys not kept (e.g. "optimizer") */
} qg_pth;

/* Reads a whole file; errors (QG_ERR_IO, QG_ERR_FORMAT, QG_ERR_NOMEM) name
 * the file and what is wrong: a refused global, a truncated storage, a
 * tensor outside its storage. */
qg_status qg__pth_read(const char *path, qg_pth **out);
qg_status qg__pth_read_mem(const unsigned char *data, size_t len, const char *what,
                           qg_pth **out);
void qg__pth_free(qg_pth *p);

/* 1 when the bytes look like a PyTorch checkpoint (zip or legacy pickle). */
int qg__pth_sniff(const unsigned char *data, size_t len);
/* qg__pth_sniff on the first bytes of the file at path: 1 PyTorch, 0 not,
 * -1 when it cannot be opened. */
int qg__pth_sniff_file(const char *path);

/* Converts a floating-point or integer tensor to float32. */
void qg__pth_to_f32(const qg_pth_tensor *t, float *out);
const qg_pth_meta *qg__pth_meta_get(const qg_pth *p, const char *key);

#endif
