/* tests/test_safetensors.c: src/model/safetensors.c.
 *
 * A small file is compared byte for byte with the format (length prefix,
 * compact JSON header padded with spaces to 8, tensor bytes in order);
 * every dtype and odd shapes round-trip; truncated files, bad header
 * lengths, bad JSON, bad offsets (outside, overlapping, holes, trailing
 * bytes) and unsupported dtypes are refused with the file named; a writer
 * killed with SIGKILL mid-save leaves the previous checkpoint intact.
 * tests/tools/check_safetensors_torch.py reads the same files from Python. */
#define _GNU_SOURCE
#include <dirent.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <jansson.h>

#include <criterion/criterion.h>

#include "qgate.h"
#include "model/safetensors.h"

static char g_dir[4096];

static void make_tmpdir(void)
{
    const char *base = getenv("TMPDIR");
    snprintf(g_dir, sizeof g_dir, "%s/qg_st.XXXXXX", base && *base ? base : "/tmp");
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

TestSuite(safetensors, .init = make_tmpdir, .fini = remove_tmpdir, .timeout = 60);

static const char *path_in(char *buf, const char *name)
{
    snprintf(buf, 4096, "%s/%s", g_dir, name);
    return buf;
}

static unsigned char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    rewind(f);
    unsigned char *b = malloc(*len + 1);
    cr_assert_eq(fread(b, 1, *len, f), *len);
    fclose(f);
    return b;
}

static void write_raw(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(data, 1, len, f), len);
    cr_assert_eq(fclose(f), 0);
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

/* One F32 [2] and one I32 [1] tensor plus two metadata strings, worked
 * out by hand from the format: the JSON is 162 bytes, padded with 6
 * spaces to 168 = 0xa8; the data area is 8 + 4 bytes, little-endian. */
Test(safetensors, exact_bytes)
{
    char p[4096];
    const float w[2] = {1.0f, -2.5f};
    const int32_t step[1] = {7};
    const qg_st_tensor ts[2] = {
        {.name = "w", .dtype = QG_DTYPE_F32, .ndim = 1, .shape = {2}, .data = w},
        {.name = "step", .dtype = QG_DTYPE_I32, .ndim = 1, .shape = {1}, .data = step},
    };
    const qg_st_meta meta[2] = {{"epoch", "3"}, {"format", "qgate-test"}};
    cr_assert_eq(qg__safetensors_write(path_in(p, "small.safetensors"), ts, 2, meta, 2),
                 QG_OK, "%s", qg_last_error());
    size_t len;
    unsigned char *b = read_all(p, &len);
    const char *json = "{\"__metadata__\":{\"epoch\":\"3\",\"format\":\"qgate-test\"},"
                       "\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                       "\"step\":{\"dtype\":\"I32\",\"shape\":[1],\"data_offsets\":[8,12]}}";
    cr_assert_eq(strlen(json), 162);
    cr_assert_eq(len, 8 + 168 + 12, "file is %zu bytes", len);
    const unsigned char prefix[8] = {0xa8, 0, 0, 0, 0, 0, 0, 0};
    cr_assert_arr_eq(b, prefix, 8, "length prefix");
    cr_assert_arr_eq(b + 8, json, 162, "header JSON: %.168s", (const char *)b + 8);
    for (int i = 162; i < 168; i++)
        cr_assert_eq(b[8 + i], ' ', "padding byte %d is 0x%02x", i, b[8 + i]);
    const unsigned char data[12] = {0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x20, 0xc0,
                                    0x07, 0x00, 0x00, 0x00};
    cr_assert_arr_eq(b + 176, data, 12, "tensor bytes");

    /* The header parses back as the spec describes it. */
    json_error_t jerr;
    json_t *root = json_loadb((const char *)b + 8, 168, 0, &jerr);
    cr_assert_not_null(root, "%s", jerr.text);
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(root, "__metadata__"),
                                                       "format")), "qgate-test");
    json_t *e = json_object_get(root, "step");
    cr_assert_str_eq(json_string_value(json_object_get(e, "dtype")), "I32");
    cr_assert_eq(json_integer_value(json_array_get(json_object_get(e, "shape"), 0)), 1);
    cr_assert_eq(json_integer_value(json_array_get(json_object_get(e, "data_offsets"), 0)), 8);
    cr_assert_eq(json_integer_value(json_array_get(json_object_get(e, "data_offsets"), 1)), 12);
    json_decref(root);
    free(b);

    qg_st_file *f = NULL;
    cr_assert_eq(qg__safetensors_read(p, &f), QG_OK, "%s", qg_last_error());
    cr_assert_eq(qg__safetensors_count(f), 2);
    cr_assert_str_eq(qg__safetensors_at(f, 0)->name, "w");
    cr_assert_str_eq(qg__safetensors_at(f, 1)->name, "step");
    cr_assert_null(qg__safetensors_at(f, 2));
    cr_assert_eq(((const int32_t *)qg__safetensors_get(f, "step")->data)[0], 7);
    cr_assert_str_eq(qg__safetensors_meta(f, "epoch"), "3");
    cr_assert_null(qg__safetensors_meta(f, "missing"));
    qg__safetensors_free(f);
}

