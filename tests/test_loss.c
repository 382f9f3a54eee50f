/* tests/test_loss.c: softmax cross-entropy (src/ops/loss.c, cl/loss.cl)
 * against the C reference of src/ref/ref_layers.c, and a finite-difference
 * check of that reference.
 *
 * Device tests run N = 3, 17, 64, 65 and 130 rows of 10 classes (fewer,
 * as many and more rows than work-items), with rows holding a tie for the
 * maximum (the first index wins: once on the label, once not), a row of
 * large logits (stability) and the gradient written to its own buffer,
 * in place over the logits, or not at all, under the default work-group
 * size and two others. dlogits is a view inside a larger buffer whose
 * margins hold a sentinel, checked untouched afterwards.
 *
 * Tolerances (|got - want| <= atol + rtol*|want|): loss sum atol 1e-4,
 * rtol 1e-5 (float per row and tree order on the device, double in the
 * oracle); dlogits atol 1e-6, rtol 1e-4 (float exp on the device);
 * correct counts exact. Gradient check: central differences in double
 * of scale*loss_sum on the float reference, step 1e-2,
 * |fd - analytic| <= 1e-3 + 1e-2*|analytic|. */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support/support.h"
#include "cl/ctx.h"
#include "ops/layers.h"
#include "ref/ref_layers.h"

TestSuite(loss, .fini = qg_test_ctx_free);

static const long wgs[] = {64, 16, 256};
enum { CLASSES = 10 };

#define PAD 13
#define SENTINEL -12345.5f

static qg_tensor *i32_tensor(qg_ctx *ctx, int64_t n, const int32_t *host)
{
    qg_tensor *t = NULL;
    int64_t sh[1] = {n};
    QG_EXPECT_OK(qg_tensor_new(ctx, 1, sh, QG_DTYPE_I32, "i32", &t));
    if (host)
        QG_EXPECT_OK(qg_tensor_write(t, host, (size_t)n * 4));
    return t;
}

/* Logits with ties in rows 0, 1 and 3 and large values in row 2; labels
 * in range, with row 0 labelled at the second of its tied maxima (wrong)
 * and rows 1 and 3 at the first (right), so a last-maximum argmax
 * changes the count. */
static void make_batch(int N, uint32_t seed, float *logits, int32_t *labels)
{
    float *r = malloc((size_t)N * 4);
    qg_test_fill(logits, (size_t)N * CLASSES, -3, 3, seed);
    qg_test_fill(r, (size_t)N, 0, 1, seed + 1);
    for (int i = 0; i < N; i++)
        labels[i] = (int32_t)(r[i] * CLASSES) % CLASSES;
    logits[0 * CLASSES + 2] = logits[0 * CLASSES + 7] = 4.0f;
    labels[0] = 7;
    if (N > 1) {
        logits[1 * CLASSES + 3] = logits[1 * CLASSES + 8] = 5.0f;
        labels[1] = 3;
    }
    if (N > 2)
        for (int j = 0; j < CLASSES; j++)
            logits[2 * CLASSES + j] += 1000.0f;
    if (N > 3) {
        logits[3 * CLASSES + 0] = logits[3 * CLASSES + 9] = 3.5f;
        labels[3] = 0;
    }
    free(r);
}

