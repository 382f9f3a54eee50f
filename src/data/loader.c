/* src/data/loader.c: epoch order, augmentation and batching on a
 * background thread (double buffered). Twins: dataset.c (the samples),
 * tests/test_data.c.
 *
 * Determinism: the epoch's order is a Fisher-Yates shuffle driven by a
 * splitmix64 stream keyed by (seed, epoch); the crop offsets and flip of
 * the sample at position p come from a stream keyed by (seed, epoch, p).
 * So a run's batches do not depend on thread timing, and a resumed run
 * replays the same epoch exactly.
 *
 * Threading: two batch buffers move FREE -> FILLING (worker, lock not
 * held while filling) -> READY -> HELD (caller, until its next call) ->
 * FREE. The worker fills batches in order, so while the caller holds
 * batch i the worker prepares i+1. start_epoch waits for a fill in
 * progress to finish before it rewrites the order, and free stops the
 * worker at its next wait; neither leaves the thread inside a fill. */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/rng.h"
#include "data/dataset.h"

enum { BUF_FREE, BUF_FILLING, BUF_READY, BUF_HELD };

typedef struct batch_buf {
    float *images;
    int32_t *labels;
    int n;
    size_t index;   /* batch number within the epoch */
    int state;
} batch_buf;

struct qg_loader {
    const qg_dataset *ds;
    qg_loader_opts o;
    size_t count, nbatches, sample_floats;
    int c, h, w;
    float lut[4][256];     /* normalised value of each byte, per channel */
    size_t *order;
    int epoch, started, stop;
    int restarting;           /* start_epoch waits: take no new fill */
    size_t next_fill, next_take;
    batch_buf buf[2];
    pthread_mutex_t mu;
    pthread_cond_t work_cv;   /* worker waits for a free buffer / new epoch / stop */
    pthread_cond_t ready_cv;  /* caller waits for a filled buffer or the end of a fill */
    pthread_t thread;
    int thread_started, sync_ok;
};

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t epoch_key(uint64_t seed, int epoch)
{
    return mix64(mix64(seed ^ 0x6a09e667f3bcc908ULL) + (uint64_t)(uint32_t)epoch *
                 0x9e3779b97f4a7c15ULL);
}

/* Uniform in [0, n) without modulo bias. */
static uint64_t below(qg_rng *r, uint64_t n)
{
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do
        x = qg__rng_u64(r);
    while (x >= limit);
    return x % n;
}

void qg__loader_augment_params(const qg_loader_opts *o, int epoch, size_t pos, int *ox,
                               int *oy, int *flip)
{
    qg_rng r = {mix64(epoch_key(o->seed, epoch) ^ mix64((uint64_t)pos + 0x3c6ef372fe94f82bULL))};
    /* Always draw all three so turning crop on or off keeps the flips. */
    uint64_t span = 2 * (uint64_t)(o->crop_pad > 0 ? o->crop_pad : 0) + 1;
    *ox = (int)below(&r, span);
    *oy = (int)below(&r, span);
    *flip = o->flip ? (int)(qg__rng_u64(&r) >> 63) : 0;
}

static void shuffle(qg_loader *ld)
{
    for (size_t i = 0; i < ld->count; i++)
        ld->order[i] = i;
    if (!ld->o.shuffle)
        return;
    qg_rng r = {epoch_key(ld->o.seed, ld->epoch)};
    for (size_t i = ld->count; i > 1; i--) {
        size_t j = (size_t)below(&r, i);
        size_t t = ld->order[i - 1];
        ld->order[i - 1] = ld->order[j];
        ld->order[j] = t;
    }
}

/* Output pixel (y, x) is padded-image pixel (y + oy, xc + ox), where the
 * padded image has `pad` zero bytes on every side and xc mirrors x when
 * flipped. */