static size_t nbytes(const qg_st_tensor *t)
{
    size_t n = qg_dtype_size(t->dtype);
    for (int d = 0; d < t->ndim; d++)
        n *= (size_t)t->shape[d];
    return n;
}

Test(safetensors, round_trip_all_dtypes)
{
    char p[4096];
    float a[2 * 3 * 5], s0 = 3.25f, d4[2 * 1 * 3 * 2];
    int32_t ids[7];
    uint8_t u8[3 * 1 * 2 * 2 + 1];
    uint16_t h[4] = {0x3c00, 0xc000, 0x7bff, 0x0001}; /* 1, -2, 65504, tiny */
    for (int i = 0; i < 30; i++)
        a[i] = (float)i * 0.37f - 4.0f;
    for (int i = 0; i < 12; i++)
        d4[i] = -(float)i / 7.0f;
    for (int i = 0; i < 7; i++)
        ids[i] = -1000000 * i + 3;
    for (int i = 0; i < 13; i++)
        u8[i] = (uint8_t)(250 + i);
    /* The odd-sized U8 tensor leaves what follows misaligned in the file. */
    const qg_st_tensor ts[] = {
        {.name = "conv.weight", .dtype = QG_DTYPE_F32, .ndim = 3, .shape = {2, 3, 5}, .data = a},
        {.name = "ids", .dtype = QG_DTYPE_I32, .ndim = 1, .shape = {7}, .data = ids},
        {.name = "bits", .dtype = QG_DTYPE_U8, .ndim = 4, .shape = {3, 1, 2, 2}, .data = u8},
        {.name = "odd", .dtype = QG_DTYPE_U8, .ndim = 1, .shape = {1}, .data = u8 + 12},
        {.name = "half", .dtype = QG_DTYPE_F16, .ndim = 1, .shape = {4}, .data = h},
        {.name = "scalar", .dtype = QG_DTYPE_F32, .ndim = 0, .data = &s0},
        {.name = "empty", .dtype = QG_DTYPE_F32, .ndim = 2, .shape = {0, 3}, .data = NULL},
        {.name = "layer1.0.bn.w\xc3\xa9ight", .dtype = QG_DTYPE_F32, .ndim = 4,
         .shape = {2, 1, 3, 2}, .data = d4},
    };
    size_t n = sizeof ts / sizeof *ts;
    const qg_st_meta meta[] = {{"arch", "resnet20"}, {"quote", "a \"b\" \\ c\n"}};
    cr_assert_eq(qg__safetensors_write(path_in(p, "rt.safetensors"), ts, n, meta, 2), QG_OK,
                 "%s", qg_last_error());
    qg_st_file *f = NULL;
    cr_assert_eq(qg__safetensors_read(p, &f), QG_OK, "%s", qg_last_error());
    cr_assert_eq(qg__safetensors_count(f), n);
    for (size_t i = 0; i < n; i++) {
        const qg_st_tensor *g = qg__safetensors_at(f, i);
        cr_assert_str_eq(g->name, ts[i].name);
        cr_assert_eq(qg__safetensors_get(f, ts[i].name), g);
        cr_assert_eq(g->dtype, ts[i].dtype, "%s", g->name);
        cr_assert_eq(g->ndim, ts[i].ndim, "%s", g->name);
        for (int d = 0; d < g->ndim; d++)
            cr_assert_eq(g->shape[d], ts[i].shape[d], "%s dim %d", g->name, d);
        if (nbytes(g))
            cr_assert_arr_eq(g->data, ts[i].data, nbytes(g), "%s data", g->name);
        cr_assert_eq((uintptr_t)g->data % qg_dtype_size(g->dtype), 0, "%s misaligned",
                     g->name);
    }
    cr_assert_null(qg__safetensors_get(f, "nope"));
    cr_assert_str_eq(qg__safetensors_meta(f, "quote"), "a \"b\" \\ c\n");
    qg__safetensors_free(f);

    /* No metadata at all: no "__metadata__" key is written. */
    cr_assert_eq(qg__safetensors_write(p, ts, 1, NULL, 0), QG_OK);
    size_t len;
    unsigned char *b = read_all(p, &len);
    cr_assert_null(memmem(b, len, "__metadata__", 12));
    cr_assert_eq((len - 120) % 8, 0, "data area starts at %zu", len - 120);
    free(b);
    cr_assert_eq(qg__safetensors_read(p, &f), QG_OK, "%s", qg_last_error());
    cr_assert_eq(qg__safetensors_count(f), 1);
    cr_assert_null(qg__safetensors_meta(f, "arch"));
    qg__safetensors_free(f);

    /* Overwriting replaces the file. */
    cr_assert_eq(qg__safetensors_write(p, ts + 1, 1, meta, 1), QG_OK);
    cr_assert_eq(qg__safetensors_read(p, &f), QG_OK, "%s", qg_last_error());
    cr_assert_eq(qg__safetensors_count(f), 1);
    cr_assert_str_eq(qg__safetensors_at(f, 0)->name, "ids");
    cr_assert_str_eq(qg__safetensors_meta(f, "arch"), "resnet20");
    qg__safetensors_free(f);
}

