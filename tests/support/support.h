/* tests/support/support.h: shared test helpers.
 *
 * qg_test_ctx() makes a context inside the (forked) test process and
 * fails the test when no OpenCL device exists: a missing device is a
 * broken environment, never a skip. Comparisons pass when every element
 * meets |a - r| <= atol + rtol*|r| and report the first mismatches. */
#ifndef QG_TEST_SUPPORT_H
#define QG_TEST_SUPPORT_H

#include <stddef.h>
#include <stdint.h>
#include <criterion/criterion.h>
#include <jansson.h>

#include "qgate.h"

qg_ctx *qg_test_ctx(void);
void qg_test_ctx_free(void);

/* Deterministic uniform floats in [lo, hi) (seed printed on failure). */
void qg_test_fill(float *x, size_t n, float lo, float hi, uint32_t seed);

/* Returns 1 when all close; otherwise prints up to 10 mismatches with the
 * label and returns 0. */
int qg_test_allclose(const char *label, const float *got, const float *want, size_t n,
                     float atol, float rtol);

/* Upload host data into a new F32 tensor of the given shape. */
qg_tensor *qg_test_tensor(qg_ctx *ctx, int ndim, const int64_t *shape, const float *host);
/* Read a tensor into a malloc'd array. */
float *qg_test_read(const qg_tensor *t);

/* A tensor view of n elements at offset QG_TEST_PAD inside a buffer whose
 * margins hold QG_TEST_SENTINEL: qg_test_buf_get fails the test when a
 * kernel wrote outside the view. init NULL fills the view with NaN. */
#define QG_TEST_PAD 11
#define QG_TEST_SENTINEL -12345.5f
typedef struct qg_test_buf {
    qg_tensor *whole, *view;
    size_t n;
} qg_test_buf;
qg_test_buf qg_test_buf_new(qg_ctx *ctx, int ndim, const int64_t *shape, const float *init);
/* The view's contents (malloc'd); checks the margins. */
float *qg_test_buf_get(const qg_test_buf *b, const char *label);
void qg_test_buf_free(qg_test_buf *b);

/* I32 tensor of n elements all `init`, and an I32 tensor's contents. */
qg_tensor *qg_test_i32_tensor(qg_ctx *ctx, size_t n, int32_t init);
int32_t *qg_test_read_i32(const qg_tensor *t);

/* Golden case tests/data/golden/<name>.json (directory from $QG_TEST_DATA,
 * set by make check); fails the test when unreadable. json_decref it. */
json_t *qg_test_golden(const char *name);
/* Array `key` of a golden as malloc'd floats (*n elements), and an
 * integer field. A missing key fails the test. */
float *qg_test_json_floats(json_t *root, const char *key, size_t *n);
int qg_test_json_int(json_t *root, const char *key);
/* A number field (integer or real); a missing key fails the test. */
double qg_test_json_num(json_t *root, const char *key);
/* n malloc'd values of the LCG the PyTorch golden tools share
 * (tests/tools/psgd_torch.py lcg_values): uniform in offset +- scale. */
float *qg_test_lcg_values(int seed, size_t n, double scale, double offset);

/* Writes text to path (fails the test when it cannot). */
void qg_test_write_text(const char *path, const char *text);

/* A new context (the caller frees it) whose user tuning database is db,
 * with profiling on, as the tuner wants. */
qg_ctx *qg_test_ctx_with_db(const char *db);

/* "$TMPDIR/qgate-<prefix>-<pid>-<name>" in one of four rotating static
 * buffers (valid until the fourth next call). */
char *qg_test_tmp_path(const char *prefix, const char *name);

/* A training run small enough for a test: ResNet-8 on 192 Fashion-MNIST
 * images, 2 epochs of batch 32, evaluated on 100 images in batches of 64
 * (so the last one is partial), lr 0.05, no progress line. */
struct qg_train_cfg;
void qg_test_tiny_train_cfg(struct qg_train_cfg *c);
/* A method configuration from "pg pact wbits=8 abits=3 pred_bits=2"
 * (names enable, key=value set), validated: _try returns the status, the
 * other asserts success and returns one of 8 rotating static copies. */
struct qg_method_cfg;
qg_status qg_test_methods_try(const char *spec, struct qg_method_cfg *out);
const struct qg_method_cfg *qg_test_methods(const char *spec);

#define QG_EXPECT_OK(expr)                                                             \
    do {                                                                               \
        qg_status qg_s_ = (expr);                                                      \
        cr_assert_eq(qg_s_, QG_OK, "%s returned %s: %s", #expr, qg_status_str(qg_s_),  \
                     qg_last_error());                                                 \
    } while (0)

#endif
