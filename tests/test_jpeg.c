/* tests/test_jpeg.c: the JPEG decoder and resampler (src/data/jpeg.c)
 * and the class-folder dataset (src/data/folder.c) through the threaded
 * loader (src/data/loader.c).
 *
 * Fixtures: tests/data/jpeg (make_fixtures.sh there): small RGB, gray
 * (progressive, odd size) and Adobe CMYK images, a truncated, an empty
 * and a non-JPEG file, and Pillow/torchvision decodes and resizes of them
 * as raw RGB bytes. Tolerances, in 0..255 levels: decodes match Pillow
 * exactly (both use libjpeg-turbo's accurate IDCT) except CMYK (+-2,
 * integer rounding of the C*K product); resizes within 1.5 (Pillow keeps
 * 8-bit fixed point between its passes, we keep float); a decode that
 * used DCT scaling within a mean absolute difference of 3 (a different
 * but equally valid reduction). A fuzz loop feeds 1500 mutated and
 * truncated files through open + render: each must succeed or fail with
 * QG_ERR_FORMAT, never crash. */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "qgate.h"
#include "core/error.h"
#include "core/rng.h"
#include "data/dataset.h"
#include "data/jpeg.h"
#include "support/support.h"

TestSuite(jpeg);

static const char *fixture(const char *name)
{
    static char buf[4][4096];
    static int k;
    const char *dir = getenv("QG_TEST_DATA");
    cr_assert_not_null(dir, "QG_TEST_DATA is not set (run through make check)");
    char *b = buf[k++ & 3];
    snprintf(b, sizeof buf[0], "%s/jpeg/%s", dir, name);
    return b;
}