Test(safetensors, write_errors)
{
    char p[4096];
    float x[2] = {1, 2};
    qg_st_tensor ts[2] = {
        {.name = "a", .dtype = QG_DTYPE_F32, .ndim = 1, .shape = {2}, .data = x},
        {.name = "a", .dtype = QG_DTYPE_F32, .ndim = 1, .shape = {2}, .data = x},
    };
    path_in(p, "w.safetensors");
    EXPECT_ERR(qg__safetensors_write(p, ts, 2, NULL, 0), QG_ERR_INVALID_ARG, p, "'a'",
               "used twice");
    ts[1].name = "__metadata__";
    EXPECT_ERR(qg__safetensors_write(p, ts, 2, NULL, 0), QG_ERR_INVALID_ARG, "reserved");
    ts[1].name = "b";
    ts[1].shape[0] = -1;
    EXPECT_ERR(qg__safetensors_write(p, ts, 2, NULL, 0), QG_ERR_INVALID_ARG, "negative");
    ts[1].shape[0] = 2;
    const qg_st_meta dup[2] = {{"k", "1"}, {"k", "2"}};
    EXPECT_ERR(qg__safetensors_write(p, ts, 2, dup, 2), QG_ERR_INVALID_ARG, "'k'");
    struct stat sb;
    cr_assert_neq(stat(p, &sb), 0, "a refused write left a file behind");
    char missing[4096];
    snprintf(missing, sizeof missing, "%s/no/such/dir/x.safetensors", g_dir);
    EXPECT_ERR(qg__safetensors_write(missing, ts, 2, NULL, 0), QG_ERR_IO, missing);
}

