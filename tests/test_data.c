/* tests/test_data.c: src/data (idx.c, cifar.c, dataset.c, loader.c).
 *
 * IDX and CIFAR readers run on files written here in the published byte
 * formats (raw and gzip via zlib) into a temporary directory, including
 * truncated, corrupted and mismatched files whose errors must name the
 * file and byte offset. The real Fashion-MNIST (Debian package
 * dataset-fashion-mnist, installed by CI) must load; its absence fails.
 * The loader is checked for exact coverage, seeded order, exact
 * normalisation, the pixel moves of crop and flip on a 4x4 image, and
 * shutdown mid-epoch. No OpenCL is involved. */
#define _GNU_SOURCE
#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <criterion/criterion.h>

#include "qgate.h"
#include "data/dataset.h"

/* ---- temporary directory and file writers ---- */

static char g_dir[4096];

static void make_tmpdir(void)
{
    const char *base = getenv("TMPDIR");
    snprintf(g_dir, sizeof g_dir, "%s/qg_data.XXXXXX", base && *base ? base : "/tmp");
    cr_assert_not_null(mkdtemp(g_dir), "mkdtemp(%s) failed", g_dir);
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static void remove_tmpdir(void)
{
    if (g_dir[0])
        nftw(g_dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

TestSuite(data, .init = make_tmpdir, .fini = remove_tmpdir, .timeout = 60);

static const char *path_in(char *buf, const char *name)
{
    snprintf(buf, 4096, "%s/%s", g_dir, name);
    return buf;
}

static void write_file(const char *path, const void *data, size_t len, int gz)
{
    if (gz) {
        gzFile g = gzopen(path, "wb");
        cr_assert_not_null(g, "gzopen %s", path);
        if (len)
            cr_assert_eq(gzwrite(g, data, (unsigned)len), (int)len);
        cr_assert_eq(gzclose(g), Z_OK);
    } else {
        FILE *f = fopen(path, "wb");
        cr_assert_not_null(f, "fopen %s", path);
        cr_assert_eq(fwrite(data, 1, len, f), len);
        cr_assert_eq(fclose(f), 0);
    }
}

static unsigned char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f);
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    rewind(f);
    unsigned char *b = malloc(*len + 1);
    cr_assert_eq(fread(b, 1, *len, f), *len);
    fclose(f);
    return b;
}

static void put_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static uint8_t idx_pixel(size_t i, int y, int x)
{
    return (uint8_t)((i * 7 + (size_t)y * 3 + (size_t)x * 5) & 255);
}

static uint8_t idx_label(size_t i)
{
    return (uint8_t)((i * 3 + 1) % 10);
}

/* IDX images: magic, n, h, w (big-endian), then n*h*w bytes. */
static unsigned char *idx_images(uint32_t magic, size_t n, int h, int w, size_t *len)
{
    *len = 16 + n * (size_t)h * (size_t)w;
    unsigned char *b = malloc(*len);
    put_be32(b, magic);
    put_be32(b + 4, (uint32_t)n);
    put_be32(b + 8, (uint32_t)h);
    put_be32(b + 12, (uint32_t)w);
    for (size_t i = 0; i < n; i++)
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                b[16 + (i * h + y) * w + x] = idx_pixel(i, y, x);
    return b;
}

static unsigned char *idx_labels(uint32_t magic, size_t n, size_t *len)
{
    *len = 8 + n;
    unsigned char *b = malloc(*len);
    put_be32(b, magic);
    put_be32(b + 4, (uint32_t)n);
    for (size_t i = 0; i < n; i++)
        b[8 + i] = idx_label(i);
    return b;
}

static void write_idx_pair(const char *img, const char *lab, size_t n, int h, int w, int gz)
{
    size_t li, ll;
    unsigned char *bi = idx_images(0x803, n, h, w, &li), *bl = idx_labels(0x801, n, &ll);
    write_file(img, bi, li, gz);
    write_file(lab, bl, ll, gz);
    free(bi);
    free(bl);
}

static void check_idx_dataset(const qg_dataset *ds, size_t n, int h, int w)
{
    cr_assert_eq(qg__dataset_count(ds), n);
    cr_assert_eq(qg__dataset_channels(ds), 1);
    cr_assert_eq(qg__dataset_height(ds), h);
    cr_assert_eq(qg__dataset_width(ds), w);
    cr_assert_eq(qg__dataset_classes(ds), 10);
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(qg__dataset_label(ds, i), idx_label(i), "label %zu", i);
        const uint8_t *im = qg__dataset_image(ds, i);
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                cr_assert_eq(im[y * w + x], idx_pixel(i, y, x), "image %zu (%d,%d)", i, y, x);
    }
}

#define EXPECT_ERR(expr, want_st, ...)                                                    \
    do {                                                                                \
        qg_status s_ = (expr);                                                          \
        cr_assert_eq(s_, want_st, "%s returned %s, want %s (%s)", #expr,                \
                     qg_status_str(s_), qg_status_str(want_st), qg_last_error());       \
        const char *subs_[] = {__VA_ARGS__};                                            \
        for (size_t k_ = 0; k_ < sizeof subs_ / sizeof *subs_; k_++)                    \
            cr_assert_not_null(strstr(qg_last_error(), subs_[k_]),                      \
                               "error \"%s\" lacks \"%s\"", qg_last_error(), subs_[k_]); \
    } while (0)

/* ---- IDX ---- */

Test(data, idx_raw_round_trip)
{
    char pi[4096], pl[4096];
    write_idx_pair(path_in(pi, "img"), path_in(pl, "lab"), 7, 5, 3, 0);
    qg_dataset *ds = NULL;
    cr_assert_eq(qg__dataset_load_idx(pi, pl, &ds), QG_OK, "%s", qg_last_error());
    check_idx_dataset(ds, 7, 5, 3);
    qg__dataset_truncate(ds, 4);
    cr_assert_eq(qg__dataset_count(ds), 4);
    qg__dataset_truncate(ds, 100);
    cr_assert_eq(qg__dataset_count(ds), 4);
    qg__dataset_free(ds);
}

Test(data, idx_gzip_round_trip)
{
    char pi[4096], pl[4096];
    write_idx_pair(path_in(pi, "img.gz"), path_in(pl, "lab.gz"), 300, 28, 28, 1);
    /* The files really are gzip (the reader must not just see raw bytes). */
    size_t len;
    unsigned char *b = read_all(pi, &len);
    cr_assert(b[0] == 0x1f && b[1] == 0x8b);
    cr_assert_lt(len, 16 + 300 * 784);
    free(b);
    qg_dataset *ds = NULL;
    cr_assert_eq(qg__dataset_load_idx(pi, pl, &ds), QG_OK, "%s", qg_last_error());
    check_idx_dataset(ds, 300, 28, 28);
    qg__dataset_free(ds);

    /* Mixed: gzip images, raw labels. */
    size_t ll;
    unsigned char *bl = idx_labels(0x801, 300, &ll);
    write_file(path_in(pl, "lab.raw"), bl, ll, 0);
    free(bl);
    cr_assert_eq(qg__dataset_load_idx(pi, pl, &ds), QG_OK, "%s", qg_last_error());
    check_idx_dataset(ds, 300, 28, 28);
    qg__dataset_free(ds);
}