static uint8_t *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc(n > 0 ? (size_t)n : 1);
    cr_assert_eq(fread(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return b;
}

static const float ONE[3] = {1, 1, 1}, ZERO[3] = {0, 0, 0};

/* Renders region r of file at out_w x out_h into levels 0..255 [3][h][w]. */
static float *render_file(const char *file, qg_jpeg_region *r, int out_w, int out_h, int flip,
                          int *den)
{
    qg_jpeg *j = NULL;
    QG_EXPECT_OK(qg__jpeg_new(&j));
    int w, h;
    QG_EXPECT_OK(qg__jpeg_open_file(j, fixture(file), &w, &h));
    qg_jpeg_region whole = {0, 0, (double)w / out_w, (double)h / out_h, 0, 0, w, h};
    float *out = malloc((size_t)3 * out_w * out_h * sizeof *out);
    QG_EXPECT_OK(qg__jpeg_render(j, r ? r : &whole, out_w, out_h, flip, ONE, ZERO, out, den));
    qg__jpeg_free(j);
    return out;
}

/* Compares planar floats with Pillow's interleaved bytes; returns the
 * mean absolute difference and fails above max_abs. */
static double compare_pil(const float *got, const char *pil, int w, int h, double max_abs)
{
    size_t len;
    uint8_t *want = read_all(fixture(pil), &len);
    cr_assert_eq(len, (size_t)w * h * 3, "%s: %zu bytes, expected %dx%dx3", pil, len, w, h);
    double sum = 0, worst = 0;
    int wi = 0;
    for (int c = 0; c < 3; c++)
        for (int p = 0; p < w * h; p++) {
            double d = fabs(got[c * w * h + p] - want[p * 3 + c]);
            sum += d;
            if (d > worst) {
                worst = d;
                wi = c * w * h + p;
            }
        }
    cr_assert_leq(worst, max_abs, "%s: max difference %.2f at channel %d pixel %d (got %.2f)",
                  pil, worst, wi / (w * h), wi % (w * h), got[wi]);
    free(want);
    return sum / (3.0 * w * h);
}

Test(jpeg, decodes_match_pillow)
{
    float *rgb = render_file("rgb.jpg", NULL, 48, 36, 0, NULL);
    compare_pil(rgb, "rgb.pil.rgb", 48, 36, 0.001);
    free(rgb);
    float *gray = render_file("gray.jpg", NULL, 33, 21, 0, NULL);
    compare_pil(gray, "gray.pil.rgb", 33, 21, 0.001);
    for (int p = 0; p < 33 * 21; p++)
        cr_assert(gray[p] == gray[33 * 21 + p] && gray[p] == gray[2 * 33 * 21 + p]);
    free(gray);
    float *cmyk = render_file("cmyk.jpg", NULL, 24, 16, 0, NULL);
    compare_pil(cmyk, "cmyk.pil.rgb", 24, 16, 2.001);
    free(cmyk);
}

Test(jpeg, cmyk_solid_colour)
{
    /* ImageMagick wrote rgb(200,60,30) as CMYK; Pillow reads (200,61,29). */
    float *px = render_file("solid_cmyk.jpg", NULL, 16, 16, 0, NULL);
    const float want[3] = {200, 61, 29};
    for (int c = 0; c < 3; c++)
        for (int p = 0; p < 256; p++)
            cr_assert_leq(fabsf(px[c * 256 + p] - want[c]), 2.0f, "channel %d: %g", c,
                          px[c * 256 + p]);
    free(px);
}

Test(jpeg, resizes_match_pillow)
{
    int den = 0;
    float *a = render_file("rgb.jpg", NULL, 20, 15, 0, &den);
    cr_assert_eq(den, 2, "48x36 -> 20x15 is 2.4x smaller: DCT scaling by 1/2");
    double mad = compare_pil(a, "rgb_20x15.pil.rgb", 20, 15, 40);
    cr_assert_leq(mad, 3.0, "mean difference %.2f after DCT scaling", mad);
    free(a);
    /* Below 2x there is no DCT scaling and the filters must agree. */
    qg_jpeg_region crop = {5, 3, 30.0 / 16, 24.0 / 16, 5, 3, 35, 27};
    float *b = render_file("rgb.jpg", &crop, 16, 16, 0, &den);
    cr_assert_eq(den, 1);
    compare_pil(b, "rgb_crop16.pil.rgb", 16, 16, 1.5);
    /* The same region mirrored. */
    float *bf = render_file("rgb.jpg", &crop, 16, 16, 1, NULL);
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < 16; y++)
            for (int x = 0; x < 16; x++)
                cr_assert_eq(bf[(c * 16 + y) * 16 + x], b[(c * 16 + y) * 16 + 15 - x]);
    free(b);
    free(bf);
    /* torchvision Resize(28) + CenterCrop(24): 48x36 -> 37x28, crop at
     * (6, 2) (Python rounds 6.5 to even). */
    double sx = 48.0 / 37, sy = 36.0 / 28;
    qg_jpeg_region ev = {6 * sx, 2 * sy, sx, sy, 0, 0, 48, 36};
    float *c = render_file("rgb.jpg", &ev, 24, 24, 0, NULL);
    compare_pil(c, "rgb_eval24.pil.rgb", 24, 24, 1.5);
    free(c);
}

Test(jpeg, dct_scaling_by_four)
{
    int den = 0;
    float *a = render_file("rgb.jpg", NULL, 9, 7, 0, &den);
    cr_assert_eq(den, 4, "48x36 -> 9x7 is over 4x smaller");
    double mad = compare_pil(a, "rgb_9x7.pil.rgb", 9, 7, 40);
    cr_assert_leq(mad, 3.0, "mean difference %.2f after DCT scaling", mad);
    free(a);
}

