/* src/data/dataset.c: the in-memory dataset, its accessors, and loading a
 * dataset by name with its default location and install hint. Format
 * readers: idx.c and cifar.c; batching: loader.c; tests: tests/test_data.c. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/error.h"
#include "data/dataset.h"

struct qg_dataset {
    size_t count;
    int c, h, w, classes;
    uint8_t *pixels;   /* [count][c][h][w]; NULL for on-demand datasets */
    int *labels;       /* [count] */
    const qg_dataset_source *src;   /* on-demand datasets only */
    void *impl;
    size_t step;       /* on-demand: sample i is the source's i*step */
};

#define FASHION_DIR "/usr/share/datasets/fashion-mnist"

qg_status qg__dataset_new(size_t count, int channels, int height, int width, int classes,
                          qg_dataset **out)
{
    *out = NULL;
    if (channels <= 0 || height <= 0 || width <= 0 || classes <= 0)
        return qg__error(NULL, QG_ERR_INVALID_ARG, "dataset of %dx%dx%d images with %d "
                         "classes: every dimension must be positive", channels, height, width,
                         classes);
    size_t per = (size_t)channels * (size_t)height * (size_t)width;
    if (count && per > SIZE_MAX / count)
        return qg__error(NULL, QG_ERR_NOMEM, "dataset of %zu images of %zu bytes is too large",
                         count, per);
    qg_dataset *ds = calloc(1, sizeof *ds);
    if (!ds)
        return qg__error(NULL, QG_ERR_NOMEM, "out of memory for a dataset");
    ds->pixels = calloc(count ? count * per : 1, 1);
    ds->labels = calloc(count ? count : 1, sizeof *ds->labels);
    if (!ds->pixels || !ds->labels) {
        qg__dataset_free(ds);
        return qg__error(NULL, QG_ERR_NOMEM, "out of memory for %zu images of %zu bytes", count,
                         per);
    }
    ds->count = count;
    ds->c = channels;
    ds->h = height;
    ds->w = width;
    ds->classes = classes;
    *out = ds;
    return QG_OK;
}

qg_status qg__dataset_new_source(size_t count, int channels, int height, int width, int classes,
                                 const qg_dataset_source *src, void *impl, qg_dataset **out)
{
    *out = NULL;
    qg_dataset *ds = NULL;
    if (channels <= 0 || height <= 0 || width <= 0 || classes <= 0 || !src || !src->get) {
        src->free(impl);
        return qg__error(NULL, QG_ERR_INVALID_ARG, "on-demand dataset of %dx%dx%d images with "
                         "%d classes: every dimension must be positive", channels, height,
                         width, classes);
    }
    ds = calloc(1, sizeof *ds);
    if (!ds) {
        src->free(impl);
        return qg__error(NULL, QG_ERR_NOMEM, "out of memory for a dataset");
    }
    ds->count = count;
    ds->c = channels;
    ds->h = height;
    ds->w = width;
    ds->classes = classes;
    ds->src = src;
    ds->impl = impl;
    ds->step = 1;
    *out = ds;
    return QG_OK;
}

int qg__dataset_on_demand(const qg_dataset *ds) { return ds->src != NULL; }

qg_status qg__dataset_get(const qg_dataset *ds, size_t i, const qg_sample_aug *aug, float *dst,
                          int *label, void **scratch)
{
    QG_ASSERT(ds->src && i < ds->count);
    return ds->src->get(ds->impl, i * ds->step, aug, dst, label, scratch);
}

void qg__dataset_scratch_free(const qg_dataset *ds, void *scratch)
{
    if (ds->src && ds->src->scratch_free && scratch)
        ds->src->scratch_free(scratch);
}

size_t qg__dataset_bad_files(const qg_dataset *ds)
{
    return ds->src && ds->src->bad_files ? ds->src->bad_files(ds->impl) : 0;
}

void qg__dataset_free(qg_dataset *ds)
{
    if (!ds)
        return;
    if (ds->src)
        ds->src->free(ds->impl);
    free(ds->pixels);
    free(ds->labels);
    free(ds);
}

size_t qg__dataset_count(const qg_dataset *ds) { return ds->count; }
int qg__dataset_channels(const qg_dataset *ds) { return ds->c; }
int qg__dataset_height(const qg_dataset *ds) { return ds->h; }
int qg__dataset_width(const qg_dataset *ds) { return ds->w; }
int qg__dataset_classes(const qg_dataset *ds) { return ds->classes; }
uint8_t *qg__dataset_pixels(qg_dataset *ds) { return ds->pixels; }
int *qg__dataset_labels(qg_dataset *ds) { return ds->labels; }

const uint8_t *qg__dataset_image(const qg_dataset *ds, size_t i)
{
    QG_ASSERT(i < ds->count && ds->pixels);
    return ds->pixels + i * (size_t)ds->c * (size_t)ds->h * (size_t)ds->w;
}

