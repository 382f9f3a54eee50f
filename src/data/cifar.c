/* src/data/cifar.c: CIFAR-10 / CIFAR-100 "binary version" files.
 *
 * A record is the label byte(s) then 3072 pixel bytes: the 32x32 red
 * plane, green plane, blue plane, rows top to bottom, which is already our
 * [C][H][W] layout. CIFAR-10: 1 label byte (0..9), data_batch_1..5.bin +
 * test_batch.bin. CIFAR-100: coarse (0..19) and fine (0..99) label bytes,
 * train.bin + test.bin; we keep the fine label. Only regular files are
 * read (the record count comes from the size). Twins: dataset.c,
 * tests/test_data.c, tests/fuzz/fuzz_cifar.c. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/error.h"
#include "core/fileio.h"
#include "data/dataset.h"

#define CIFAR_PIXELS 3072
#define CHUNK_RECORDS 512

typedef struct cifar_fmt {
    const char *name;
    int label_bytes, classes;
} cifar_fmt;

static const cifar_fmt fmt10 = {"CIFAR-10", 1, 10};
static const cifar_fmt fmt100 = {"CIFAR-100", 2, 100};

/* The record count of `size` bytes, refusing a size that is not a whole
 * number of records. */
static qg_status count_of_size(const char *path, const cifar_fmt *fm, size_t size, size_t *n)
{
    size_t rec = (size_t)fm->label_bytes + CIFAR_PIXELS;
    if (size % rec)
        return qg__error(NULL, QG_ERR_FORMAT, "file '%s' ends with a partial record at byte "
                         "offset %zu: its size %zu is not a multiple of the %zu-byte %s record "
                         "(%d label byte%s + 3072 pixel bytes)", path, size / rec * rec, size,
                         rec, fm->name, fm->label_bytes, fm->label_bytes > 1 ? "s" : "");
    if (size == 0)
        return qg__error(NULL, QG_ERR_FORMAT, "file '%s' holds no %s records", path, fm->name);
    *n = size / rec;
    return QG_OK;
}

/* Counts the records of one file (a regular file: the count comes from
 * its size). */
static qg_status count_records(const char *path, const cifar_fmt *fm, size_t *n)
{
    struct stat sb;
    if (stat(path, &sb) != 0)
        return qg__error(NULL, QG_ERR_IO, "cannot open %s file '%s': %s (the directory must "
                         "hold the binary version: %s)", fm->name, path, strerror(errno),
                         fm->label_bytes == 2 ? "train.bin, test.bin"
                                              : "data_batch_1..5.bin, test_batch.bin");
    if (!S_ISREG(sb.st_mode))
        return qg__error(NULL, QG_ERR_IO, "%s file '%s' is %s, not a regular file", fm->name,
                         path, qg__file_kind(sb.st_mode));
    return count_of_size(path, fm, (size_t)sb.st_size, n);
}

/* Checks the labels of k records at p (record `first` onwards) and copies
 * them out. */
static qg_status take_records(const char *path, const cifar_fmt *fm, const unsigned char *p,
                              size_t first, size_t k, uint8_t *pixels, int *labels)
{
    size_t rec = (size_t)fm->label_bytes + CIFAR_PIXELS;
    for (size_t r = 0; r < k; r++, p += rec) {
        size_t i = first + r, off = i * rec;
        if (fm->label_bytes == 2 && p[0] >= 20)
            return qg__error(NULL, QG_ERR_FORMAT, "file '%s': coarse label %u of record %zu "
                             "(byte offset %zu) is out of range 0..19", path, p[0], i, off);
        int label = p[fm->label_bytes - 1];
        if (label >= fm->classes)
            return qg__error(NULL, QG_ERR_FORMAT, "file '%s': %s label %d of record %zu "
                             "(byte offset %zu) is out of range 0..%d", path,
                             fm->label_bytes == 2 ? "fine" : "the", label, i,
                             off + (size_t)fm->label_bytes - 1, fm->classes - 1);
        labels[i] = label;
        memcpy(pixels + i * CIFAR_PIXELS, p + fm->label_bytes, CIFAR_PIXELS);
    }
    return QG_OK;
}