/* Pads a hand-written header to 8 and appends dlen bytes of data. */
static void craft(const char *path, const char *json, size_t dlen)
{
    size_t jl = strlen(json), hl = (jl + 7) / 8 * 8;
    unsigned char *b = calloc(8 + hl + dlen + 1, 1);
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)((uint64_t)hl >> (8 * i));
    memcpy(b + 8, json, jl);
    memset(b + 8 + jl, ' ', hl - jl);
    for (size_t i = 0; i < dlen; i++)
        b[8 + hl + i] = (unsigned char)i;
    write_raw(path, b, 8 + hl + dlen);
    free(b);
}

static void expect_craft(const char *json, size_t dlen, qg_status want, const char *sub)
{
    char p[4096];
    craft(path_in(p, "bad.safetensors"), json, dlen);
    qg_st_file *f = (qg_st_file *)0x1;
    qg_status st = qg__safetensors_read(p, &f);
    cr_assert_eq(st, want, "%s: got %s (%s)", json, qg_status_str(st), qg_last_error());
    cr_assert_null(f);
    cr_assert_not_null(strstr(qg_last_error(), p), "error \"%s\" does not name the file",
                       qg_last_error());
    cr_assert_not_null(strstr(qg_last_error(), sub), "%s: error \"%s\" lacks \"%s\"", json,
                       qg_last_error(), sub);
}

Test(safetensors, rejects_bad_headers)
{
    /* Sanity: the crafting helper makes readable files. */
    char p[4096];
    craft(path_in(p, "ok.safetensors"),
          "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
          "\"b\":{\"dtype\":\"U8\",\"shape\":[],\"data_offsets\":[8,9]}}", 9);
    qg_st_file *f = NULL;
    cr_assert_eq(qg__safetensors_read(p, &f), QG_OK, "%s", qg_last_error());
    cr_assert_eq(qg__safetensors_count(f), 2);
    cr_assert_eq(((const uint8_t *)qg__safetensors_get(f, "b")->data)[0], 8);
    qg__safetensors_free(f);

    expect_craft("{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 8,
                 QG_ERR_FORMAT, "outside the 8-byte data area");
    expect_craft("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                 "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12,
                 QG_ERR_FORMAT, "overlap");
    expect_craft("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                 "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}", 12,
                 QG_ERR_FORMAT, "hole");
    expect_craft("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 8,
                 QG_ERR_FORMAT, "cover 4 bytes of the 8-byte data area");
    expect_craft("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8,
                 QG_ERR_FORMAT, "needs 12 bytes");
    expect_craft("{\"a\":{\"dtype\":\"F33\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8,
                 QG_ERR_FORMAT, "unknown dtype \"F33\"");
    expect_craft("{\"a\":{\"dtype\":\"BF16\",\"shape\":[4],\"data_offsets\":[0,8]}}", 8,
                 QG_ERR_UNSUPPORTED, "BF16");
    expect_craft("{\"a\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,8],\"data_offsets\":[0,8]}}", 8,
                 QG_ERR_UNSUPPORTED, "6 dimensions");
    expect_craft("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[-8,0]}}", 8,
                 QG_ERR_FORMAT, "data_offsets");
    expect_craft("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 8,
                 QG_ERR_FORMAT, "data_offsets");
    expect_craft("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]}}", 8,
                 QG_ERR_FORMAT, "data_offsets");
    expect_craft("{\"a\":{\"shape\":[2],\"data_offsets\":[0,8]}}", 8, QG_ERR_FORMAT,
                 "\"dtype\"");
    expect_craft("{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8,
                 QG_ERR_FORMAT, "shape[0]");
    expect_craft("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                 "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8,
                 QG_ERR_FORMAT, "duplicate");
    expect_craft("{\"__metadata__\":{\"epoch\":3}}", 0, QG_ERR_FORMAT, "'epoch'");
    expect_craft("{\"__metadata__\":[]}", 0, QG_ERR_FORMAT, "__metadata__");
    expect_craft("{\"a\":[1,2]}", 0, QG_ERR_FORMAT, "'a'");
    expect_craft("{\"a\":{\"dtype\":", 0, QG_ERR_FORMAT, "JSON");
    expect_craft("[1,2]", 0, QG_ERR_FORMAT, "'{'");
    expect_craft("{} x", 0, QG_ERR_FORMAT, "JSON");
    EXPECT_ERR(qg__safetensors_read(path_in(p, "absent.safetensors"), &f), QG_ERR_IO, p);
}