int qg__dataset_label(const qg_dataset *ds, size_t i)
{
    QG_ASSERT(i < ds->count && ds->labels);
    return ds->labels[i];
}

void qg__dataset_truncate(qg_dataset *ds, size_t n)
{
    if (n && n < ds->count) {
        /* Folders list their files class by class: spread the subset over
         * the whole listing so that every class keeps samples. */
        if (ds->src)
            ds->step *= ds->count / n;
        ds->count = n;
    }
}

static int exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0;
}

/* IDX files ship gzipped; users who unpacked them keep the raw name. */
static void idx_path(char *buf, size_t cap, const char *dir, const char *base)
{
    snprintf(buf, cap, "%s/%s.gz", dir, base);
    if (!exists(buf)) {
        snprintf(buf, cap, "%s/%s", dir, base);
        if (!exists(buf))
            snprintf(buf, cap, "%s/%s.gz", dir, base);
    }
}

static qg_status load_idx_dir(const char *what, const char *dir, int is_default, int train,
                              qg_dataset **out)
{
    char img[4096], lab[4096];
    const char *split = train ? "train" : "t10k";
    char base[64];
    snprintf(base, sizeof base, "%s-images-idx3-ubyte", split);
    idx_path(img, sizeof img, dir, base);
    snprintf(base, sizeof base, "%s-labels-idx1-ubyte", split);
    idx_path(lab, sizeof lab, dir, base);
    const char *missing = !exists(img) ? img : !exists(lab) ? lab : NULL;
    if (missing) {
        if (is_default)
            return qg__error(NULL, QG_ERR_IO, "%s not found: '%s' does not exist; install it "
                             "with: apt-get install dataset-fashion-mnist, or pass --data-dir",
                             what, missing);
        return qg__error(NULL, QG_ERR_IO, "%s not found: '%s' does not exist (the directory "
                         "must hold %s-{images-idx3,labels-idx1}-ubyte[.gz]); pass --data-dir "
                         "DIR", what, missing, split);
    }
    return qg__dataset_load_idx(img, lab, out);
}

/* The CIFAR archives unpack into a subdirectory; accept the parent too. */
static const char *cifar_dir(char *buf, size_t cap, const char *dir, int cifar100)
{
    char probe[4096];
    snprintf(probe, sizeof probe, "%s/%s", dir, cifar100 ? "test.bin" : "test_batch.bin");
    if (exists(probe))
        return dir;
    snprintf(buf, cap, "%s/%s", dir, cifar100 ? "cifar-100-binary" : "cifar-10-batches-bin");
    return exists(buf) ? buf : dir;
}

qg_status qg__dataset_load(const char *name, const char *dir, int train, qg_dataset **out)
{
    return qg__dataset_load_opts(name, dir, train, NULL, out);
}

qg_status qg__dataset_load_opts(const char *name, const char *dir, int train,
                                const qg_data_opts *o, qg_dataset **out)
{
    *out = NULL;
    if (name && strcmp(name, "folder") == 0) {
        if (!dir)
            return qg__error(NULL, QG_ERR_INVALID_ARG, "--data folder needs --data-dir DIR "
                             "holding DIR/train/<class>/<file>.jpg and "
                             "DIR/val/<class>/<file>.jpg");
        qg_data_opts def = {0};
        return qg__dataset_load_folder(dir, train, o ? o : &def, out);
    }
    if (!name || strcmp(name, "fashion-mnist") == 0)
        return load_idx_dir("Fashion-MNIST", dir ? dir : FASHION_DIR, dir == NULL, train, out);
    if (strcmp(name, "mnist") == 0) {
        if (!dir)
            return qg__error(NULL, QG_ERR_INVALID_ARG, "MNIST has no default location on this "
                             "system: pass --data-dir DIR with train/t10k-{images-idx3,"
                             "labels-idx1}-ubyte[.gz]");
        return load_idx_dir("MNIST", dir, 0, train, out);
    }
    int c100 = strcmp(name, "cifar100") == 0;
    if (c100 || strcmp(name, "cifar10") == 0) {
        if (!dir)
            return qg__error(NULL, QG_ERR_INVALID_ARG, "%s has no default location on this "
                             "system: pass --data-dir DIR holding the binary version (%s)",
                             name, c100 ? "train.bin, test.bin"
                                        : "data_batch_1..5.bin, test_batch.bin");
        char sub[4096];
        return qg__dataset_load_cifar(cifar_dir(sub, sizeof sub, dir, c100), c100, train, out);
    }
    return qg__error(NULL, QG_ERR_INVALID_ARG, "unknown dataset '%s' (known: fashion-mnist, "
                     "mnist, cifar10, cifar100, folder)", name);
}