Test(data, idx_truncated_raw)
{
    char pi[4096], pl[4096], want[4096];
    size_t li, ll;
    unsigned char *bi = idx_images(0x803, 6, 4, 5, &li), *bl = idx_labels(0x801, 6, &ll);
    write_file(path_in(pl, "lab"), bl, ll, 0);
    const size_t cuts[] = {0, 3, 10, 16, 17, 16 + 20 * 3 + 7, li - 1};
    for (size_t k = 0; k < sizeof cuts / sizeof *cuts; k++) {
        write_file(path_in(pi, "img"), bi, cuts[k], 0);
        qg_dataset *ds = (qg_dataset *)0x1;
        if (cuts[k] >= 16)
            snprintf(want, sizeof want, "file '%s' truncated at byte offset %zu: expected %d "
                     "bytes of image data", pi, cuts[k], 6 * 20);
        else if (cuts[k] >= 4)
            snprintf(want, sizeof want, "file '%s' truncated at byte offset %zu: expected a "
                     "16-byte IDX header", pi, cuts[k]);
        else
            snprintf(want, sizeof want, "file '%s' truncated at byte offset %zu", pi, cuts[k]);
        EXPECT_ERR(qg__dataset_load_idx(pi, pl, &ds), QG_ERR_FORMAT, want);
        cr_assert_null(ds);
    }
    /* Labels cut inside the data. */
    write_file(pi, bi, li, 0);
    write_file(pl, bl, ll - 2, 0);
    qg_dataset *ds = NULL;
    snprintf(want, sizeof want, "file '%s' truncated at byte offset %zu: expected 6 bytes of "
             "label data", pl, ll - 2);
    EXPECT_ERR(qg__dataset_load_idx(pi, pl, &ds), QG_ERR_FORMAT, want);
    free(bi);
    free(bl);
}

Test(data, idx_truncated_gzip)
{
    char pi[4096], pl[4096], want[4096];
    size_t li, ll;
    unsigned char *bi = idx_images(0x803, 40, 28, 28, &li), *bl = idx_labels(0x801, 40, &ll);
    write_file(path_in(pl, "lab.gz"), bl, ll, 1);
    qg_dataset *ds = NULL;

    /* The decompressed content is short: same message, decompressed offset. */
    write_file(path_in(pi, "img.gz"), bi, li - 100, 1);
    snprintf(want, sizeof want, "file '%s' truncated at byte offset %zu: expected %d bytes of "
             "image data", pi, li - 100, 40 * 784);
    EXPECT_ERR(qg__dataset_load_idx(pi, pl, &ds), QG_ERR_FORMAT, want);

    /* The gzip stream itself is cut at several points: a format error
     * naming the file, whether the cut falls in the deflate data or in
     * the CRC/length trailer. */
    write_file(pi, bi, li, 1);
    size_t glen;
    unsigned char *gz = read_all(pi, &glen);
    const size_t cuts[] = {2, 12, glen / 2, glen - 9, glen - 4, glen - 1};
    for (size_t k = 0; k < sizeof cuts / sizeof *cuts; k++) {
        write_file(pi, gz, cuts[k], 0);
        ds = NULL;
        EXPECT_ERR(qg__dataset_load_idx(pi, pl, &ds), QG_ERR_FORMAT, pi);
        cr_assert_null(ds);
    }
    /* A flipped byte in the deflate data is caught too (CRC or stream). */
    gz[glen / 2] ^= 0x55;
    write_file(pi, gz, glen, 0);
    EXPECT_ERR(qg__dataset_load_idx(pi, pl, &ds), QG_ERR_FORMAT, pi);
    free(gz);
    free(bi);
    free(bl);
}

Test(data, idx_bad_magic)
{
    char pi[4096], pl[4096];
    size_t li, ll;
    qg_dataset *ds = NULL;
    unsigned char *bi = idx_images(0x801, 3, 2, 2, &li), *bl = idx_labels(0x801, 3, &ll);
    write_file(path_in(pi, "img"), bi, li, 0);
    write_file(path_in(pl, "lab"), bl, ll, 0);
    EXPECT_ERR(qg__dataset_load_idx(pi, pl, &ds), QG_ERR_FORMAT, pi,
               "magic 0x00000801 at byte offset 0, expected 0x00000803",
               "this is an IDX label file");
    /* Swapped arguments. */
    EXPECT_ERR(qg__dataset_load_idx(pl, pi, &ds), QG_ERR_FORMAT, pl);
    free(bi);
    bi = idx_images(0x803, 3, 2, 2, &li);
    write_file(pi, bi, li, 0);
    bl[3] = 0x03;
    write_file(pl, bl, ll, 0);
    EXPECT_ERR(qg__dataset_load_idx(pi, pl, &ds), QG_ERR_FORMAT, pl,
               "expected 0x00000801");
    /* Random bytes, and a 3-dim magic with 16-bit data. */
    bi[2] = 0x0b;
    write_file(pi, bi, li, 0);
    EXPECT_ERR(qg__dataset_load_idx(pi, pl, &ds), QG_ERR_FORMAT, "0x00000b03");
    cr_assert_null(ds);
    free(bi);
    free(bl);
}

Test(data, idx_count_mismatch_and_bad_content)
{
    char pi[4096], pl[4096];
    size_t li, ll;
    qg_dataset *ds = NULL;
    unsigned char *bi = idx_images(0x803, 5, 3, 3, &li), *bl = idx_labels(0x801, 4, &ll);
    write_file(path_in(pi, "img"), bi, li, 0);
    write_file(path_in(pl, "lab"), bl, ll, 0);
    EXPECT_ERR(qg__dataset_load_idx(pi, pl, &ds), QG_ERR_FORMAT, pi, pl, "5 images",
               "4 labels");
    free(bl);

    /* Label out of range. */
    bl = idx_labels(0x801, 5, &ll);
    bl[8 + 3] = 10;
    write_file(pl, bl, ll, 0);
    EXPECT_ERR(qg__dataset_load_idx(pi, pl, &ds), QG_ERR_FORMAT, pl,
               "label 10 of sample 3 (byte offset 11)");
    bl[8 + 3] = 9;
    write_file(pl, bl, ll, 0);

    /* Extra data after what the header announces, raw and gzip. */
    unsigned char *longer = calloc(li + 3, 1);
    memcpy(longer, bi, li);
    write_file(pi, longer, li + 3, 0);
    EXPECT_ERR(qg__dataset_load_idx(pi, pl, &ds), QG_ERR_FORMAT, pi,
               "3 bytes of extra data after byte offset 61");
    write_file(pi, longer, li + 3, 1);
    EXPECT_ERR(qg__dataset_load_idx(pi, pl, &ds), QG_ERR_FORMAT, pi, "extra data");

    /* A zero dimension. */
    put_be32(bi + 8, 0);
    write_file(pi, bi, li, 0);
    EXPECT_ERR(qg__dataset_load_idx(pi, pl, &ds), QG_ERR_FORMAT, pi, "dimension 1");

    /* Missing file. */
    EXPECT_ERR(qg__dataset_load_idx(path_in(pi, "nope"), pl, &ds), QG_ERR_IO, pi);
    cr_assert_null(ds);
    free(longer);
    free(bi);
    free(bl);
}