Test(safetensors, rejects_truncated_and_bad_length)
{
    char p[4096], q[4096];
    float x[6] = {1, 2, 3, 4, 5, 6};
    const qg_st_tensor ts[2] = {
        {.name = "x", .dtype = QG_DTYPE_F32, .ndim = 2, .shape = {2, 2}, .data = x},
        {.name = "y", .dtype = QG_DTYPE_F32, .ndim = 1, .shape = {2}, .data = x + 4},
    };
    const qg_st_meta meta[1] = {{"k", "v"}};
    cr_assert_eq(qg__safetensors_write(path_in(p, "good.safetensors"), ts, 2, meta, 1), QG_OK);
    size_t len;
    unsigned char *b = read_all(p, &len);
    size_t hlen = b[0] | (size_t)b[1] << 8;
    cr_assert_eq(len, 8 + hlen + 24);
    path_in(q, "cut.safetensors");
    const size_t cuts[] = {0, 5, 8, 9, 8 + hlen / 2, 8 + hlen - 1, 8 + hlen, 8 + hlen + 3,
                           8 + hlen + 16, len - 1};
    for (size_t k = 0; k < sizeof cuts / sizeof *cuts; k++) {
        write_raw(q, b, cuts[k]);
        qg_st_file *f = (qg_st_file *)0x1;
        EXPECT_ERR(qg__safetensors_read(q, &f), QG_ERR_FORMAT, q);
        cr_assert_null(f);
        if (cuts[k] < 8)
            cr_assert_not_null(strstr(qg_last_error(), "too short"), "%s", qg_last_error());
        else if (cuts[k] < 8 + hlen)
            cr_assert_not_null(strstr(qg_last_error(), "runs past the end"), "%s",
                               qg_last_error());
        else
            cr_assert_not_null(strstr(qg_last_error(), "outside"), "%s", qg_last_error());
    }
    /* Header lengths that cannot be right. */
    const uint64_t lens[] = {0, 1, len - 7, len, (uint64_t)1 << 40, UINT64_MAX};
    for (size_t k = 0; k < sizeof lens / sizeof *lens; k++) {
        unsigned char *c = malloc(len);
        memcpy(c, b, len);
        for (int i = 0; i < 8; i++)
            c[i] = (unsigned char)(lens[k] >> (8 * i));
        write_raw(q, c, len);
        qg_st_file *f = NULL;
        EXPECT_ERR(qg__safetensors_read(q, &f), QG_ERR_FORMAT, q, "header length");
        free(c);
    }
    /* A header length 8 too short cuts the JSON; 8 too long eats data. */
    for (int delta = -8; delta <= 8; delta += 16) {
        unsigned char *c = malloc(len);
        memcpy(c, b, len);
        c[0] = (unsigned char)(hlen + (size_t)delta);
        write_raw(q, c, len);
        qg_st_file *f = NULL;
        EXPECT_ERR(qg__safetensors_read(q, &f), QG_ERR_FORMAT, q);
        free(c);
    }
    /* A flipped data_offsets digit is caught. */
    char *at = memmem(b, len, "[16,24]", 7);
    cr_assert_not_null(at);
    at[4] = '3';
    write_raw(q, b, len);
    qg_st_file *f = NULL;
    EXPECT_ERR(qg__safetensors_read(q, &f), QG_ERR_FORMAT, q);
    free(b);
}