static void run_case(qg_ctx *ctx, int N, long wg, uint32_t seed)
{
    size_t n = (size_t)N * CLASSES;
    float *logits = malloc(n * 4), *d_ref = malloc(n * 4), loss_ref;
    int32_t *labels = malloc((size_t)N * 4), correct_ref;
    make_batch(N, seed, logits, labels);
    float scale = 1.0f / (float)N;
    qg_ref_softmax_ce(N, CLASSES, logits, labels, scale, &loss_ref, &correct_ref, d_ref);
    char label[64];
    snprintf(label, sizeof label, "N=%d WG=%ld", N, wg);

    /* dlogits as a view with sentinel margins, NaN inside. */
    float *h = malloc((n + 2 * PAD) * 4);
    for (size_t i = 0; i < n + 2 * PAD; i++)
        h[i] = i < PAD || i >= PAD + n ? SENTINEL : NAN;
    int64_t sw[1] = {(int64_t)(n + 2 * PAD)}, sl[2] = {N, CLASSES}, one[1] = {1};
    qg_tensor *whole = qg_test_tensor(ctx, 1, sw, h), *td = NULL;
    QG_EXPECT_OK(qg_tensor_view(whole, PAD, 2, sl, &td));
    qg_tensor *tl = qg_test_tensor(ctx, 2, sl, logits), *tlab = i32_tensor(ctx, N, labels);
    qg_tensor *tloss = qg_test_tensor(ctx, 1, one, NULL), *tcor = i32_tensor(ctx, 1, NULL);

    for (int mode = 0; mode < 3; mode++) {
        /* 0: separate dlogits, 1: no dlogits, 2: in place over logits. */
        static const char *modes[] = {"separate", "no grad", "in place"};
        float loss = NAN;
        int32_t correct = -1;
        QG_EXPECT_OK(qg_tensor_write(tl, logits, n * 4));
        QG_EXPECT_OK(qg__softmax_ce(ctx, tl, tlab, scale, tloss, tcor,
                                    mode == 0 ? td : mode == 2 ? tl : NULL));
        QG_EXPECT_OK(qg_tensor_read(tloss, &loss, 4));
        QG_EXPECT_OK(qg_tensor_read(tcor, &correct, 4));
        cr_expect(qg_test_allclose("loss_sum", &loss, &loss_ref, 1, 1e-4f, 1e-5f), "%s %s",
                  label, modes[mode]);
        cr_expect_eq(correct, correct_ref, "correct %d, want %d [%s %s]", correct, correct_ref,
                     label, modes[mode]);
        if (mode == 0) {
            QG_EXPECT_OK(qg_tensor_read(whole, h, (n + 2 * PAD) * 4));
            for (size_t i = 0; i < PAD; i++) {
                cr_expect_eq(h[i], SENTINEL, "write before dlogits [%s]", label);
                cr_expect_eq(h[PAD + n + i], SENTINEL, "write past dlogits [%s]", label);
            }
            cr_expect(qg_test_allclose("dlogits", h + PAD, d_ref, n, 1e-6f, 1e-4f), "%s",
                      label);
        } else {
            float *got = qg_test_read(tl);
            cr_expect(qg_test_allclose(mode == 2 ? "dlogits in place" : "logits untouched",
                                       got, mode == 2 ? d_ref : logits, n,
                                       mode == 2 ? 1e-6f : 0, mode == 2 ? 1e-4f : 0),
                      "%s", label);
            free(got);
        }
    }
    qg_tensor *ts[] = {td, whole, tl, tlab, tloss, tcor};
    for (size_t i = 0; i < sizeof ts / sizeof *ts; i++)
        qg_tensor_free(ts[i]);
    free(h);
    free(logits);
    free(d_ref);
    free(labels);
}

Test(loss, device_matches_reference)
{
    static const int rows[] = {3, 17, 64, 65, 130};
    qg_ctx *ctx = qg_test_ctx();
    for (size_t w = 0; w < sizeof wgs / sizeof *wgs; w++) {
        QG_EXPECT_OK(qg__program_override(ctx, "loss", &wgs[w]));
        for (size_t r = 0; r < sizeof rows / sizeof *rows; r++)
            run_case(ctx, rows[r], wgs[w], 500 + 7 * (uint32_t)r);
    }
}

