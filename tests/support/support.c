/* tests/support/support.c: context fixture, data, comparisons. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "support.h"
#include "method/method.h"
#include "train/trainer.h"

static qg_ctx *g_ctx;

qg_ctx *qg_test_ctx(void)
{
    if (!g_ctx) {
        qg_status st = qg_ctx_new(NULL, &g_ctx);
        cr_assert_eq(st, QG_OK,
                     "no usable OpenCL device (%s): %s. Tests need one; install "
                     "pocl-opencl-icd or set QGATE_DEVICE.", qg_status_str(st), qg_last_error());
    }
    return g_ctx;
}

void qg_test_ctx_free(void)
{
    qg_ctx_free(g_ctx);
    g_ctx = NULL;
}

void qg_test_fill(float *x, size_t n, float lo, float hi, uint32_t seed)
{
    uint32_t s = seed ? seed : 42;
    for (size_t i = 0; i < n; i++) {
        s ^= s << 13;
        s ^= s >> 17;
        s ^= s << 5;
        x[i] = lo + (hi - lo) * (float)(s >> 8) / 16777216.0f;
    }
}

int qg_test_allclose(const char *label, const float *got, const float *want, size_t n,
                     float atol, float rtol)
{
    size_t bad = 0;
    double maxerr = 0;
    for (size_t i = 0; i < n; i++) {
        double err = fabs((double)got[i] - want[i]);
        int ok = err <= atol + rtol * fabs(want[i]) && !isnan(got[i]) == !isnan(want[i]);
        if (isnan(err) && !(isnan(got[i]) && isnan(want[i])))
            ok = 0;
        if (err > maxerr)
            maxerr = err;
        if (!ok) {
            if (bad < 10)
                fprintf(stderr, "%s: [%zu] got %.9g want %.9g (err %.3g)\n", label, i,
                        got[i], want[i], err);
            bad++;
        }
    }
    if (bad)
        fprintf(stderr, "%s: %zu of %zu elements outside atol %g rtol %g (max abs err %.3g)\n",
                label, bad, n, atol, rtol, maxerr);
    return bad == 0;
}

qg_tensor *qg_test_tensor(qg_ctx *ctx, int ndim, const int64_t *shape, const float *host)
{
    qg_tensor *t = NULL;
    QG_EXPECT_OK(qg_tensor_new(ctx, ndim, shape, QG_DTYPE_F32, "test", &t));
    if (host)
        QG_EXPECT_OK(qg_tensor_write(t, host, qg_tensor_numel(t) * sizeof(float)));
    return t;
}

float *qg_test_read(const qg_tensor *t)
{
    size_t n = qg_tensor_numel(t);
    float *h = malloc((n ? n : 1) * sizeof *h);
    cr_assert_not_null(h);
    QG_EXPECT_OK(qg_tensor_read(t, h, n * sizeof *h));
    return h;
}

qg_test_buf qg_test_buf_new(qg_ctx *ctx, int ndim, const int64_t *shape, const float *init)
{
    qg_test_buf b = {.n = 1};
    for (int i = 0; i < ndim; i++)
        b.n *= (size_t)shape[i];
    size_t total = b.n + 2 * QG_TEST_PAD;
    int64_t s1[1] = {(int64_t)total};
    float *h = malloc(total * sizeof *h);
    cr_assert_not_null(h);
    for (size_t i = 0; i < total; i++)
        h[i] = QG_TEST_SENTINEL;
    for (size_t i = 0; i < b.n; i++)
        h[QG_TEST_PAD + i] = init ? init[i] : NAN;
    b.whole = qg_test_tensor(ctx, 1, s1, h);
    QG_EXPECT_OK(qg_tensor_view(b.whole, QG_TEST_PAD, ndim, shape, &b.view));
    free(h);
    return b;
}

float *qg_test_buf_get(const qg_test_buf *b, const char *label)
{
    float *h = qg_test_read(b->whole);
    for (size_t i = 0; i < QG_TEST_PAD; i++) {
        cr_expect_eq(h[i], QG_TEST_SENTINEL, "%s: write before the tensor at %zu", label, i);
        cr_expect_eq(h[QG_TEST_PAD + b->n + i], QG_TEST_SENTINEL,
                     "%s: write past the tensor at %zu", label, i);
    }
    float *out = malloc((b->n ? b->n : 1) * sizeof *out);
    cr_assert_not_null(out);
    memcpy(out, h + QG_TEST_PAD, b->n * sizeof *out);
    free(h);
    return out;
}

void qg_test_buf_free(qg_test_buf *b)
{
    qg_tensor_free(b->view);
    qg_tensor_free(b->whole);
}

qg_tensor *qg_test_i32_tensor(qg_ctx *ctx, size_t n, int32_t init)
{
    qg_tensor *t = NULL;
    int64_t s[1] = {(int64_t)n};
    QG_EXPECT_OK(qg_tensor_new(ctx, 1, s, QG_DTYPE_I32, "i32", &t));
    int32_t *h = malloc(n * sizeof *h);
    cr_assert_not_null(h);
    for (size_t i = 0; i < n; i++)
        h[i] = init;
    QG_EXPECT_OK(qg_tensor_write(t, h, n * sizeof *h));
    free(h);
    return t;
}

int32_t *qg_test_read_i32(const qg_tensor *t)
{
    size_t n = qg_tensor_numel(t);
    int32_t *h = malloc((n ? n : 1) * sizeof *h);
    cr_assert_not_null(h);
    QG_EXPECT_OK(qg_tensor_read(t, h, n * sizeof *h));
    return h;
}

json_t *qg_test_golden(const char *name)
{
    char path[1024];
    const char *dir = getenv("QG_TEST_DATA") ? getenv("QG_TEST_DATA") : "tests/data";
    snprintf(path, sizeof path, "%s/golden/%s.json", dir, name);
    json_error_t jerr;
    json_t *g = json_load_file(path, 0, &jerr);
    cr_assert_not_null(g, "cannot read golden '%s': %s", path, jerr.text);
    return g;
}

float *qg_test_json_floats(json_t *root, const char *key, size_t *n)
{
    json_t *a = json_object_get(root, key);
    cr_assert(json_is_array(a), "golden lacks '%s'", key);
    *n = json_array_size(a);
    float *v = malloc((*n ? *n : 1) * sizeof *v);
    cr_assert_not_null(v);
    for (size_t i = 0; i < *n; i++)
        v[i] = (float)json_number_value(json_array_get(a, i));
    return v;
}

int qg_test_json_int(json_t *root, const char *key)
{
    json_t *v = json_object_get(root, key);
    cr_assert(json_is_integer(v), "golden lacks the integer '%s'", key);
    return (int)json_integer_value(v);
}

double qg_test_json_num(json_t *root, const char *key)
{
    json_t *v = json_object_get(root, key);
    cr_assert(json_is_number(v), "golden lacks '%s'", key);
    return json_number_value(v);
}

float *qg_test_lcg_values(int seed, size_t n, double scale, double offset)
{
    uint64_t st = (uint64_t)seed;
    float *v = malloc(n * sizeof *v);
    cr_assert_not_null(v);
    for (size_t i = 0; i < n; i++) {
        st = (st * 1103515245u + 12345u) % 2147483648u;
        v[i] = (float)(((double)st / 2147483648.0 * 2.0 - 1.0) * scale + offset);
    }
    return v;
}

void qg_test_write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "cannot write %s", path);
    fputs(text, f);
    fclose(f);
}

qg_ctx *qg_test_ctx_with_db(const char *db)
{
    qg_ctx *ctx;
    qg_ctx_opts o = {.tune_db = db, .profiling = 1};
    QG_EXPECT_OK(qg_ctx_new(&o, &ctx));
    return ctx;
}

char *qg_test_tmp_path(const char *prefix, const char *name)
{
    static char buf[4][512];
    static int k;
    const char *dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    char *b = buf[k++ % 4];
    snprintf(b, 512, "%s/qgate-%s-%ld-%s", dir, prefix, (long)getpid(), name);
    return b;
}

void qg_test_tiny_train_cfg(qg_train_cfg *c)
{
    qg_train_cfg_defaults(c);
    c->model = "resnet8";
    c->limit_train = 192;
    c->limit_test = 100;
    c->batch = 32;
    c->eval_batch = 64;  /* 100 = 64 + a partial batch of 36 */
    c->epochs = 2;
    c->optim.lr = 0.05f;
}

qg_status qg_test_methods_try(const char *spec, qg_method_cfg *out)
{
    char buf[512];
    qg__method_cfg_init(out);
    snprintf(buf, sizeof buf, "%s", spec);
    for (char *save = NULL, *t = strtok_r(buf, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
        char *eq = strchr(t, '=');
        qg_status st;
        if (eq) {
            *eq = 0;
            st = qg_method_cfg_set(out, t, eq + 1);
        } else {
            st = qg_method_cfg_set(out, t, "1"); /* a method or a switch */
        }
        if (st != QG_OK)
            return st;
    }
    return qg__method_cfg_finish(out);
}

const qg_method_cfg *qg_test_methods(const char *spec)
{
    static qg_method_cfg ring[8];
    static int k;
    qg_method_cfg *mc = &ring[k++ % 8];
    qg_status st = qg_test_methods_try(spec, mc);
    cr_assert_eq(st, QG_OK, "methods '%s': %s", spec, qg_last_error());
    return mc;
}