/* Files in g_dir other than `keep`: the temp files a killed writer left. */
static size_t leftovers(const char *keep, char *name, size_t cap, off_t *size)
{
    DIR *d = opendir(g_dir);
    cr_assert_not_null(d);
    struct dirent *e;
    size_t n = 0;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' || strcmp(e->d_name, keep) == 0)
            continue;
        n++;
        snprintf(name, cap, "%s/%s", g_dir, e->d_name);
        struct stat sb;
        *size = stat(name, &sb) == 0 ? sb.st_size : -1;
    }
    closedir(d);
    return n;
}

/* kill -9 during a save: the child writes a 256 MiB checkpoint over the
 * good one; the parent kills it once the temporary file has grown past a
 * threshold. The previous checkpoint must read back unchanged and the
 * partial data must not have replaced it. */
Test(safetensors, kill_during_save_keeps_previous_file, .timeout = 120)
{
    char p[4096], tmp[4096];
    const float good[4] = {1.5f, -2.0f, 3.25f, 1e-3f};
    const qg_st_tensor gt = {.name = "w", .dtype = QG_DTYPE_F32, .ndim = 1, .shape = {4},
                             .data = good};
    const qg_st_meta gm[1] = {{"epoch", "7"}};
    cr_assert_eq(qg__safetensors_write(path_in(p, "ckpt.safetensors"), &gt, 1, gm, 1), QG_OK);
    size_t glen;
    unsigned char *gbytes = read_all(p, &glen);

    const size_t big = (size_t)64 << 20; /* floats: 256 MiB */
    const off_t thresholds[] = {1, (off_t)32 << 20, (off_t)128 << 20};
    for (size_t k = 0; k < sizeof thresholds / sizeof *thresholds; k++) {
        fflush(NULL);
        pid_t pid = fork();
        cr_assert_neq(pid, -1);
        if (pid == 0) {
            float *x = calloc(big, sizeof *x);
            if (!x)
                _exit(3);
            for (size_t i = 0; i < big; i += 1024)
                x[i] = (float)i;
            const qg_st_tensor bt[2] = {
                {.name = "w", .dtype = QG_DTYPE_F32, .ndim = 1, .shape = {4}, .data = x},
                {.name = "big", .dtype = QG_DTYPE_F32, .ndim = 2,
                 .shape = {(int64_t)(big / 1024), 1024}, .data = x},
            };
            const qg_st_meta bm[1] = {{"epoch", "8"}};
            _exit(qg__safetensors_write(p, bt, 2, bm, 1) == QG_OK ? 0 : 2);
        }
        off_t sz = -1;
        for (;;) {
            if (leftovers("ckpt.safetensors", tmp, sizeof tmp, &sz) && sz >= thresholds[k])
                break;
            int status = 0;
            cr_assert_eq(waitpid(pid, &status, WNOHANG), 0,
                         "writer ended before it could be killed (status %d)", status);
        }
        cr_assert_eq(kill(pid, SIGKILL), 0);
        int status = 0;
        cr_assert_eq(waitpid(pid, &status, 0), pid);
        cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
                  "writer was not killed mid-save (status 0x%x)", status);

        /* The checkpoint is byte-identical and still loads. */
        size_t len;
        unsigned char *now = read_all(p, &len);
        cr_assert_eq(len, glen, "checkpoint changed size after kill at %lld bytes",
                     (long long)thresholds[k]);
        cr_assert_arr_eq(now, gbytes, glen);
        free(now);
        qg_st_file *f = NULL;
        cr_assert_eq(qg__safetensors_read(p, &f), QG_OK, "%s", qg_last_error());
        cr_assert_arr_eq(qg__safetensors_get(f, "w")->data, good, sizeof good);
        cr_assert_str_eq(qg__safetensors_meta(f, "epoch"), "7");
        cr_assert_null(qg__safetensors_get(f, "big"));
        qg__safetensors_free(f);

        /* What the child left is a partial temp file, not a checkpoint. */
        cr_assert_eq(leftovers("ckpt.safetensors", tmp, sizeof tmp, &sz), 1);
        cr_assert_lt(sz, (off_t)(big * sizeof(float)), "temp file %s is complete", tmp);
        cr_assert_neq(qg__safetensors_read(tmp, &f), QG_OK);
        cr_assert_eq(remove(tmp), 0);
    }
    free(gbytes);
}