static void expect_bad(const char *name, qg_status want, const char *needle)
{
    qg_jpeg *j = NULL;
    QG_EXPECT_OK(qg__jpeg_new(&j));
    int w = -1, h = -1;
    const char *path = fixture(name);
    qg_status st = qg__jpeg_open_file(j, path, &w, &h);
    if (st == QG_OK) {
        float out[3 * 4 * 4];
        qg_jpeg_region r = {0, 0, w / 4.0, h / 4.0, 0, 0, w, h};
        st = qg__jpeg_render(j, &r, 4, 4, 0, ONE, ZERO, out, NULL);
    }
    cr_assert_eq(st, want, "%s: got %s (%s)", name, qg_status_str(st), qg_last_error());
    cr_assert(strstr(qg_last_error(), path), "message '%s' names the file", qg_last_error());
    cr_assert(strstr(qg_last_error(), needle), "message '%s' says '%s'", qg_last_error(),
              needle);
    qg__jpeg_free(j);
}

Test(jpeg, bad_files_are_errors)
{
    expect_bad("truncated.jpg", QG_ERR_FORMAT, "Premature end");
    expect_bad("empty.jpg", QG_ERR_FORMAT, "empty file");
    expect_bad("notjpeg.jpg", QG_ERR_FORMAT, "not a readable JPEG");
    expect_bad("missing.jpg", QG_ERR_IO, "cannot open");
}

Test(jpeg, huge_dimensions_rejected)
{
    size_t len;
    uint8_t *b = read_all(fixture("rgb.jpg"), &len);
    size_t i;
    for (i = 0; i + 8 < len; i++)
        if (b[i] == 0xFF && (b[i + 1] == 0xC0 || b[i + 1] == 0xC2))
            break;
    cr_assert_lt(i + 8, len, "no SOF marker in rgb.jpg");
    b[i + 5] = b[i + 7] = 0xFF;   /* 65xxx x 65xxx */
    b[i + 6] = b[i + 8] = 0x00;
    qg_jpeg *j = NULL;
    QG_EXPECT_OK(qg__jpeg_new(&j));
    int w, h;
    qg_status st = qg__jpeg_open_mem(j, b, len, "huge.jpg", &w, &h);
    cr_assert_eq(st, QG_ERR_FORMAT, "%s", qg_last_error());
    cr_assert(strstr(qg_last_error(), "over the limit"), "%s", qg_last_error());
    qg__jpeg_free(j);
    free(b);
}

/* Mutations of real files: byte flips, random bytes, cut-offs and
 * splices. Every outcome is OK or QG_ERR_FORMAT with finite output. */
Test(jpeg, fuzz_corrupt_and_truncated, .timeout = 120)
{
    const char *srcs[] = {"rgb.jpg", "gray.jpg", "cmyk.jpg"};
    qg_jpeg *j = NULL;
    QG_EXPECT_OK(qg__jpeg_new(&j));
    qg_rng r = {42};
    int ok = 0, bad = 0;
    float out[3 * 12 * 10];
    for (int it = 0; it < 1500; it++) {
        size_t len;
        uint8_t *b = read_all(fixture(srcs[it % 3]), &len);
        int kind = (int)(qg__rng_u64(&r) % 4);
        if (kind == 0) {          /* flip a few bytes */
            int n = 1 + (int)(qg__rng_u64(&r) % 8);
            for (int k = 0; k < n; k++)
                b[qg__rng_u64(&r) % len] ^= (uint8_t)(1u << (qg__rng_u64(&r) % 8));
        } else if (kind == 1) {   /* random bytes over a span */
            size_t at = qg__rng_u64(&r) % len, n = 1 + qg__rng_u64(&r) % 64;
            for (size_t k = at; k < at + n && k < len; k++)
                b[k] = (uint8_t)qg__rng_u64(&r);
        } else if (kind == 2) {   /* cut off */
            len = qg__rng_u64(&r) % len;
        } else {                  /* header of one, tail moved */
            size_t at = qg__rng_u64(&r) % len, n = qg__rng_u64(&r) % (len - at + 1);
            memmove(b + at, b + at + n, len - at - n);
            len -= n;
        }
        int w, h;
        qg_status st = qg__jpeg_open_mem(j, b, len, "fuzz", &w, &h);
        if (st == QG_OK) {
            qg_jpeg_region rg = {0, 0, w / 12.0, h / 10.0, 0, 0, w, h};
            st = qg__jpeg_render(j, &rg, 12, 10, it & 1, ONE, ZERO, out, NULL);
        }
        cr_assert(st == QG_OK || st == QG_ERR_FORMAT, "iteration %d: %s: %s", it,
                  qg_status_str(st), qg_last_error());
        if (st == QG_OK) {
            for (int k = 0; k < 3 * 12 * 10; k++)
                cr_assert(isfinite(out[k]) && out[k] >= -0.01f && out[k] <= 255.01f,
                          "iteration %d: value %g", it, out[k]);
            ok++;
        } else {
            bad++;
        }
        free(b);
    }
    qg__jpeg_free(j);
    cr_assert_gt(bad, 100, "the mutations must hit errors (%d)", bad);
    cr_assert_gt(ok, 10, "some mutations must still decode (%d)", ok);
}