static void augment(const qg_loader *ld, const uint8_t *src, int pad, int ox, int oy, int flip,
                    float *dst)
{
    int h = ld->h, w = ld->w;
    for (int c = 0; c < ld->c; c++) {
        const float *lut = ld->lut[c];
        const uint8_t *s = src + (size_t)c * h * w;
        float *d = dst + (size_t)c * h * w;
        for (int y = 0; y < h; y++) {
            int sy = y + oy - pad;
            if (sy < 0 || sy >= h) {
                for (int x = 0; x < w; x++)
                    d[y * w + x] = lut[0];
                continue;
            }
            for (int x = 0; x < w; x++) {
                int sx = (flip ? w - 1 - x : x) + ox - pad;
                d[y * w + x] = sx >= 0 && sx < w ? lut[s[sy * w + sx]] : lut[0];
            }
        }
    }
}

static void fill(qg_loader *ld, batch_buf *b)
{
    size_t first = b->index * (size_t)ld->o.batch;
    size_t n = ld->count - first < (size_t)ld->o.batch ? ld->count - first
                                                         : (size_t)ld->o.batch;
    for (size_t j = 0; j < n; j++) {
        size_t pos = first + j, idx = ld->order[pos];
        int ox = 0, oy = 0, flip = 0, pad = 0;
        if (ld->o.crop_pad > 0 || ld->o.flip) {
            qg__loader_augment_params(&ld->o, ld->epoch, pos, &ox, &oy, &flip);
            pad = ld->o.crop_pad > 0 ? ld->o.crop_pad : 0;
        }
        augment(ld, qg__dataset_image(ld->ds, idx), pad, ox, oy, flip,
                b->images + j * ld->sample_floats);
        b->labels[j] = (int32_t)qg__dataset_label(ld->ds, idx);
    }
    b->n = (int)n;
}

static batch_buf *find(qg_loader *ld, int state)
{
    for (int i = 0; i < 2; i++)
        if (ld->buf[i].state == state)
            return &ld->buf[i];
    return NULL;
}

static void *worker(void *arg)
{
    qg_loader *ld = arg;
    pthread_mutex_lock(&ld->mu);
    for (;;) {
        batch_buf *b = NULL;
        while (!ld->stop && !(ld->started && !ld->restarting && ld->next_fill < ld->nbatches &&
                              (b = find(ld, BUF_FREE))))
            pthread_cond_wait(&ld->work_cv, &ld->mu);
        if (ld->stop)
            break;
        b->state = BUF_FILLING;
        b->index = ld->next_fill++;
        pthread_mutex_unlock(&ld->mu);
        fill(ld, b);
        pthread_mutex_lock(&ld->mu);
        b->state = BUF_READY;
        pthread_cond_broadcast(&ld->ready_cv);
    }
    pthread_mutex_unlock(&ld->mu);
    return NULL;
}

qg_status qg__loader_new(const qg_dataset *ds, const qg_loader_opts *o, qg_loader **out)
{
    *out = NULL;
    int c = qg__dataset_channels(ds);
    if (o->batch <= 0 || o->crop_pad < 0)
        return qg__error(NULL, QG_ERR_INVALID_ARG, "loader: batch %d must be positive and "
                         "crop padding %d not negative", o->batch, o->crop_pad);
    if (c > 4)
        return qg__error(NULL, QG_ERR_UNSUPPORTED, "loader: %d-channel images (at most 4 "
                         "have a mean/std)", c);
    for (int ch = 0; ch < c; ch++)
        if (!(o->std[ch] > 0))
            return qg__error(NULL, QG_ERR_INVALID_ARG, "loader: std of channel %d is %g; it "
                             "must be positive", ch, (double)o->std[ch]);
    qg_loader *ld = calloc(1, sizeof *ld);
    if (!ld)
        return qg__error(NULL, QG_ERR_NOMEM, "out of memory for the loader");
    ld->ds = ds;
    ld->o = *o;
    ld->count = qg__dataset_count(ds);
    ld->c = c;
    ld->h = qg__dataset_height(ds);
    ld->w = qg__dataset_width(ds);
    ld->sample_floats = (size_t)c * (size_t)ld->h * (size_t)ld->w;
    ld->nbatches = o->drop_last ? ld->count / (size_t)o->batch
                                : (ld->count + (size_t)o->batch - 1) / (size_t)o->batch;
    for (int ch = 0; ch < c; ch++)
        for (int v = 0; v < 256; v++)
            ld->lut[ch][v] = ((float)v / 255.0f - o->mean[ch]) / o->std[ch];
    ld->order = malloc((ld->count ? ld->count : 1) * sizeof *ld->order);
    for (int i = 0; i < 2; i++) {
        ld->buf[i].images = malloc((size_t)o->batch * ld->sample_floats * sizeof(float));
        ld->buf[i].labels = malloc((size_t)o->batch * sizeof(int32_t));
    }
    if (!ld->order || !ld->buf[0].images || !ld->buf[1].images || !ld->buf[0].labels ||
        !ld->buf[1].labels) {
        qg__loader_free(ld);
        return qg__error(NULL, QG_ERR_NOMEM, "out of memory for loader buffers of %d images",
                         o->batch);
    }
    pthread_mutex_init(&ld->mu, NULL);
    pthread_cond_init(&ld->work_cv, NULL);
    pthread_cond_init(&ld->ready_cv, NULL);
    ld->sync_ok = 1;
    int e = pthread_create(&ld->thread, NULL, worker, ld);
    if (e) {
        qg__loader_free(ld);
        return qg__error(NULL, QG_ERR_NOMEM, "cannot start the loader thread: %s", strerror(e));
    }
    ld->thread_started = 1;
    *out = ld;
    return QG_OK;
}