/* Names of the files in g_dir that look like temp files of a save. */
static size_t temp_files(void)
{
    DIR *d = opendir(g_dir);
    cr_assert_not_null(d);
    struct dirent *e;
    size_t n = 0;
    while ((e = readdir(d)))
        if (strstr(e->d_name, ".tmp."))
            n++;
    closedir(d);
    return n;
}

/* Issue 23.1: the atomic rename used to replace whatever the path named
 * (as root, `--checkpoint /dev/full` turned the device node into a plain
 * file). A FIFO and a directory stand in for device nodes here. */
Test(safetensors, save_refuses_special_files)
{
    char fifo[4096], dir[4096];
    float x[2] = {1, 2};
    const qg_st_tensor t = {.name = "a", .dtype = QG_DTYPE_F32, .ndim = 1, .shape = {2},
                            .data = x};
    cr_assert_eq(mkfifo(path_in(fifo, "pipe"), 0600), 0);
    EXPECT_ERR(qg__safetensors_write(fifo, &t, 1, NULL, 0), QG_ERR_IO, fifo,
               "not a regular file", "FIFO");
    struct stat sb;
    cr_assert_eq(lstat(fifo, &sb), 0);
    cr_assert(S_ISFIFO(sb.st_mode), "the FIFO was replaced (mode 0%o)", sb.st_mode);
    cr_assert_eq(mkdir(path_in(dir, "d.safetensors"), 0700), 0);
    EXPECT_ERR(qg__safetensors_write(dir, &t, 1, NULL, 0), QG_ERR_IO, dir, "a directory");
    cr_assert_eq(lstat(dir, &sb), 0);
    cr_assert(S_ISDIR(sb.st_mode));
    cr_assert_eq(temp_files(), 0, "a refused save left a temp file behind");

    /* A symbolic link to a special file is refused the same way. */
    char link[4096];
    cr_assert_eq(symlink(fifo, path_in(link, "link.safetensors")), 0);
    EXPECT_ERR(qg__safetensors_write(link, &t, 1, NULL, 0), QG_ERR_IO, "FIFO");
    cr_assert_eq(lstat(link, &sb), 0);
    cr_assert(S_ISLNK(sb.st_mode));
    cr_assert_eq(temp_files(), 0);

    /* A stale temp file of this pid (a killed earlier run) is replaced. */
    char ok[4096], stale[4096];
    path_in(ok, "ok.safetensors");
    snprintf(stale, sizeof stale, "%s.tmp.%ld", ok, (long)getpid());
    write_raw(stale, "junk", 4);
    cr_assert_eq(qg__safetensors_write(ok, &t, 1, NULL, 0), QG_OK, "%s", qg_last_error());
    cr_assert_eq(temp_files(), 0);
    qg_st_file *f = NULL;
    cr_assert_eq(qg__safetensors_read(ok, &f), QG_OK, "%s", qg_last_error());
    qg__safetensors_free(f);
}

/* Issue 23.2: `qgate eval /dev/zero` read without end. Special files are
 * refused without reading (and a FIFO without waiting for a writer). */