/* Known values of the real files (checked against Python's gzip module). */
Test(data, fashion_mnist_default)
{
    qg_dataset *tr = NULL, *te = NULL;
    cr_assert_eq(qg__dataset_load("fashion-mnist", NULL, 1, &tr), QG_OK,
                 "%s (CI installs dataset-fashion-mnist)", qg_last_error());
    cr_assert_eq(qg__dataset_load("fashion-mnist", NULL, 0, &te), QG_OK, "%s",
                 qg_last_error());
    cr_assert_eq(qg__dataset_count(tr), 60000);
    cr_assert_eq(qg__dataset_count(te), 10000);
    cr_assert_eq(qg__dataset_channels(tr), 1);
    cr_assert_eq(qg__dataset_height(tr), 28);
    cr_assert_eq(qg__dataset_width(tr), 28);
    cr_assert_eq(qg__dataset_classes(tr), 10);
    const int first[10] = {9, 0, 0, 3, 0, 2, 7, 2, 5, 5};
    for (int i = 0; i < 10; i++)
        cr_assert_eq(qg__dataset_label(tr, i), first[i], "train label %d", i);
    cr_assert_eq(qg__dataset_label(te, 0), 9);
    long sum_tr = 0, sum_te = 0;
    for (int i = 0; i < 784; i++) {
        sum_tr += qg__dataset_image(tr, 0)[i];
        sum_te += qg__dataset_image(te, 0)[i];
    }
    cr_assert_eq(sum_tr, 76247);
    cr_assert_eq(sum_te, 33456);
    long hist[10] = {0};
    for (size_t i = 0; i < 60000; i++)
        hist[qg__dataset_label(tr, i)]++;
    for (int c = 0; c < 10; c++)
        cr_assert_eq(hist[c], 6000, "class %d", c);
    qg__dataset_free(tr);
    qg__dataset_free(te);
}

Test(data, load_by_name)
{
    char d[4096], p1[4096], p2[4096];
    qg_dataset *ds = NULL;
    /* fashion-mnist / mnist from a given directory, gzip and raw names. */
    snprintf(d, sizeof d, "%s", g_dir);
    write_idx_pair(path_in(p1, "train-images-idx3-ubyte.gz"),
                   path_in(p2, "train-labels-idx1-ubyte.gz"), 9, 4, 4, 1);
    write_idx_pair(path_in(p1, "t10k-images-idx3-ubyte"),
                   path_in(p2, "t10k-labels-idx1-ubyte"), 3, 4, 4, 0);
    cr_assert_eq(qg__dataset_load("fashion-mnist", d, 1, &ds), QG_OK, "%s", qg_last_error());
    check_idx_dataset(ds, 9, 4, 4);
    qg__dataset_free(ds);
    cr_assert_eq(qg__dataset_load("mnist", d, 0, &ds), QG_OK, "%s", qg_last_error());
    check_idx_dataset(ds, 3, 4, 4);
    qg__dataset_free(ds);
    ds = NULL;

    EXPECT_ERR(qg__dataset_load("mnist", NULL, 1, &ds), QG_ERR_INVALID_ARG, "--data-dir");
    EXPECT_ERR(qg__dataset_load("cifar10", NULL, 1, &ds), QG_ERR_INVALID_ARG, "--data-dir");
    EXPECT_ERR(qg__dataset_load("imagenet-22k", NULL, 1, &ds), QG_ERR_INVALID_ARG,
               "imagenet-22k", "fashion-mnist");
    snprintf(d, sizeof d, "%s/empty", g_dir);
    mkdir(d, 0755);
    EXPECT_ERR(qg__dataset_load("fashion-mnist", d, 1, &ds), QG_ERR_IO, d,
               "train-images-idx3-ubyte", "--data-dir");
    EXPECT_ERR(qg__dataset_load("cifar100", d, 0, &ds), QG_ERR_IO, d, "test.bin");
    cr_assert_null(ds);
}

/* Issue 23.6: `train` accepted test images of another size than the
 * training images (eval refused them); the run is refused before any
 * model is built, naming both shapes. */
Test(data, train_refuses_test_images_of_another_size)
{
    char d[4096], p1[4096], p2[4096];
    snprintf(d, sizeof d, "%s", g_dir);
    write_idx_pair(path_in(p1, "train-images-idx3-ubyte"),
                   path_in(p2, "train-labels-idx1-ubyte"), 9, 4, 4, 0);
    write_idx_pair(path_in(p1, "t10k-images-idx3-ubyte"),
                   path_in(p2, "t10k-labels-idx1-ubyte"), 3, 5, 5, 0);
    qg_train_cfg c;
    qg_train_cfg_defaults(&c);
    c.data = "mnist";
    c.data_dir = d;
    c.model = "resnet8";
    c.batch = 4;
    c.eval_batch = 4;
    c.epochs = 1;
    EXPECT_ERR(qg_train_run(&c), QG_ERR_SHAPE, "training images are 1x4x4",
               "test images 1x5x5");
}

/* ---- CIFAR ---- */

static uint8_t cifar_pixel(size_t i, int c, int y, int x)
{
    return (uint8_t)((i * 31 + (size_t)c * 101 + (size_t)y * 7 + (size_t)x * 3) & 255);
}

/* Records i0..i0+n-1: label byte(s), then R, G, B planes of 32x32. */
static unsigned char *cifar_records(size_t i0, size_t n, int c100, size_t *len)
{
    size_t rec = (size_t)(c100 ? 2 : 1) + 3072;
    *len = n * rec;
    unsigned char *b = malloc(*len + 1);
    for (size_t r = 0; r < n; r++) {
        size_t i = i0 + r;
        unsigned char *p = b + r * rec;
        if (c100) {
            p[1] = (unsigned char)((i * 37) % 100);
            p[0] = (unsigned char)(p[1] / 5);
            p += 2;
        } else {
            *p++ = (unsigned char)((i * 7) % 10);
        }
        for (int c = 0; c < 3; c++)
            for (int y = 0; y < 32; y++)
                for (int x = 0; x < 32; x++)
                    p[c * 1024 + y * 32 + x] = cifar_pixel(i, c, y, x);
    }
    return b;
}

static void check_cifar(const qg_dataset *ds, size_t i0, size_t n, int c100)
{
    cr_assert_eq(qg__dataset_count(ds), n);
    cr_assert_eq(qg__dataset_channels(ds), 3);
    cr_assert_eq(qg__dataset_height(ds), 32);
    cr_assert_eq(qg__dataset_width(ds), 32);
    cr_assert_eq(qg__dataset_classes(ds), c100 ? 100 : 10);
    for (size_t r = 0; r < n; r++) {
        size_t i = i0 + r;
        int want = c100 ? (int)((i * 37) % 100) : (int)((i * 7) % 10);
        cr_assert_eq(qg__dataset_label(ds, r), want, "label of sample %zu", r);
        const uint8_t *im = qg__dataset_image(ds, r);
        for (int c = 0; c < 3; c++)
            for (int y = 0; y < 32; y++)
                for (int x = 0; x < 32; x++)
                    cr_assert_eq(im[(c * 32 + y) * 32 + x], cifar_pixel(i, c, y, x),
                                 "sample %zu c%d (%d,%d)", r, c, y, x);
    }
}