Test(jpeg, random_resized_crop_boxes)
{
    const int sizes[][2] = {{500, 375}, {375, 500}, {48, 36}, {1000, 100}, {7, 5}};
    for (size_t s = 0; s < 5; s++) {
        int W = sizes[s][0], H = sizes[s][1], fallback = 0;
        double amin = 1, amax = 0;
        for (uint64_t k = 0; k < 2000; k++) {
            int l, t, cw, ch;
            qg__rrc_box(k * 0x9e3779b97f4a7c15ULL + s, W, H, 0.08, &l, &t, &cw, &ch);
            cr_assert(l >= 0 && t >= 0 && cw >= 1 && ch >= 1 && l + cw <= W && t + ch <= H,
                      "%dx%d: box %d,%d %dx%d", W, H, l, t, cw, ch);
            double area = (double)cw * ch / ((double)W * H), ar = (double)cw / ch;
            if (ar < 0.74 || ar > 1.35)
                fallback++;
            if (area < amin)
                amin = area;
            if (area > amax)
                amax = area;
        }
        if (W == 500) {
            /* Areas span 0.08..1 (rounding moves the ends a little). */
            cr_assert_lt(amin, 0.1, "%dx%d: smallest area %.3f", W, H, amin);
            cr_assert_gt(amax, 0.7, "%dx%d: largest area %.3f", W, H, amax);
            cr_assert_geq(amin, 0.075);
            cr_assert_eq(fallback, 0);
        }
    }
}

/* --crop-scale: the smallest area share moves to lo */
Test(jpeg, random_resized_crop_scale)
{
    double amin = 1;
    for (uint64_t k = 0; k < 2000; k++) {
        int l, t, cw, ch;
        qg__rrc_box(k * 0x9e3779b97f4a7c15ULL, 500, 375, 0.5, &l, &t, &cw, &ch);
        cr_assert(l >= 0 && t >= 0 && l + cw <= 500 && t + ch <= 375);
        double area = (double)cw * ch / (500.0 * 375.0);
        amin = area < amin ? area : amin;
    }
    cr_assert(amin >= 0.49 && amin < 0.52, "smallest area %.3f at scale 0.5", amin);
}

/* ---- the folder dataset ---- */

static void copy_file(const char *from, const char *to)
{
    size_t len;
    uint8_t *b = read_all(from, &len);
    FILE *f = fopen(to, "wb");
    cr_assert_not_null(f, "cannot write %s", to);
    if (len)
        cr_assert_eq(fwrite(b, 1, len, f), len);
    fclose(f);
    free(b);
}

static void mkdir_p(const char *p)
{
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", p);
    for (char *s = buf + 1; *s; s++)
        if (*s == '/') {
            *s = 0;
            mkdir(buf, 0755);
            *s = '/';
        }
    mkdir(buf, 0755);
}

/* root/train/{cat,dog} and root/val/{cat,dog}: 9 train files of which
 * 3 are bad, 4 val files of which 1 is bad, plus a README that is
 * ignored. Sorted train order: cat/a_rgb cat/b_gray cat/c_trunc
 * cat/d_cmyk dog/a_empty dog/b_rgb dog/c_not dog/d_gray dog/e_cmyk. */
