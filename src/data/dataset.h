/* src/data/dataset.h: in-memory image datasets and the batch loader.
 *
 * In-memory datasets hold every image as uint8 [count][C][H][W] plus int
 * labels: IDX (MNIST / Fashion-MNIST, raw or gzip), CIFAR-10/100 binary.
 * On-demand datasets (JPEG class folders, src/data/folder.c) decode and
 * augment a sample only when the loader asks for it; see "On-demand"
 * below.
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
 * "mnist", "cifar10", "cifar100", "folder" (JPEG class folders, needs
 * dir); dir NULL = the default location. A missing default dataset names
 * the Debian package or flag providing it. */
qg_status qg__dataset_load(const char *name, const char *dir, int train, qg_dataset **out);

/* Options of the on-demand (folder) datasets; zero fields are defaults. */
typedef struct qg_data_opts {
    int input_size;          /* side of the square network input (0: 224) */
    int resize;              /* evaluation: shorter side before the centre
                                crop (0: round(input_size * 256 / 224)) */
    const char *normalize;   /* "imagenet" (NULL), "dataset" (measured on
                                the training images) or "none" (x/255) */
    int workers;             /* loader threads (0: 1); read by the loader's
                                caller, not by the dataset */
    double crop_scale;       /* training crops' smallest area share (0: 0.08) */
} qg_data_opts;
/* qg__dataset_load with options (o NULL: defaults). The in-memory
 * formats ignore o. */
qg_status qg__dataset_load_opts(const char *name, const char *dir, int train,
                                const qg_data_opts *o, qg_dataset **out);
/* dir/train/<class>/<file>.jpg (train) or dir/val/<class>/<file>.jpg;
 * see src/data/folder.c. */
qg_status qg__dataset_load_folder(const char *dir, int train, const qg_data_opts *o,
                                  qg_dataset **out);
void qg__dataset_free(qg_dataset *ds);

size_t qg__dataset_count(const qg_dataset *ds);
int qg__dataset_channels(const qg_dataset *ds);
int qg__dataset_height(const qg_dataset *ds);
int qg__dataset_width(const qg_dataset *ds);
int qg__dataset_classes(const qg_dataset *ds);
const uint8_t *qg__dataset_image(const qg_dataset *ds, size_t i);
int qg__dataset_label(const qg_dataset *ds, size_t i);
/* Keeps only n samples (tiny runs, tests): the first n of an in-memory
 * dataset; every (count/n)-th of an on-demand one, whose files are
 * listed class by class. */
void qg__dataset_truncate(qg_dataset *ds, size_t n);

/* ---- On-demand datasets ----
 * A source produces sample i as normalised float [C][H][W] into dst plus
 * its label. aug carries the sample's random stream (key, drawn by the
 * loader from seed, epoch and position) and the flip the loader chose;
 * the source decides what the key drives (folder.c: the random resized
 * crop of a training split). scratch is one per calling thread (NULL at
 * first; the source allocates it, scratch_free releases it). A sample
 * the source cannot read is replaced by a readable one (with that one's
 * label) and counted in bad_files; get fails only when memory runs out.
 * qg__dataset_image() must not be called on such a dataset. */
typedef struct qg_sample_aug {
    uint64_t key;
    int flip;
} qg_sample_aug;
typedef struct qg_dataset_source {
    qg_status (*get)(void *impl, size_t i, const qg_sample_aug *aug, float *dst, int *label,
                     void **scratch);
    void (*scratch_free)(void *scratch);
    size_t (*bad_files)(const void *impl);
    void (*free)(void *impl);
} qg_dataset_source;
/* Takes ownership of impl (freed through src->free, also on failure). */
qg_status qg__dataset_new_source(size_t count, int channels, int height, int width, int classes,
                                 const qg_dataset_source *src, void *impl, qg_dataset **out);
int qg__dataset_on_demand(const qg_dataset *ds);
qg_status qg__dataset_get(const qg_dataset *ds, size_t i, const qg_sample_aug *aug, float *dst,
                          int *label, void **scratch);
void qg__dataset_scratch_free(const qg_dataset *ds, void *scratch);
/* Files skipped as unreadable so far (0 for in-memory datasets). */
size_t qg__dataset_bad_files(const qg_dataset *ds);

/* Writes the first `limit` (0: all) images of an in-memory dataset as
 * dir/split/<class>/NNNNN.jpg (NNNNN = index in the dataset), resized
 * bilinearly to size x size, gray or RGB as the data is. Class folders
 * are the zero-padded label, followed by "_name" when class_names is
 * given, so sorting them by name keeps the label order. (export.c) */
qg_status qg__dataset_export_jpeg(const qg_dataset *ds, const char *dir, const char *split,
                                  const char *const *class_names, int size, int quality,
                                  size_t limit, size_t *written);

/* A zero-filled dataset for format readers and tests to fill in through
 * the two accessors below (pixels [count][C][H][W], labels [count]). */
qg_status qg__dataset_new(size_t count, int channels, int height, int width, int classes,
                          qg_dataset **out);
uint8_t *qg__dataset_pixels(qg_dataset *ds);
int *qg__dataset_labels(qg_dataset *ds);

/* Loader: seeded shuffle per epoch, random crop with zero padding +
 * horizontal flip (train), per-channel normalisation (x/255 - mean)/std,
 * batches as float NCHW + int32 labels, prepared by a pool of background
 * threads while the caller uses the previous batch. At most `prefetch`
 * batches exist at once, so memory stays flat. On-demand datasets
 * normalise and crop themselves: crop_pad, mean and std are then unused
 * and flip is passed to the source. */
typedef struct qg_loader_opts {
    int batch;            /* images per batch */
    int shuffle;          /* reshuffle every epoch */
    int crop_pad;         /* random crop after zero padding by this many px; 0 = off */
    int flip;             /* random horizontal flip */
    int drop_last;        /* drop a final partial batch */
    uint64_t seed;
    float mean[4], std[4];  /* per channel */
    int workers;          /* threads preparing samples (0: 1) */
    int prefetch;         /* batch buffers, >= 2 (0: 2) */
    /* Data-parallel share (src/dist): with shard_count > 1 this loader
     * yields epoch positions shard_rank, shard_rank + shard_count, ...
     * (PyTorch's DistributedSampler order; same seed everywhere). With
     * drop_last every shard gets count / (batch * shard_count) full
     * batches, so the shards' b-th batches together are the b-th batch of
     * batch * shard_count of one loader (same samples and augmentation);
     * without it each shard gets all its positions, the last batch short,
     * and shards may differ by one batch. 0 or 1: the whole epoch. */
    int shard_rank, shard_count;
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
/* The random stream key an on-demand source gets for that sample. */
uint64_t qg__loader_sample_key(const qg_loader_opts *o, int epoch, size_t pos);

#endif