Test(loss, worked_example_and_bad_labels)
{
    /* Two rows of 3 classes. Row 0 = (0, 0, ln 2), label 2: softmax =
     * (1/4, 1/4, 1/2), loss ln 2, right. Row 1 = (1, 1, 1), label 0:
     * softmax 1/3 each, loss ln 3, argmax 0 (first max), right. With scale
     * 1/2: dlogits = (1/8, 1/8, -1/4; -1/3, 1/6, 1/6). */
    qg_ctx *ctx = qg_test_ctx();
    float lg[6] = {0, 0, (float)log(2.0), 1, 1, 1};
    int32_t lab[2] = {2, 0};
    int64_t sl[2] = {2, 3}, one[1] = {1};
    qg_tensor *tl = qg_test_tensor(ctx, 2, sl, lg), *td = qg_test_tensor(ctx, 2, sl, NULL);
    qg_tensor *tlab = i32_tensor(ctx, 2, lab), *tloss = qg_test_tensor(ctx, 1, one, NULL);
    qg_tensor *tcor = i32_tensor(ctx, 1, NULL);
    QG_EXPECT_OK(qg__softmax_ce(ctx, tl, tlab, 0.5f, tloss, tcor, td));
    float loss, d[6];
    int32_t correct;
    QG_EXPECT_OK(qg_tensor_read(tloss, &loss, 4));
    QG_EXPECT_OK(qg_tensor_read(tcor, &correct, 4));
    QG_EXPECT_OK(qg_tensor_read(td, d, sizeof d));
    float want_loss = (float)(log(2.0) + log(3.0));
    float want_d[6] = {0.125f, 0.125f, -0.25f, -1.0f / 3, 1.0f / 6, 1.0f / 6};
    cr_expect(qg_test_allclose("worked loss", &loss, &want_loss, 1, 1e-6f, 1e-6f));
    cr_expect_eq(correct, 2);
    cr_expect(qg_test_allclose("worked dlogits", d, want_d, 6, 1e-7f, 1e-6f));

    /* A label out of range poisons the loss, never counts as correct. */
    int32_t bad[2] = {2, 3};
    QG_EXPECT_OK(qg_tensor_write(tlab, bad, sizeof bad));
    QG_EXPECT_OK(qg__softmax_ce(ctx, tl, tlab, 0.5f, tloss, tcor, NULL));
    QG_EXPECT_OK(qg_tensor_read(tloss, &loss, 4));
    QG_EXPECT_OK(qg_tensor_read(tcor, &correct, 4));
    cr_expect(isnan(loss), "loss %g with an out-of-range label", loss);
    cr_expect_eq(correct, 1);
    /* Labels must be I32 with one per row. */
    cr_expect_eq(qg__softmax_ce(ctx, tl, tl, 0.5f, tloss, tcor, NULL), QG_ERR_SHAPE);
    qg_tensor *ts[] = {tl, td, tlab, tloss, tcor};
    for (size_t i = 0; i < sizeof ts / sizeof *ts; i++)
        qg_tensor_free(ts[i]);
}

/* ---- finite differences on the C reference ---- */

#define FD_EPS 1e-2
#define FD_ATOL 1e-3
#define FD_RTOL 1e-2

Test(loss, reference_gradient_matches_finite_differences)
{
    enum { N = 5 };
    size_t n = (size_t)N * CLASSES;
    float *logits = malloc(n * 4), *d = malloc(n * 4), loss;
    int32_t labels[N], correct;
    make_batch(N, 800, logits, labels);
    for (int j = 0; j < CLASSES; j++)
        logits[2 * CLASSES + j] -= 1000.0f; /* keep the step resolvable */
    const float scale = 1.0f / N;
    qg_ref_softmax_ce(N, CLASSES, logits, labels, scale, &loss, &correct, d);
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        float v0 = logits[i], vp = (float)(v0 + FD_EPS), vm = (float)(v0 - FD_EPS);
        float lp, lm;
        logits[i] = vp;
        qg_ref_softmax_ce(N, CLASSES, logits, labels, scale, &lp, &correct, NULL);
        logits[i] = vm;
        qg_ref_softmax_ce(N, CLASSES, logits, labels, scale, &lm, &correct, NULL);
        logits[i] = v0;
        double fd = scale * ((double)lp - lm) / ((double)vp - (double)vm);
        if (!(fabs(fd - d[i]) <= FD_ATOL + FD_RTOL * fabs(d[i]))) {
            if (bad < 10)
                fprintf(stderr, "softmax_ce: [%zu] finite difference %.6g, analytic %.6g\n", i,
                        fd, d[i]);
            bad++;
        }
    }
    cr_expect_eq(bad, 0, "softmax_ce gradient: %d mismatches", bad);
    free(logits);
    free(d);
}