static char *make_tree(const char *tag)
{
    char *root = strdup(qg_test_tmp_path("jpeg", tag));
    char p[4096];
    static const char *files[][2] = {
        {"train/cat/a_rgb.jpg", "rgb.jpg"},     {"train/cat/b_gray.JPEG", "gray.jpg"},
        {"train/cat/c_trunc.jpg", "truncated.jpg"}, {"train/cat/d_cmyk.jpg", "cmyk.jpg"},
        {"train/dog/a_empty.jpg", "empty.jpg"}, {"train/dog/b_rgb.jpg", "rgb.jpg"},
        {"train/dog/c_not.jpg", "notjpeg.jpg"}, {"train/dog/d_gray.jpg", "gray.jpg"},
        {"train/dog/e_cmyk.jpg", "cmyk.jpg"},   {"val/cat/x.jpg", "rgb.jpg"},
        {"val/dog/y.jpg", "gray.jpg"},          {"val/dog/z.jpg", "truncated.jpg"},
        {"val/dog/zz.jpg", "cmyk.jpg"},
    };
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        snprintf(p, sizeof p, "%s/%s", root, files[i][0]);
        char *slash = strrchr(p, '/');
        *slash = 0;
        mkdir_p(p);
        *slash = '/';
        copy_file(fixture(files[i][1]), p);
    }
    snprintf(p, sizeof p, "%s/train/cat/README.txt", root);
    qg_test_write_text(p, "not an image\n");
    return root;
}

static qg_loader_opts folder_opts(int batch, int workers)
{
    qg_loader_opts o = {.batch = batch, .shuffle = 1, .flip = 1, .seed = 7,
                        .workers = workers, .prefetch = workers + 1};
    return o;
}

/* All batches of one epoch: images and labels concatenated. */
static size_t run_epoch(const qg_dataset *ds, const qg_loader_opts *o, int epoch, float *img,
                        int32_t *lab)
{
    qg_loader *ld = NULL;
    QG_EXPECT_OK(qg__loader_new(ds, o, &ld));
    QG_EXPECT_OK(qg__loader_start_epoch(ld, epoch));
    size_t per = 3 * (size_t)qg__dataset_height(ds) * qg__dataset_width(ds), got = 0;
    const float *bi;
    const int32_t *bl;
    int n;
    while (qg__loader_next(ld, &bi, &bl, &n)) {
        memcpy(img + got * per, bi, (size_t)n * per * sizeof *img);
        memcpy(lab + got, bl, (size_t)n * sizeof *lab);
        got += (size_t)n;
    }
    qg__loader_free(ld);
    return got;
}