static void write_cifar10(const char *dir, const size_t *counts)
{
    char p[4096];
    size_t at = 0, len;
    for (int b = 0; b < 6; b++) {
        unsigned char *buf = cifar_records(at, counts[b], 0, &len);
        if (b < 5)
            snprintf(p, sizeof p, "%s/data_batch_%d.bin", dir, b + 1);
        else
            snprintf(p, sizeof p, "%s/test_batch.bin", dir);
        write_file(p, buf, len, 0);
        free(buf);
        at += counts[b];
    }
}

Test(data, cifar10_files)
{
    const size_t counts[6] = {3, 2, 1, 2, 4, 5};
    write_cifar10(g_dir, counts);
    qg_dataset *ds = NULL;
    cr_assert_eq(qg__dataset_load_cifar(g_dir, 0, 1, &ds), QG_OK, "%s", qg_last_error());
    check_cifar(ds, 0, 12, 0);
    qg__dataset_free(ds);
    cr_assert_eq(qg__dataset_load_cifar(g_dir, 0, 0, &ds), QG_OK, "%s", qg_last_error());
    check_cifar(ds, 12, 5, 0);
    qg__dataset_free(ds);

    /* By name, from the directory the archive unpacks into. */
    char sub[4096];
    snprintf(sub, sizeof sub, "%s/cifar-10-batches-bin", g_dir);
    mkdir(sub, 0755);
    write_cifar10(sub, counts);
    char p[4096];
    snprintf(p, sizeof p, "%s/test_batch.bin", g_dir);
    remove(p);
    cr_assert_eq(qg__dataset_load("cifar10", g_dir, 0, &ds), QG_OK, "%s", qg_last_error());
    check_cifar(ds, 12, 5, 0);
    qg__dataset_free(ds);
}

Test(data, cifar100_files)
{
    char p[4096];
    size_t len;
    unsigned char *b = cifar_records(0, 7, 1, &len);
    write_file(path_in(p, "train.bin"), b, len, 0);
    free(b);
    b = cifar_records(7, 2, 1, &len);
    write_file(path_in(p, "test.bin"), b, len, 0);
    free(b);
    qg_dataset *ds = NULL;
    cr_assert_eq(qg__dataset_load_cifar(g_dir, 1, 1, &ds), QG_OK, "%s", qg_last_error());
    check_cifar(ds, 0, 7, 1);
    qg__dataset_free(ds);
    cr_assert_eq(qg__dataset_load("cifar100", g_dir, 0, &ds), QG_OK, "%s", qg_last_error());
    check_cifar(ds, 7, 2, 1);
    qg__dataset_free(ds);
}

Test(data, cifar_partial_record_and_bad_labels)
{
    char p[4096], want[4096];
    size_t len;
    qg_dataset *ds = NULL;
    unsigned char *b = cifar_records(0, 3, 0, &len);
    const size_t counts[6] = {1, 1, 1, 1, 1, 1};
    write_cifar10(g_dir, counts);
    /* data_batch_3 ends 100 bytes into its third record. */
    write_file(path_in(p, "data_batch_3.bin"), b, 2 * 3073 + 100, 0);
    snprintf(want, sizeof want, "file '%s' ends with a partial record at byte offset 6146", p);
    EXPECT_ERR(qg__dataset_load_cifar(g_dir, 0, 1, &ds), QG_ERR_FORMAT, want, "3073-byte");
    /* Label out of range names the file and offset. */
    b[3073] = 10;
    write_file(p, b, len, 0);
    EXPECT_ERR(qg__dataset_load_cifar(g_dir, 0, 1, &ds), QG_ERR_FORMAT, p,
               "label 10 of record 1 (byte offset 3073)");
    free(b);
    /* Empty and missing files. */
    write_file(p, "", 0, 0);
    EXPECT_ERR(qg__dataset_load_cifar(g_dir, 0, 1, &ds), QG_ERR_FORMAT, p, "no CIFAR-10");
    remove(p);
    EXPECT_ERR(qg__dataset_load_cifar(g_dir, 0, 1, &ds), QG_ERR_IO, p);

    /* CIFAR-100: 3074-byte records; coarse and fine label ranges. */
    b = cifar_records(0, 2, 1, &len);
    write_file(path_in(p, "test.bin"), b, len - 3000, 0);
    snprintf(want, sizeof want, "file '%s' ends with a partial record at byte offset 3074", p);
    EXPECT_ERR(qg__dataset_load_cifar(g_dir, 1, 0, &ds), QG_ERR_FORMAT, want, "3074-byte");
    b[3074 + 1] = 100;
    write_file(p, b, len, 0);
    EXPECT_ERR(qg__dataset_load_cifar(g_dir, 1, 0, &ds), QG_ERR_FORMAT, p,
               "fine label 100 of record 1 (byte offset 3075)");
    b[3074 + 1] = 99;
    b[3074] = 20;
    write_file(p, b, len, 0);
    EXPECT_ERR(qg__dataset_load_cifar(g_dir, 1, 0, &ds), QG_ERR_FORMAT, p, "coarse label 20");
    cr_assert_null(ds);
    free(b);
}

/* ---- loader ---- */

/* count samples of c x h x w; sample i has pixel 0 = i & 255, pixel 1 =
 * i >> 8 (so the loader's output identifies it) and label i % classes. */
static qg_dataset *numbered(size_t count, int c, int h, int w)
{
    qg_dataset *ds = NULL;
    cr_assert_eq(qg__dataset_new(count, c, h, w, 10, &ds), QG_OK);
    size_t per = (size_t)c * h * w;
    uint8_t *px = qg__dataset_pixels(ds);
    int *lab = qg__dataset_labels(ds);
    for (size_t i = 0; i < count; i++) {
        for (size_t k = 0; k < per; k++)
            px[i * per + k] = (uint8_t)((i * 13 + k * 29) & 255);
        px[i * per] = (uint8_t)(i & 255);
        px[i * per + 1] = (uint8_t)(i >> 8);
        lab[i] = (int)(i % 10);
    }
    return ds;
}

static qg_loader_opts plain_opts(int batch)
{
    qg_loader_opts o = {.batch = batch, .shuffle = 1, .seed = 1234};
    for (int c = 0; c < 4; c++) {
        o.mean[c] = 0.0f;
        o.std[c] = 1.0f;
    }
    return o;
}

static int to_byte(float v)
{
    return (int)lrintf(v * 255.0f);
}

/* Runs an epoch and writes the sample order into order[] (size count). */
static size_t epoch_order(qg_loader *ld, const qg_dataset *ds, int epoch, size_t *order,
                          int *sizes)
{
    cr_assert_eq(qg__loader_start_epoch(ld, epoch), QG_OK);
    const float *img;
    const int32_t *lab;
    int n;
    size_t got = 0, b = 0;
    size_t per = (size_t)qg__dataset_channels(ds) * qg__dataset_height(ds) *
                 qg__dataset_width(ds);
    while (qg__loader_next(ld, &img, &lab, &n)) {
        if (sizes)
            sizes[b] = n;
        b++;
        for (int j = 0; j < n; j++) {
            size_t id = (size_t)to_byte(img[j * per]) | (size_t)to_byte(img[j * per + 1]) << 8;
            cr_assert_lt(id, qg__dataset_count(ds));
            cr_assert_eq(lab[j], (int32_t)(id % 10), "label of sample %zu", id);
            const uint8_t *src = qg__dataset_image(ds, id);
            for (size_t k = 2; k < per; k++)
                cr_assert_eq(to_byte(img[j * per + k]), src[k], "sample %zu element %zu",
                             id, k);
            order[got++] = id;
        }
    }
    cr_assert_eq(b, qg__loader_batches_per_epoch(ld));
    return got;
}