Test(safetensors, read_refuses_special_files, .timeout = 10)
{
    qg_st_file *f = (qg_st_file *)0x1;
    EXPECT_ERR(qg__safetensors_read("/dev/zero", &f), QG_ERR_IO, "/dev/zero",
               "a character device, not a regular file");
    cr_assert_null(f);
    char fifo[4096], dir[4096];
    cr_assert_eq(mkfifo(path_in(fifo, "pipe"), 0600), 0);
    EXPECT_ERR(qg__safetensors_read(fifo, &f), QG_ERR_IO, fifo, "FIFO");
    cr_assert_eq(mkdir(path_in(dir, "d"), 0700), 0);
    EXPECT_ERR(qg__safetensors_read(dir, &f), QG_ERR_IO, dir, "a directory");
}

/* Issue 23.2: a regular file much larger than its header implies is
 * refused from the header, before the data is read into memory. */
Test(safetensors, read_checks_the_header_before_the_data)
{
    char p[4096];
    craft(path_in(p, "big.safetensors"),
          "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4);
    const off_t big = (off_t)256 << 20;
    cr_assert_eq(truncate(p, big), 0); /* sparse: costs no disk */
    struct rusage r0, r1;
    getrusage(RUSAGE_SELF, &r0);
    qg_st_file *f = NULL;
    EXPECT_ERR(qg__safetensors_read(p, &f), QG_ERR_FORMAT, p, "cover 4 bytes of the");
    getrusage(RUSAGE_SELF, &r1);
    long grew_kib = r1.ru_maxrss - r0.ru_maxrss;
    cr_assert_lt(grew_kib, 32 << 10, "reading a 256 MiB file with a 4-byte header grew the "
                 "peak RSS by %ld KiB", grew_kib);
}

/* Issue 23.10: a tensor whose data_offsets point into its neighbour's
 * bytes is the one named, not the neighbour the sorted scan meets first. */
Test(safetensors, misplaced_offsets_blame_the_right_tensor)
{
    /* Written back to back as x, y, z; x's offsets moved onto z's bytes. */
    expect_craft("{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[16,24]},"
                 "\"y\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]},"
                 "\"z\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[16,24]}}", 24,
                 QG_ERR_FORMAT, "tensor 'x' data_offsets [16, 24] overlap tensor 'z'");
    /* z moved back onto y: z is named. */
    expect_craft("{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                 "\"y\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]},"
                 "\"z\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", 24,
                 QG_ERR_FORMAT, "tensor 'z' data_offsets [8, 16] overlap");
    /* x moved past the end of its place into a hole of its own. */
    expect_craft("{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[20,24]},"
                 "\"y\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]},"
                 "\"z\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[12,20]}}", 24,
                 QG_ERR_FORMAT, "tensor 'x' data_offsets [20, 24] are out of place");
}

/* The in-memory parse gives what the file parse gives. */
Test(safetensors, read_memory_matches_file)
{
    char p[4096];
    float x[3] = {1, -2, 3.5f};
    const qg_st_tensor t = {.name = "w", .dtype = QG_DTYPE_F32, .ndim = 2, .shape = {1, 3},
                            .data = x};
    const qg_st_meta m = {"k", "v"};
    cr_assert_eq(qg__safetensors_write(path_in(p, "m.safetensors"), &t, 1, &m, 1), QG_OK);
    size_t len;
    unsigned char *b = read_all(p, &len);
    qg_st_file *f = NULL;
    cr_assert_eq(qg__safetensors_read_memory("buf", b, len, &f), QG_OK, "%s", qg_last_error());
    cr_assert_eq(qg__safetensors_count(f), 1);
    cr_assert_arr_eq(qg__safetensors_get(f, "w")->data, x, sizeof x);
    cr_assert_str_eq(qg__safetensors_meta(f, "k"), "v");
    qg__safetensors_free(f);
    EXPECT_ERR(qg__safetensors_read_memory("buf", b, len - 1, &f), QG_ERR_FORMAT, "'buf'",
               "outside");
    EXPECT_ERR(qg__safetensors_read_memory("buf", NULL, 0, &f), QG_ERR_FORMAT, "too short");
    free(b);
}