Test(jpeg, folder_dataset_skips_bad_files)
{
    char *root = make_tree("skip");
    qg_data_opts dopt = {.input_size = 16, .normalize = "none"};
    qg_dataset *tr = NULL, *va = NULL;
    QG_EXPECT_OK(qg__dataset_load_opts("folder", root, 1, &dopt, &tr));
    QG_EXPECT_OK(qg__dataset_load_opts("folder", root, 0, &dopt, &va));
    cr_assert_eq(qg__dataset_count(tr), 9, "the README is not an image");
    cr_assert_eq(qg__dataset_count(va), 4);
    cr_assert_eq(qg__dataset_classes(tr), 2);
    cr_assert_eq(qg__dataset_channels(tr), 3);
    cr_assert_eq(qg__dataset_height(tr), 16);
    cr_assert(qg__dataset_on_demand(tr));

    size_t per = 3 * 16 * 16;
    float *img = malloc(9 * per * sizeof *img), *img2 = malloc(9 * per * sizeof *img);
    int32_t lab[9], lab2[9];
    qg_loader_opts o = folder_opts(4, 2);
    cr_assert_eq(run_epoch(tr, &o, 0, img, lab), 9);
    cr_assert_eq(qg__dataset_bad_files(tr), 3, "truncated, empty and not-a-JPEG");
    int cats = 0;
    for (int i = 0; i < 9; i++) {
        cr_assert(lab[i] == 0 || lab[i] == 1);
        cats += lab[i] == 0;
        for (size_t k = 0; k < per; k++)
            cr_assert(img[i * per + k] >= 0 && img[i * per + k] <= 1.0001f,
                      "normalize none: v/255 in [0, 1], got %g", img[i * per + k]);
    }
    /* The bad cat (c_trunc) is replaced by d_cmyk (a cat), the two bad
     * dogs by b_rgb and d_gray (dogs): 4 cats, 5 dogs. */
    cr_assert_eq(cats, 4);

    /* Output depends on seed, epoch and position, not on the threads. */
    qg_loader_opts o1 = folder_opts(4, 1);
    cr_assert_eq(run_epoch(tr, &o1, 0, img2, lab2), 9);
    cr_assert_eq(memcmp(lab, lab2, sizeof lab), 0);
    cr_assert_eq(memcmp(img, img2, 9 * per * sizeof *img), 0, "1 and 2 workers differ");
    cr_assert_eq(qg__dataset_bad_files(tr), 3, "each bad file counted once");
    /* Another epoch crops differently. */
    run_epoch(tr, &o1, 1, img2, lab2);
    cr_assert_neq(memcmp(img, img2, 9 * per * sizeof *img), 0);

    /* Truncating spreads the subset over the classes: files 0 and 4
     * (cat/a_rgb, and dog/a_empty replaced by dog/b_rgb). */
    qg__dataset_truncate(tr, 2);
    cr_assert_eq(run_epoch(tr, &o1, 0, img2, lab2), 2);
    cr_assert(lab2[0] != lab2[1], "both classes kept: %d %d", lab2[0], lab2[1]);

    /* Evaluation: centre crops, deterministic, one bad file. */
    qg_loader_opts oe = {.batch = 3, .workers = 2};
    cr_assert_eq(run_epoch(va, &oe, 0, img, lab), 4);
    cr_assert_eq(qg__dataset_bad_files(va), 1);
    cr_assert_eq(lab[0], 0);
    cr_assert_eq(lab[1], 1);
    cr_assert_eq(lab[2], 1);   /* z.jpg (truncated) replaced by zz.jpg */
    cr_assert_eq(memcmp(img + 2 * per, img + 3 * per, per * sizeof *img), 0);
    free(img);
    free(img2);
    qg__dataset_free(tr);
    qg__dataset_free(va);
    free(root);
}

Test(jpeg, folder_eval_matches_torchvision_transform)
{
    /* A one-image val folder: Resize(28) + CenterCrop(24) of rgb.jpg,
     * normalised with the ImageNet constants. */
    char *root = strdup(qg_test_tmp_path("jpeg", "eval"));
    char p[4096];
    snprintf(p, sizeof p, "%s/train/only", root);
    mkdir_p(p);
    snprintf(p, sizeof p, "%s/train/only/a.jpg", root);
    copy_file(fixture("rgb.jpg"), p);
    snprintf(p, sizeof p, "%s/val/only", root);
    mkdir_p(p);
    snprintf(p, sizeof p, "%s/val/only/a.jpg", root);
    copy_file(fixture("rgb.jpg"), p);
    qg_data_opts dopt = {.input_size = 24, .resize = 28};
    qg_dataset *va = NULL;
    QG_EXPECT_OK(qg__dataset_load_opts("folder", root, 0, &dopt, &va));
    float img[3 * 24 * 24];
    int32_t lab[1];
    qg_loader_opts oe = {.batch = 1};
    cr_assert_eq(run_epoch(va, &oe, 0, img, lab), 1);
    const double mean[3] = {0.485, 0.456, 0.406}, std[3] = {0.229, 0.224, 0.225};
    for (int c = 0; c < 3; c++)
        for (int k = 0; k < 24 * 24; k++)
            img[c * 576 + k] = (float)((img[c * 576 + k] * std[c] + mean[c]) * 255.0);
    compare_pil(img, "rgb_eval24.pil.rgb", 24, 24, 1.5);
    qg__dataset_free(va);

    /* --normalize dataset: the mean of the (only) training image is 0. */
    dopt.normalize = "dataset";
    QG_EXPECT_OK(qg__dataset_load_opts("folder", root, 0, &dopt, &va));
    cr_assert_eq(run_epoch(va, &oe, 0, img, lab), 1);
    for (int c = 0; c < 3; c++) {
        double s = 0, s2 = 0;
        for (int k = 0; k < 576; k++) {
            s += img[c * 576 + k];
            s2 += (double)img[c * 576 + k] * img[c * 576 + k];
        }
        cr_assert_leq(fabs(s / 576), 1e-4, "channel %d mean %g", c, s / 576);
        cr_assert_leq(fabs(s2 / 576 - 1), 1e-3, "channel %d variance %g", c, s2 / 576);
    }
    qg__dataset_free(va);
    free(root);
}