void qg__loader_free(qg_loader *ld)
{
    if (!ld)
        return;
    if (ld->thread_started) {
        pthread_mutex_lock(&ld->mu);
        ld->stop = 1;
        pthread_cond_broadcast(&ld->work_cv);
        pthread_mutex_unlock(&ld->mu);
        pthread_join(ld->thread, NULL);
    }
    if (ld->sync_ok) {
        pthread_mutex_destroy(&ld->mu);
        pthread_cond_destroy(&ld->work_cv);
        pthread_cond_destroy(&ld->ready_cv);
    }
    for (int i = 0; i < 2; i++) {
        free(ld->buf[i].images);
        free(ld->buf[i].labels);
    }
    free(ld->order);
    free(ld);
}

qg_status qg__loader_start_epoch(qg_loader *ld, int epoch)
{
    pthread_mutex_lock(&ld->mu);
    ld->restarting = 1;
    while (find(ld, BUF_FILLING))
        pthread_cond_wait(&ld->ready_cv, &ld->mu);
    ld->restarting = 0;
    /* Batches of the previous epoch (ready or held) are discarded. */
    for (int i = 0; i < 2; i++)
        ld->buf[i].state = BUF_FREE;
    ld->epoch = epoch;
    shuffle(ld);
    ld->next_fill = ld->next_take = 0;
    ld->started = 1;
    pthread_cond_broadcast(&ld->work_cv);
    pthread_mutex_unlock(&ld->mu);
    return QG_OK;
}

int qg__loader_next(qg_loader *ld, const float **images, const int32_t **labels, int *n)
{
    pthread_mutex_lock(&ld->mu);
    batch_buf *held = find(ld, BUF_HELD);
    if (held) {
        held->state = BUF_FREE;
        pthread_cond_broadcast(&ld->work_cv);
    }
    if (!ld->started || ld->next_take >= ld->nbatches) {
        pthread_mutex_unlock(&ld->mu);
        *images = NULL;
        *labels = NULL;
        *n = 0;
        return 0;
    }
    batch_buf *b;
    for (;;) {
        b = NULL;
        for (int i = 0; i < 2; i++)
            if (ld->buf[i].state == BUF_READY && ld->buf[i].index == ld->next_take)
                b = &ld->buf[i];
        if (b)
            break;
        pthread_cond_wait(&ld->ready_cv, &ld->mu);
    }
    b->state = BUF_HELD;
    ld->next_take++;
    pthread_mutex_unlock(&ld->mu);
    *images = b->images;
    *labels = b->labels;
    *n = b->n;
    return 1;
}

size_t qg__loader_batches_per_epoch(const qg_loader *ld)
{
    return ld->nbatches;
}