/* Data-parallel shards (src/train/dist_train.c): with drop_last, shard r
 * of 2 at batch B yields in its b-th batch exactly the samples, augmented
 * alike, at slots 2j + r of one loader's b-th batch of 2B, so 2 processes
 * at B see one process's 2B batch; the tail that fills no global batch is
 * dropped on every shard alike. */
Test(data, loader_shards_make_the_global_batch)
{
    qg_dataset *ds = numbered(300, 1, 6, 5);
    qg_loader_opts o = plain_opts(16);
    o.drop_last = 1;
    o.crop_pad = 2;
    o.flip = 1;
    qg_loader *whole = NULL, *sh[2] = {NULL, NULL};
    cr_assert_eq(qg__loader_new(ds, &o, &whole), QG_OK, "%s", qg_last_error());
    for (int r = 0; r < 2; r++) {
        qg_loader_opts so = o;
        so.batch = 8;
        so.shard_rank = r;
        so.shard_count = 2;
        cr_assert_eq(qg__loader_new(ds, &so, &sh[r]), QG_OK, "%s", qg_last_error());
        cr_assert_eq(qg__loader_batches_per_epoch(sh[r]), 18); /* 300 / 16 */
    }
    cr_assert_eq(qg__loader_batches_per_epoch(whole), 18);
    size_t per = 30;
    for (int epoch = 0; epoch < 2; epoch++) {
        cr_assert_eq(qg__loader_start_epoch(whole, epoch), QG_OK);
        for (int r = 0; r < 2; r++)
            cr_assert_eq(qg__loader_start_epoch(sh[r], epoch), QG_OK);
        const float *wi, *si;
        const int32_t *wl, *sl;
        int wn, sn;
        for (int b = 0; b < 18; b++) {
            cr_assert_eq(qg__loader_next(whole, &wi, &wl, &wn), 1);
            cr_assert_eq(wn, 16);
            float keep[16 * 30];
            int32_t keepl[16];
            memcpy(keep, wi, sizeof keep);
            memcpy(keepl, wl, sizeof keepl);
            for (int r = 0; r < 2; r++) {
                cr_assert_eq(qg__loader_next(sh[r], &si, &sl, &sn), 1);
                cr_assert_eq(sn, 8);
                for (int j = 0; j < 8; j++) {
                    cr_assert_eq(sl[j], keepl[2 * j + r], "epoch %d batch %d shard %d", epoch,
                                 b, r);
                    cr_assert_eq(memcmp(si + j * per, keep + (2 * j + r) * per,
                                        per * sizeof(float)), 0,
                                 "epoch %d batch %d shard %d sample %d differs", epoch, b, r, j);
                }
            }
        }
        for (int r = 0; r < 2; r++)
            cr_assert_eq(qg__loader_next(sh[r], &si, &sl, &sn), 0);
    }
    qg__loader_free(whole);
    qg__loader_free(sh[0]);
    qg__loader_free(sh[1]);
    qg__dataset_free(ds);
}

/* Without drop_last (sharded evaluation) 3 shards of 301 samples at batch
 * 64 cover every sample exactly once: 101, 100, 100, in batches of 64 and the rest. */
Test(data, loader_shards_cover_every_sample_once)
{
    qg_dataset *ds = numbered(301, 2, 3, 2);
    int seen[301] = {0};
    for (int r = 0; r < 3; r++) {
        qg_loader_opts o = plain_opts(64);
        o.shard_rank = r;
        o.shard_count = 3;
        qg_loader *ld = NULL;
        cr_assert_eq(qg__loader_new(ds, &o, &ld), QG_OK, "%s", qg_last_error());
        size_t order[301];
        int sizes[4];
        size_t got = epoch_order(ld, ds, 1, order, sizes);
        cr_assert_eq(got, r == 0 ? 101 : 100, "shard %d: %zu samples", r, got);
        cr_assert_eq(sizes[0], 64);
        cr_assert_eq(sizes[1], (int)got - 64);
        for (size_t i = 0; i < got; i++)
            seen[order[i]]++;
        qg__loader_free(ld);
    }
    for (size_t i = 0; i < 301; i++)
        cr_assert_eq(seen[i], 1, "sample %zu seen %d times", i, seen[i]);
    qg_loader_opts bad = plain_opts(8);
    bad.shard_rank = 2;
    bad.shard_count = 2;
    qg_loader *ld = NULL;
    cr_assert_eq(qg__loader_new(ds, &bad, &ld), QG_ERR_INVALID_ARG);
    qg__dataset_free(ds);
}

Test(data, loader_covers_every_sample_once)
{
    qg_dataset *ds = numbered(300, 2, 3, 2);
    qg_loader_opts o = plain_opts(64);
    qg_loader *ld = NULL;
    cr_assert_eq(qg__loader_new(ds, &o, &ld), QG_OK, "%s", qg_last_error());
    cr_assert_eq(qg__loader_batches_per_epoch(ld), 5);
    size_t order[300];
    int sizes[8];
    for (int epoch = 0; epoch < 3; epoch++) {
        cr_assert_eq(epoch_order(ld, ds, epoch, order, sizes), 300);
        int seen[300] = {0};
        for (size_t i = 0; i < 300; i++)
            seen[order[i]]++;
        for (size_t i = 0; i < 300; i++)
            cr_assert_eq(seen[i], 1, "epoch %d: sample %zu seen %d times", epoch, i, seen[i]);
        const int want[5] = {64, 64, 64, 64, 44};
        for (int b = 0; b < 5; b++)
            cr_assert_eq(sizes[b], want[b]);
        /* After the end it keeps saying so. */
        const float *img;
        const int32_t *lab;
        int n = -1;
        cr_assert_eq(qg__loader_next(ld, &img, &lab, &n), 0);
        cr_assert_eq(n, 0);
    }
    qg__loader_free(ld);

    /* drop_last: 4 full batches of distinct samples. */
    o.drop_last = 1;
    cr_assert_eq(qg__loader_new(ds, &o, &ld), QG_OK);
    cr_assert_eq(qg__loader_batches_per_epoch(ld), 4);
    cr_assert_eq(epoch_order(ld, ds, 0, order, sizes), 256);
    int seen[300] = {0};
    for (size_t i = 0; i < 256; i++)
        cr_assert_eq(seen[order[i]]++, 0);
    qg__loader_free(ld);

    /* Fewer samples than a batch with drop_last: no batches at all. */
    o.batch = 301;
    cr_assert_eq(qg__loader_new(ds, &o, &ld), QG_OK);
    cr_assert_eq(qg__loader_batches_per_epoch(ld), 0);
    cr_assert_eq(epoch_order(ld, ds, 0, order, NULL), 0);
    qg__loader_free(ld);
    qg__dataset_free(ds);
}

