/* src/data/dataset.h: in-memory image datasets and the batch loader.
 *
 * Datasets hold every image as uint8 [count][C][H][W] plus int labels.
 * Formats: IDX (MNIST / Fashion-MNIST, raw or gzip), CIFAR-10/100 binary.
 * Bad input (missing, truncated, corrupted file) gives QG_ERR_IO or
 * QG_ERR_FORMAT with a message naming the file and byte offset, never a
 * crash. Errors go to qg_last_error(). */
#ifndef QG_DATA_DATASET_H
#define QG_DATA_DATASET_H

#include <stddef.h>
#include <stdint.h>
#include "qgate/status.h"

typedef struct qg_dataset qg_dataset;

/* images/labels: IDX files (".gz" or raw, detected by the gzip magic). */
qg_status qg__dataset_load_idx(const char *images_path, const char *labels_path,
                               qg_dataset **out);
/* The same from bytes in memory (the names stand for the files in
 * messages); for fuzzing and callers that hold the bytes. */
qg_status qg__dataset_load_idx_memory(const char *images_name, const void *images,
                                      size_t images_len, const char *labels_name,
                                      const void *labels, size_t labels_len, qg_dataset **out);
/* dir holds data_batch_1..5.bin + test_batch.bin (CIFAR-10) or train.bin
 * + test.bin (CIFAR-100, fine labels). */
qg_status qg__dataset_load_cifar(const char *dir, int cifar100, int train, qg_dataset **out);
/* The records of one CIFAR file held in memory (`name` stands for it in
 * messages); for fuzzing and callers that hold the bytes. */
qg_status qg__dataset_load_cifar_memory(const char *name, const void *data, size_t len,
                                        int cifar100, qg_dataset **out);
/* name: "fashion-mnist" (default dir /usr/share/datasets/fashion-mnist),
 * "mnist", "cifar10", "cifar100"; dir NULL = the default location. A
 * missing default dataset names the Debian package or flag providing it. */
qg_status qg__dataset_load(const char *name, const char *dir, int train, qg_dataset **out);
void qg__dataset_free(qg_dataset *ds);

size_t qg__dataset_count(const qg_dataset *ds);
int qg__dataset_channels(const qg_dataset *ds);
int qg__dataset_height(const qg_dataset *ds);
int qg__dataset_width(const qg_dataset *ds);
int qg__dataset_classes(const qg_dataset *ds);
const uint8_t *qg__dataset_image(const qg_dataset *ds, size_t i);
int qg__dataset_label(const qg_dataset *ds, size_t i);
/* Keeps only the first n samples (tiny runs, tests). */
void qg__dataset_truncate(qg_dataset *ds, size_t n);

/* A zero-filled dataset for format readers and tests to fill in through
 * the two accessors below (pixels [count][C][H][W], labels [count]). */
qg_status qg__dataset_new(size_t count, int channels, int height, int width, int classes,
                          qg_dataset **out);
uint8_t *qg__dataset_pixels(qg_dataset *ds);
int *qg__dataset_labels(qg_dataset *ds);

/* Loader: seeded shuffle per epoch, random crop with zero padding +
 * horizontal flip (train), per-channel normalisation (x/255 - mean)/std,
 * batches as float NCHW + int32 labels, prepared by a background thread
 * while the caller uses the previous batch (double buffering). */
typedef struct qg_loader_opts {
    int batch;            /* images per batch */
    int shuffle;          /* reshuffle every epoch */
    int crop_pad;         /* random crop after zero padding by this many px; 0 = off */
    int flip;             /* random horizontal flip */
    int drop_last;        /* drop a final partial batch */
    uint64_t seed;
    float mean[4], std[4];  /* per channel */
} qg_loader_opts;

typedef struct qg_loader qg_loader;
qg_status qg__loader_new(const qg_dataset *ds, const qg_loader_opts *o, qg_loader **out);
void qg__loader_free(qg_loader *ld);
/* Starts an epoch (its shuffle depends only on seed and epoch). */
qg_status qg__loader_start_epoch(qg_loader *ld, int epoch);
/* Next batch of the epoch: returns 1 and sets pointers (valid until the
 * next call) or 0 at the end of the epoch. */
int qg__loader_next(qg_loader *ld, const float **images, const int32_t **labels, int *n);
size_t qg__loader_batches_per_epoch(const qg_loader *ld);
/* The augmentation the loader applies to the sample at position pos of
 * epoch's order: crop offsets *ox, *oy in [0, 2*crop_pad] into the padded
 * image, then *flip (mirror columns). Exposed so tests can predict it. */
void qg__loader_augment_params(const qg_loader_opts *o, int epoch, size_t pos, int *ox,
                               int *oy, int *flip);

#endif