static qg_status read_records(const char *path, const cifar_fmt *fm, size_t n,
                              uint8_t *pixels, int *labels, unsigned char *buf)
{
    size_t rec = (size_t)fm->label_bytes + CIFAR_PIXELS;
    FILE *f = fopen(path, "rb");
    if (!f)
        return qg__error(NULL, QG_ERR_IO, "cannot open %s file '%s': %s", fm->name, path,
                         strerror(errno));
    qg_status st = QG_OK;
    for (size_t done = 0; done < n && st == QG_OK;) {
        size_t k = n - done < CHUNK_RECORDS ? n - done : CHUNK_RECORDS;
        size_t got = fread(buf, 1, k * rec, f);
        if (got < k * rec) {
            st = qg__error(NULL, ferror(f) ? QG_ERR_IO : QG_ERR_FORMAT, "file '%s' %s at byte "
                           "offset %zu while reading record %zu", path,
                           ferror(f) ? "read error" : "truncated (it shrank while being read)",
                           done * rec + got, done + got / rec);
            break;
        }
        st = take_records(path, fm, buf, done, k, pixels, labels);
        done += k;
    }
    fclose(f);
    return st;
}

qg_status qg__dataset_load_cifar_memory(const char *name, const void *data, size_t len,
                                        int cifar100, qg_dataset **out)
{
    const cifar_fmt *fm = cifar100 ? &fmt100 : &fmt10;
    qg_status st = QG_OK;
    qg_dataset *ds = NULL;
    size_t n;
    *out = NULL;
    QG_TRY(count_of_size(name, fm, len, &n));
    QG_TRY(qg__dataset_new(n, 3, 32, 32, fm->classes, &ds));
    QG_TRY(take_records(name, fm, data, 0, n, qg__dataset_pixels(ds), qg__dataset_labels(ds)));
    *out = ds;
    ds = NULL;
fail:
    qg__dataset_free(ds);
    return st;
}

qg_status qg__dataset_load_cifar(const char *dir, int cifar100, int train, qg_dataset **out)
{
    static const char *const c10_train[] = {"data_batch_1.bin", "data_batch_2.bin",
                                            "data_batch_3.bin", "data_batch_4.bin",
                                            "data_batch_5.bin"};
    static const char *const c10_test[] = {"test_batch.bin"};
    static const char *const c100_train[] = {"train.bin"};
    static const char *const c100_test[] = {"test.bin"};
    const cifar_fmt *fm = cifar100 ? &fmt100 : &fmt10;
    const char *const *files = cifar100 ? (train ? c100_train : c100_test)
                                        : (train ? c10_train : c10_test);
    int nfiles = !cifar100 && train ? 5 : 1;
    char paths[5][4096];
    size_t counts[5], total = 0;
    qg_status st = QG_OK;
    qg_dataset *ds = NULL;
    unsigned char *buf = NULL;
    *out = NULL;

    for (int i = 0; i < nfiles; i++) {
        snprintf(paths[i], sizeof paths[i], "%s/%s", dir, files[i]);
        QG_TRY(count_records(paths[i], fm, &counts[i]));
        total += counts[i];
    }
    QG_TRY(qg__dataset_new(total, 3, 32, 32, fm->classes, &ds));
    buf = malloc((size_t)CHUNK_RECORDS * ((size_t)fm->label_bytes + CIFAR_PIXELS));
    if (!buf) {
        st = qg__error(NULL, QG_ERR_NOMEM, "out of memory reading %s", fm->name);
        goto fail;
    }
    size_t at = 0;
    for (int i = 0; i < nfiles; i++) {
        QG_TRY(read_records(paths[i], fm, counts[i], qg__dataset_pixels(ds) + at * CIFAR_PIXELS,
                            qg__dataset_labels(ds) + at, buf));
        at += counts[i];
    }
    *out = ds;
    ds = NULL;
fail:
    free(buf);
    qg__dataset_free(ds);
    return st;
}