Test(data, loader_order_is_seeded)
{
    qg_dataset *ds = numbered(500, 1, 2, 2);
    qg_loader_opts o = plain_opts(7);
    qg_loader *a = NULL, *b = NULL;
    cr_assert_eq(qg__loader_new(ds, &o, &a), QG_OK);
    cr_assert_eq(qg__loader_new(ds, &o, &b), QG_OK);
    static size_t oa[500], ob[500], oc[500];
    epoch_order(a, ds, 3, oa, NULL);
    epoch_order(b, ds, 3, ob, NULL);
    cr_assert_arr_eq(oa, ob, sizeof oa, "same seed and epoch, different order");
    epoch_order(b, ds, 4, oc, NULL);
    cr_assert(memcmp(oa, oc, sizeof oa) != 0, "epochs 3 and 4 gave the same order");
    /* Epoch 3 again, after epoch 4, gives epoch 3's order back. */
    epoch_order(b, ds, 3, ob, NULL);
    cr_assert_arr_eq(oa, ob, sizeof oa);
    /* Shuffled for real: few samples stay in place. */
    size_t fixed = 0;
    for (size_t i = 0; i < 500; i++)
        fixed += oa[i] == i;
    cr_assert_lt(fixed, 10);
    qg__loader_free(b);

    o.seed = 1235;
    cr_assert_eq(qg__loader_new(ds, &o, &b), QG_OK);
    epoch_order(b, ds, 3, ob, NULL);
    cr_assert(memcmp(oa, ob, sizeof oa) != 0, "seeds 1234 and 1235 gave the same order");
    qg__loader_free(b);

    o.shuffle = 0;
    cr_assert_eq(qg__loader_new(ds, &o, &b), QG_OK);
    epoch_order(b, ds, 5, ob, NULL);
    for (size_t i = 0; i < 500; i++)
        cr_assert_eq(ob[i], i);
    qg__loader_free(b);
    qg__loader_free(a);
    qg__dataset_free(ds);
}

Test(data, loader_normalisation_exact)
{
    qg_dataset *ds = NULL;
    cr_assert_eq(qg__dataset_new(1, 3, 1, 4, 10, &ds), QG_OK);
    const uint8_t px[12] = {255, 0, 51, 102, 0, 128, 200, 255, 1, 17, 254, 77};
    memcpy(qg__dataset_pixels(ds), px, sizeof px);
    qg_loader_opts o = {.batch = 1,
                        .mean = {0.5f, 0.4822f, 0.4465f},
                        .std = {0.25f, 0.2435f, 0.2616f}};
    qg_loader *ld = NULL;
    cr_assert_eq(qg__loader_new(ds, &o, &ld), QG_OK, "%s", qg_last_error());
    cr_assert_eq(qg__loader_start_epoch(ld, 0), QG_OK);
    const float *img;
    const int32_t *lab;
    int n;
    cr_assert_eq(qg__loader_next(ld, &img, &lab, &n), 1);
    cr_assert_eq(n, 1);
    /* Hand values: 255 -> (1 - 0.5)/0.25 = 2 and 0 -> -2, both exact. */
    cr_assert_eq(img[0], 2.0f);
    cr_assert_eq(img[1], -2.0f);
    for (int c = 0; c < 3; c++)
        for (int k = 0; k < 4; k++) {
            float want = ((float)px[c * 4 + k] / 255.0f - o.mean[c]) / o.std[c];
            cr_assert_eq(img[c * 4 + k], want, "channel %d pixel %d: %.9g vs %.9g", c, k,
                         img[c * 4 + k], want);
        }
    cr_assert(fabsf(img[2] - (-1.2f)) < 1e-6f);
    cr_assert(fabsf(img[4 + 1] - (128 / 255.0f - 0.4822f) / 0.2435f) < 1e-6f);
    cr_assert_eq(qg__loader_next(ld, &img, &lab, &n), 0);
    qg__loader_free(ld);

    /* Bad options are refused. */
    o.std[2] = 0;
    EXPECT_ERR(qg__loader_new(ds, &o, &ld), QG_ERR_INVALID_ARG, "std of channel 2");
    o.std[2] = 1;
    o.batch = 0;
    EXPECT_ERR(qg__loader_new(ds, &o, &ld), QG_ERR_INVALID_ARG, "batch 0");
    cr_assert_null(ld);
    qg__dataset_free(ds);
}

/* A 4x4 one-channel image 1..16 (row-major), crop padding 1. */
static const uint8_t img4[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};

/* Hand-worked outputs for four (ox, oy, flip): the crop window starts at
 * (oy, ox) in the 6x6 zero-padded image, then columns are mirrored. */
static const struct {
    int ox, oy, flip;
    uint8_t out[16];
} hand[] = {
    {0, 0, 0, {0, 0, 0, 0, 0, 1, 2, 3, 0, 5, 6, 7, 0, 9, 10, 11}},
    {2, 1, 0, {2, 3, 4, 0, 6, 7, 8, 0, 10, 11, 12, 0, 14, 15, 16, 0}},
    {1, 1, 1, {4, 3, 2, 1, 8, 7, 6, 5, 12, 11, 10, 9, 16, 15, 14, 13}},
    {0, 2, 1, {7, 6, 5, 0, 11, 10, 9, 0, 15, 14, 13, 0, 0, 0, 0, 0}},
    {1, 1, 0, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}},
};

Test(data, loader_crop_and_flip_move_pixels)
{
    qg_dataset *ds = NULL;
    cr_assert_eq(qg__dataset_new(1, 1, 4, 4, 10, &ds), QG_OK);
    memcpy(qg__dataset_pixels(ds), img4, 16);
    qg_loader_opts o = plain_opts(1);
    o.crop_pad = 1;
    o.flip = 1;
    qg_loader *ld = NULL;
    cr_assert_eq(qg__loader_new(ds, &o, &ld), QG_OK);
    int combos[3][3][2] = {{{0}}};
    int hand_seen[5] = {0};
    for (int epoch = 0; epoch < 300; epoch++) {
        int ox, oy, flip, ox2, oy2, flip2;
        qg__loader_augment_params(&o, epoch, 0, &ox, &oy, &flip);
        qg__loader_augment_params(&o, epoch, 0, &ox2, &oy2, &flip2);
        cr_assert(ox == ox2 && oy == oy2 && flip == flip2);
        cr_assert(ox >= 0 && ox <= 2 && oy >= 0 && oy <= 2 && (flip == 0 || flip == 1));
        combos[oy][ox][flip]++;
        cr_assert_eq(qg__loader_start_epoch(ld, epoch), QG_OK);
        const float *img;
        const int32_t *lab;
        int n;
        cr_assert_eq(qg__loader_next(ld, &img, &lab, &n), 1);
        /* General rule: out(y, x) = in(y + oy - 1, xc + ox - 1), xc = flip ? 3 - x : x. */
        for (int y = 0; y < 4; y++)
            for (int x = 0; x < 4; x++) {
                int sy = y + oy - 1, sx = (flip ? 3 - x : x) + ox - 1;
                int want = sy >= 0 && sy < 4 && sx >= 0 && sx < 4 ? img4[sy * 4 + sx] : 0;
                cr_assert_eq(to_byte(img[y * 4 + x]), want, "epoch %d (ox %d oy %d flip %d) "
                             "pixel (%d,%d)", epoch, ox, oy, flip, y, x);
            }
        for (size_t h = 0; h < sizeof hand / sizeof *hand; h++)
            if (hand[h].ox == ox && hand[h].oy == oy && hand[h].flip == flip) {
                hand_seen[h]++;
                for (int k = 0; k < 16; k++)
                    cr_assert_eq(to_byte(img[k]), hand[h].out[k], "hand case %zu pixel %d",
                                 h, k);
            }
    }
    /* All 18 choices occur, roughly uniformly (300/18 = 16.7 each). */
    for (int y = 0; y < 3; y++)
        for (int x = 0; x < 3; x++)
            for (int f = 0; f < 2; f++)
                cr_assert(combos[y][x][f] >= 4 && combos[y][x][f] <= 35,
                          "(oy %d ox %d flip %d) chosen %d times of 300", y, x, f,
                          combos[y][x][f]);
    for (int h = 0; h < 5; h++)
        cr_assert_gt(hand_seen[h], 0, "hand case %d never drawn", h);
    qg__loader_free(ld);

    /* With crop and flip off the image passes through unchanged. */
    o.crop_pad = 0;
    o.flip = 0;
    cr_assert_eq(qg__loader_new(ds, &o, &ld), QG_OK);
    cr_assert_eq(qg__loader_start_epoch(ld, 7), QG_OK);
    const float *img;
    const int32_t *lab;
    int n;
    cr_assert_eq(qg__loader_next(ld, &img, &lab, &n), 1);
    for (int k = 0; k < 16; k++)
        cr_assert_eq(to_byte(img[k]), img4[k]);
    qg__loader_free(ld);
    qg__dataset_free(ds);
}