Test(jpeg, folder_val_labels_file)
{
    char *root = make_tree("labels");
    char p[4096];
    snprintf(p, sizeof p, "%s/val2", root);
    /* Replace val/ by a flat folder + val_labels.txt. */
    snprintf(p, sizeof p, "rm -rf '%s/val' && mkdir '%s/val'", root, root);
    cr_assert_eq(system(p), 0);
    snprintf(p, sizeof p, "%s/val/img1.jpg", root);
    copy_file(fixture("rgb.jpg"), p);
    snprintf(p, sizeof p, "%s/val/img2.jpg", root);
    copy_file(fixture("gray.jpg"), p);
    snprintf(p, sizeof p, "%s/val_labels.txt", root);
    qg_test_write_text(p, "# file class\nimg1.jpg dog\nimg2.jpg 0\n");
    qg_data_opts dopt = {.input_size = 8};
    qg_dataset *va = NULL;
    QG_EXPECT_OK(qg__dataset_load_opts("folder", root, 0, &dopt, &va));
    cr_assert_eq(qg__dataset_count(va), 2);
    float img[2 * 3 * 64];
    int32_t lab[2];
    qg_loader_opts oe = {.batch = 2};
    cr_assert_eq(run_epoch(va, &oe, 0, img, lab), 2);
    cr_assert_eq(lab[0], 1);
    cr_assert_eq(lab[1], 0);
    qg__dataset_free(va);
    qg_test_write_text(p, "img1.jpg horse\n");
    cr_assert_eq(qg__dataset_load_opts("folder", root, 0, &dopt, &va), QG_ERR_FORMAT);
    cr_assert(strstr(qg_last_error(), "horse"), "%s", qg_last_error());
    free(root);
}

Test(jpeg, folder_errors_name_the_problem)
{
    qg_dataset *ds = NULL;
    cr_assert_eq(qg__dataset_load("folder", NULL, 1, &ds), QG_ERR_INVALID_ARG);
    cr_assert(strstr(qg_last_error(), "--data-dir"), "%s", qg_last_error());
    char *root = strdup(qg_test_tmp_path("jpeg", "empty"));
    mkdir_p(root);
    cr_assert_eq(qg__dataset_load("folder", root, 1, &ds), QG_ERR_IO);
    cr_assert(strstr(qg_last_error(), "train"), "%s", qg_last_error());
    char p[4096];
    snprintf(p, sizeof p, "%s/train/a", root);
    mkdir_p(p);
    snprintf(p, sizeof p, "%s/train/a/x.png", root);
    qg_test_write_text(p, "png");
    cr_assert_eq(qg__dataset_load("folder", root, 1, &ds), QG_ERR_FORMAT);
    cr_assert(strstr(qg_last_error(), "PNG"), "%s", qg_last_error());
    qg_data_opts bad = {.input_size = 224, .resize = 100};
    cr_assert_eq(qg__dataset_load_opts("folder", root, 1, &bad, &ds), QG_ERR_INVALID_ARG);
    qg_data_opts badn = {.normalize = "zscore"};
    snprintf(p, sizeof p, "%s/train/a/x.jpg", root);
    copy_file(fixture("rgb.jpg"), p);
    cr_assert_eq(qg__dataset_load_opts("folder", root, 1, &badn, &ds), QG_ERR_INVALID_ARG);
    cr_assert(strstr(qg_last_error(), "zscore"), "%s", qg_last_error());
    cr_assert_null(ds);
    free(root);
}