/* The batch the caller holds is not overwritten while the worker runs
 * ahead, and freeing or restarting mid-epoch neither hangs nor leaks. */
Test(data, loader_threading_mid_epoch, .timeout = 30)
{
    qg_dataset *ds = numbered(3000, 3, 32, 32);
    qg_loader_opts o = plain_opts(50);
    o.crop_pad = 4;
    o.flip = 1;
    size_t per = 3 * 32 * 32;
    qg_loader *ld = NULL;
    const float *img;
    const int32_t *lab;
    int n;

    cr_assert_eq(qg__loader_new(ds, &o, &ld), QG_OK);
    qg__loader_free(ld); /* never started */

    cr_assert_eq(qg__loader_new(ds, &o, &ld), QG_OK);
    cr_assert_eq(qg__loader_start_epoch(ld, 0), QG_OK);
    qg__loader_free(ld); /* started, nothing taken, worker busy */

    cr_assert_eq(qg__loader_new(ds, &o, &ld), QG_OK);
    cr_assert_eq(qg__loader_start_epoch(ld, 0), QG_OK);
    cr_assert_eq(qg__loader_next(ld, &img, &lab, &n), 1);
    float *copy = malloc(per * 50 * sizeof *copy);
    memcpy(copy, img, per * 50 * sizeof *copy);
    usleep(100 * 1000); /* the worker fills batch 1 meanwhile */
    cr_assert_arr_eq(copy, img, per * 50 * sizeof *copy, "held batch changed under the caller");
    cr_assert_eq(qg__loader_next(ld, &img, &lab, &n), 1);
    qg__loader_free(ld); /* mid-epoch, holding a batch */

    /* Restart mid-epoch, repeatedly: each restart gives the epoch from
     * its first batch, identical to an uninterrupted run. */
    o.crop_pad = 0;
    o.flip = 0;
    qg_dataset *small = numbered(400, 1, 2, 2);
    cr_assert_eq(qg__loader_new(small, &o, &ld), QG_OK);
    static size_t full[400], again[400];
    epoch_order(ld, small, 2, full, NULL);
    for (int r = 0; r < 20; r++) {
        cr_assert_eq(qg__loader_start_epoch(ld, r % 3), QG_OK);
        for (int k = 0; k < r % 5; k++)
            cr_assert_eq(qg__loader_next(ld, &img, &lab, &n), 1);
    }
    epoch_order(ld, small, 2, again, NULL);
    cr_assert_arr_eq(full, again, sizeof full);
    qg__loader_free(ld);
    qg__dataset_free(small);
    free(copy);
    qg__dataset_free(ds);
}

/* Several workers and deeper prefetch give the same batches as one. */
Test(data, loader_workers_do_not_change_batches)
{
    qg_dataset *ds = numbered(301, 3, 5, 4);
    qg_loader_opts o = plain_opts(16);
    o.crop_pad = 1;
    o.flip = 1;
    size_t per = 3 * 5 * 4;
    float *ref = malloc(301 * per * sizeof *ref);
    int32_t lref[301];
    for (int variant = 0; variant < 3; variant++) {
        o.workers = variant == 0 ? 1 : variant == 1 ? 3 : 2;
        o.prefetch = variant == 0 ? 2 : variant == 1 ? 3 : 5;
        qg_loader *ld = NULL;
        cr_assert_eq(qg__loader_new(ds, &o, &ld), QG_OK, "%s", qg_last_error());
        for (int epoch = 0; epoch < 2; epoch++) {
            cr_assert_eq(qg__loader_start_epoch(ld, epoch), QG_OK);
            const float *img;
            const int32_t *lab;
            int n;
            size_t got = 0;
            while (qg__loader_next(ld, &img, &lab, &n)) {
                if (variant == 0 && epoch == 1) {
                    memcpy(ref + got * per, img, (size_t)n * per * sizeof *img);
                    memcpy(lref + got, lab, (size_t)n * sizeof *lab);
                } else if (epoch == 1) {
                    cr_assert_eq(memcmp(ref + got * per, img, (size_t)n * per * sizeof *img), 0,
                                 "workers %d: batch at %zu differs", o.workers, got);
                    cr_assert_eq(memcmp(lref + got, lab, (size_t)n * sizeof *lab), 0);
                }
                got += (size_t)n;
            }
            cr_assert_eq(got, 301);
        }
        qg__loader_free(ld);
    }
    o.workers = 65;
    qg_loader *ld = NULL;
    EXPECT_ERR(qg__loader_new(ds, &o, &ld), QG_ERR_INVALID_ARG, "65 workers");
    free(ref);
    qg__dataset_free(ds);
}

/* ---- hardening (issue 23) ---- */

/* The offsets a gzip corruption message gives: compressed, decompressed. */
static void corrupt_offsets(const char *msg, unsigned long long *comp, size_t *dec)
{
    const char *at = strstr(msg, "compressed byte offset ");
    cr_assert_not_null(at, "no compressed offset in \"%s\"", msg);
    cr_assert_eq(sscanf(at, "compressed byte offset %llu (decompressed byte offset %zu)", comp,
                        dec), 2, "%s", msg);
}

/* Issue 23.10: gzip corruption was always reported "near byte offset 16"
 * (one zlib call read the whole body); the offsets are now where zlib
 * found the damage, in the compressed file and in the decompressed data. */