/* export-images: an in-memory dataset written as class folders reads back
 * as the same images (JPEG-close) and labels. */
Test(jpeg, export_round_trip)
{
    enum { COUNT = 7, K = 3, S = 8 };
    qg_dataset *ds = NULL;
    QG_EXPECT_OK(qg__dataset_new(COUNT, 1, S, S, K, &ds));
    uint8_t *px = qg__dataset_pixels(ds);
    int *lab = qg__dataset_labels(ds);
    for (int i = 0; i < COUNT; i++) {
        lab[i] = (i * 2) % K;
        for (int p = 0; p < S * S; p++)   /* flat grey levels, one per image */
            px[i * S * S + p] = (uint8_t)(30 + 30 * i);
    }
    char *root = strdup(qg_test_tmp_path("jpeg", "export"));
    const char *names[K] = {"a", "b", "c"};
    size_t n = 0;
    QG_EXPECT_OK(qg__dataset_export_jpeg(ds, root, "train", names, 16, 95, 0, &n));
    cr_assert_eq(n, COUNT);
    QG_EXPECT_OK(qg__dataset_export_jpeg(ds, root, "val", NULL, 16, 95, 5, &n));
    cr_assert_eq(n, 5, "--limit");
    char p[4096];
    snprintf(p, sizeof p, "%s/train/1_b/00002.jpg", root);   /* label (2*2) % 3 = 1 */
    FILE *f = fopen(p, "rb");
    cr_assert_not_null(f, "%s exists", p);
    fclose(f);
    snprintf(p, sizeof p, "%s/val/2/00004.jpg", root);       /* no names: the index */
    f = fopen(p, "rb");
    cr_assert_not_null(f, "%s exists", p);
    fclose(f);
    /* Read back: class folders sort as the labels, gray becomes RGB. */
    qg_data_opts dopt = {.input_size = 16, .resize = 16, .normalize = "none"};
    qg_dataset *tr = NULL;
    QG_EXPECT_OK(qg__dataset_load_opts("folder", root, 1, &dopt, &tr));
    cr_assert_eq(qg__dataset_count(tr), COUNT);
    cr_assert_eq(qg__dataset_classes(tr), K);
    float img[COUNT * 3 * 256];
    int32_t got[COUNT];
    qg_loader_opts o = {.batch = COUNT};
    cr_assert_eq(run_epoch(tr, &o, 0, img, got), COUNT);
    int seen[COUNT] = {0};
    for (int j = 0; j < COUNT; j++) {
        /* the grey level identifies the image */
        int i = (int)lrintf((img[j * 768 + 100] * 255.0f - 30.0f) / 30.0f);
        cr_assert(i >= 0 && i < COUNT, "level %g", img[j * 768 + 100] * 255.0f);
        seen[i]++;
        cr_assert_eq(got[j], lab[i], "image %d: label %d, want %d", i, got[j], lab[i]);
        for (int k = 0; k < 768; k++)
            cr_assert_leq(fabsf(img[j * 768 + k] * 255.0f - (30 + 30 * i)), 3.0f);
    }
    for (int i = 0; i < COUNT; i++)
        cr_assert_eq(seen[i], 1);
    qg__dataset_free(tr);
    qg__dataset_free(ds);
    free(root);
}