Test(data, idx_gzip_corruption_offset)
{
    char pi[4096], pl[4096];
    size_t li, ll, glen;
    unsigned char *bi = idx_images(0x803, 400, 28, 28, &li), *bl = idx_labels(0x801, 400, &ll);
    write_file(path_in(pl, "lab.gz"), bl, ll, 1);
    /* Written in two parts with a full flush between them: the flush ends
     * with an empty stored block, 00 00 ff ff, and the next block header
     * starts on the byte after it. */
    const size_t half = li / 2;
    gzFile g = gzopen(path_in(pi, "img.gz"), "wb");
    cr_assert_not_null(g);
    cr_assert_eq(gzwrite(g, bi, (unsigned)half), (int)half);
    cr_assert_eq(gzflush(g, Z_FULL_FLUSH), Z_OK);
    cr_assert_eq(gzwrite(g, bi + half, (unsigned)(li - half)), (int)(li - half));
    cr_assert_eq(gzclose(g), Z_OK);
    unsigned char *gz = read_all(pi, &glen);
    size_t mark = 0;
    for (size_t i = 10; i + 4 < glen; i++)
        if (memcmp(gz + i, "\x00\x00\xff\xff", 4) == 0)
            mark = i + 4;
    cr_assert_gt(mark, 0, "no flush marker in the gzip stream");
    gz[mark] = 0x07; /* final block of the reserved type 3 */
    write_file(pi, gz, glen, 0);
    qg_dataset *ds = NULL;
    EXPECT_ERR(qg__dataset_load_idx(pi, pl, &ds), QG_ERR_FORMAT, pi, "gzip data corrupt",
               "invalid block type");
    unsigned long long comp;
    size_t dec;
    corrupt_offsets(qg_last_error(), &comp, &dec);
    cr_expect(comp >= mark && comp <= mark + 1, "damage at %zu: %s", mark, qg_last_error());
    cr_expect_eq(dec, half, "%s", qg_last_error());
    free(gz);

    /* A damaged trailer CRC is found at the end of the stream. */
    write_file(pi, bi, li, 1);
    gz = read_all(pi, &glen);
    gz[glen - 6] ^= 0x01;
    write_file(pi, gz, glen, 0);
    EXPECT_ERR(qg__dataset_load_idx(pi, pl, &ds), QG_ERR_FORMAT, pi, "incorrect data check");
    corrupt_offsets(qg_last_error(), &comp, &dec);
    cr_expect(comp >= glen - 8 && comp <= glen, "%s", qg_last_error());
    cr_expect_eq(dec, li, "%s", qg_last_error());
    free(gz);
    free(bi);
    free(bl);
}

/* Issue 23.10: a directory given as a data file said "read error". */
Test(data, directory_as_data_file)
{
    char pi[4096], pl[4096], d[4096], want[4096];
    write_idx_pair(path_in(pi, "img"), path_in(pl, "lab"), 3, 2, 2, 0);
    cr_assert_eq(mkdir(path_in(d, "adir"), 0700), 0);
    qg_dataset *ds = NULL;
    snprintf(want, sizeof want, "'%s' is a directory, not an IDX file", d);
    EXPECT_ERR(qg__dataset_load_idx(d, pl, &ds), QG_ERR_IO, want);
    EXPECT_ERR(qg__dataset_load_idx(pi, d, &ds), QG_ERR_IO, want);
    cr_assert_null(ds);

    const size_t counts[6] = {1, 1, 1, 1, 1, 1};
    write_cifar10(g_dir, counts);
    char p[4096];
    remove(path_in(p, "test_batch.bin"));
    cr_assert_eq(mkdir(p, 0700), 0);
    snprintf(want, sizeof want, "CIFAR-10 file '%s' is a directory, not a regular file", p);
    EXPECT_ERR(qg__dataset_load_cifar(g_dir, 0, 0, &ds), QG_ERR_IO, want);
}

/* A header announcing more than the file can hold is refused before the
 * dataset is allocated: raw by the file size, gzip by deflate's largest
 * expansion (about 1032:1). */
Test(data, idx_header_bounded_by_file_size)
{
    char pi[4096], pl[4096];
    size_t li, ll;
    unsigned char *bi = idx_images(0x803, 4, 28, 28, &li), *bl = idx_labels(0x801, 4, &ll);
    put_be32(bi + 4, 4000000); /* 3 GB of pixels */
    put_be32(bl + 4, 4000000);
    write_file(path_in(pi, "img.gz"), bi, li, 1);
    write_file(path_in(pl, "lab.gz"), bl, ll, 1);
    qg_dataset *ds = NULL;
    EXPECT_ERR(qg__dataset_load_idx(pi, pl, &ds), QG_ERR_FORMAT, pi,
               "announces 3136000000 bytes of image data, more than its");
    write_file(pi, bi, li, 0);
    write_file(pl, bl, ll, 0);
    EXPECT_ERR(qg__dataset_load_idx(pi, pl, &ds), QG_ERR_FORMAT, pi, "truncated",
               "expected 3136000000 bytes of image data");
    free(bi);
    free(bl);
}

/* The in-memory readers (fuzz targets' entry points) agree with the
 * file readers. */
Test(data, memory_readers_match_files)
{
    size_t li, ll;
    unsigned char *bi = idx_images(0x803, 5, 3, 4, &li), *bl = idx_labels(0x801, 5, &ll);
    qg_dataset *ds = NULL;
    cr_assert_eq(qg__dataset_load_idx_memory("img", bi, li, "lab", bl, ll, &ds), QG_OK, "%s",
                 qg_last_error());
    check_idx_dataset(ds, 5, 3, 4);
    qg__dataset_free(ds);
    /* gzip in memory, two members concatenated (as gzip's -c >> does). */
    char pi[4096];
    write_file(path_in(pi, "a.gz"), bi, 20, 1);
    size_t g1, g2;
    unsigned char *z1 = read_all(pi, &g1);
    write_file(pi, bi + 20, li - 20, 1);
    unsigned char *z2 = read_all(pi, &g2);
    unsigned char *z = malloc(g1 + g2 + 3);
    memcpy(z, z1, g1);
    memcpy(z + g1, z2, g2);
    cr_assert_eq(qg__dataset_load_idx_memory("img.gz", z, g1 + g2, "lab", bl, ll, &ds), QG_OK,
                 "%s", qg_last_error());
    check_idx_dataset(ds, 5, 3, 4);
    qg__dataset_free(ds);
    /* Bytes after the gzip stream that are not another member. */
    memcpy(z + g1 + g2, "abc", 3);
    EXPECT_ERR(qg__dataset_load_idx_memory("img.gz", z, g1 + g2 + 3, "lab", bl, ll, &ds),
               QG_ERR_FORMAT, "'img.gz'", "after the end of the gzip stream");
    EXPECT_ERR(qg__dataset_load_idx_memory("img", bi, li - 1, "lab", bl, ll, &ds),
               QG_ERR_FORMAT, "'img' truncated");
    free(z);
    free(z1);
    free(z2);
    free(bi);
    free(bl);

    size_t len;
    unsigned char *b = cifar_records(0, 3, 1, &len);
    cr_assert_eq(qg__dataset_load_cifar_memory("c", b, len, 1, &ds), QG_OK, "%s",
                 qg_last_error());
    check_cifar(ds, 0, 3, 1);
    qg__dataset_free(ds);
    EXPECT_ERR(qg__dataset_load_cifar_memory("c", b, len - 1, 1, &ds), QG_ERR_FORMAT,
               "'c' ends with a partial record");
    b[0] = 20;
    EXPECT_ERR(qg__dataset_load_cifar_memory("c", b, len, 1, &ds), QG_ERR_FORMAT,
               "coarse label 20 of record 0");
    free(b);
}
