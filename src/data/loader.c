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
 * Threading: `workers` threads share `prefetch` batch buffers, each
 * FREE -> FILLING -> READY -> HELD (caller, until its next call) -> FREE.
 * A filling batch hands out chunks of its samples to whichever worker
 * asks (claimed under the lock, prepared outside it); when every sample
 * of the oldest filling batch is claimed, an idle worker opens the next
 * batch in a free buffer, so workers stay busy across batch boundaries
 * and at most `prefetch` batches are ever allocated. Each sample's output
 * depends only on (seed, epoch, position), never on which thread made it.
 * start_epoch waits until no claimed sample is still being prepared
 * before it rewrites the order, and free stops the workers at their next
 * wait; neither leaves a thread inside a sample. */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <stdio.h>

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
    int claimed;    /* FILLING: samples handed out so far */
    int done;       /* FILLING: samples finished */
} batch_buf;

#define MAX_PREFETCH 16
#define MAX_WORKERS 64

struct qg_loader {
    const qg_dataset *ds;
    qg_loader_opts o;
    size_t count, nbatches, sample_floats;
    size_t local;              /* positions of this shard (count when unsharded) */
    int shards, shard;
    int c, h, w;
    float lut[4][256];     /* normalised value of each byte, per channel */
    size_t *order;
    int epoch, started, stop;
    int restarting;           /* start_epoch waits: take no new fill */
    size_t next_fill, next_take;
    int nbuf, nworkers, chunk;
    int on_demand;
    int in_flight;            /* samples claimed and not yet finished */
    batch_buf buf[MAX_PREFETCH];
    pthread_mutex_t mu;
    pthread_cond_t work_cv;   /* workers wait for work / new epoch / stop */
    pthread_cond_t ready_cv;  /* caller waits for a filled buffer or idle workers */
    pthread_t threads[MAX_WORKERS];
    void *scratch[MAX_WORKERS];   /* per worker, for on-demand sources */
    int threads_started, sync_ok;
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

uint64_t qg__loader_sample_key(const qg_loader_opts *o, int epoch, size_t pos)
{
    return mix64(epoch_key(o->seed, epoch) ^ mix64((uint64_t)pos + 0x510e527fade682d1ULL));
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

/* Prepares the sample at epoch position pos into slot j of b. */
static void prepare(qg_loader *ld, batch_buf *b, int j, size_t pos, void **scratch)
{
    size_t idx = ld->order[pos];
    float *dst = b->images + (size_t)j * ld->sample_floats;
    int ox = 0, oy = 0, flip = 0, pad = 0;
    if (ld->o.crop_pad > 0 || ld->o.flip) {
        qg__loader_augment_params(&ld->o, ld->epoch, pos, &ox, &oy, &flip);
        pad = ld->o.crop_pad > 0 ? ld->o.crop_pad : 0;
    }
    if (ld->on_demand) {
        qg_sample_aug aug = {qg__loader_sample_key(&ld->o, ld->epoch, pos), flip};
        int label = 0;
        if (qg__dataset_get(ld->ds, idx, &aug, dst, &label, scratch) != QG_OK) {
            /* Only an allocation can fail here; the batch stays usable. */
            fprintf(stderr, "qgate: loader: sample %zu: %s\n", idx, qg_last_error());
            memset(dst, 0, ld->sample_floats * sizeof *dst);
        }
        b->labels[j] = (int32_t)label;
        return;
    }
    augment(ld, qg__dataset_image(ld->ds, idx), pad, ox, oy, flip, dst);
    b->labels[j] = (int32_t)qg__dataset_label(ld->ds, idx);
}

static batch_buf *find(qg_loader *ld, int state)
{
    for (int i = 0; i < ld->nbuf; i++)
        if (ld->buf[i].state == state)
            return &ld->buf[i];
    return NULL;
}

/* Under the lock: the oldest filling batch with unclaimed samples, else a
 * free buffer opened for the next batch of the epoch, else NULL. */
static batch_buf *claimable(qg_loader *ld)
{
    if (!ld->started || ld->restarting)
        return NULL;
    batch_buf *best = NULL;
    for (int i = 0; i < ld->nbuf; i++) {
        batch_buf *b = &ld->buf[i];
        if (b->state == BUF_FILLING && b->claimed < b->n && (!best || b->index < best->index))
            best = b;
    }
    if (best || ld->next_fill >= ld->nbatches || !(best = find(ld, BUF_FREE)))
        return best;
    best->state = BUF_FILLING;
    best->index = ld->next_fill++;
    size_t first = best->index * (size_t)ld->o.batch;
    best->n = ld->local - first < (size_t)ld->o.batch ? (int)(ld->local - first) : ld->o.batch;
    best->claimed = best->done = 0;
    return best;
}

typedef struct worker_arg {
    qg_loader *ld;
    int id;
} worker_arg;

static void *worker(void *arg)
{
    qg_loader *ld = ((worker_arg *)arg)->ld;
    int id = ((worker_arg *)arg)->id;
    free(arg);
    pthread_mutex_lock(&ld->mu);
    for (;;) {
        batch_buf *b = NULL;
        while (!ld->stop && !(b = claimable(ld)))
            pthread_cond_wait(&ld->work_cv, &ld->mu);
        if (ld->stop)
            break;
        int j0 = b->claimed, j1 = j0 + ld->chunk < b->n ? j0 + ld->chunk : b->n;
        b->claimed = j1;
        ld->in_flight += j1 - j0;
        size_t first = b->index * (size_t)ld->o.batch;
        pthread_mutex_unlock(&ld->mu);
        for (int j = j0; j < j1; j++)
            prepare(ld, b, j, (first + (size_t)j) * (size_t)ld->shards + (size_t)ld->shard,
                    &ld->scratch[id]);
        pthread_mutex_lock(&ld->mu);
        b->done += j1 - j0;
        ld->in_flight -= j1 - j0;
        if (b->done == b->n)
            b->state = BUF_READY;
        if (b->done == b->n || ld->in_flight == 0)
            pthread_cond_broadcast(&ld->ready_cv);
    }
    pthread_mutex_unlock(&ld->mu);
    return NULL;
}

qg_status qg__loader_new(const qg_dataset *ds, const qg_loader_opts *o, qg_loader **out)
{
    *out = NULL;
    int c = qg__dataset_channels(ds), on_demand = qg__dataset_on_demand(ds);
    int nworkers = o->workers > 0 ? o->workers : 1, nbuf = o->prefetch > 0 ? o->prefetch : 2;
    if (o->batch <= 0 || o->crop_pad < 0)
        return qg__error(NULL, QG_ERR_INVALID_ARG, "loader: batch %d must be positive and "
                         "crop padding %d not negative", o->batch, o->crop_pad);
    if (nworkers > MAX_WORKERS || nbuf < 2 || nbuf > MAX_PREFETCH)
        return qg__error(NULL, QG_ERR_INVALID_ARG, "loader: %d workers (at most %d) and %d "
                         "prefetched batches (2 to %d)", nworkers, MAX_WORKERS, nbuf,
                         MAX_PREFETCH);
    if (c > 4 && !on_demand)
        return qg__error(NULL, QG_ERR_UNSUPPORTED, "loader: %d-channel images (at most 4 "
                         "have a mean/std)", c);
    for (int ch = 0; ch < c && !on_demand; ch++)
        if (!(o->std[ch] > 0))
            return qg__error(NULL, QG_ERR_INVALID_ARG, "loader: std of channel %d is %g; it "
                             "must be positive", ch, (double)o->std[ch]);
    qg_loader *ld = calloc(1, sizeof *ld);
    if (!ld)
        return qg__error(NULL, QG_ERR_NOMEM, "out of memory for the loader");
    ld->ds = ds;
    ld->o = *o;
    ld->on_demand = on_demand;
    ld->nbuf = nbuf;
    ld->count = qg__dataset_count(ds);
    ld->c = c;
    ld->h = qg__dataset_height(ds);
    ld->w = qg__dataset_width(ds);
    ld->sample_floats = (size_t)c * (size_t)ld->h * (size_t)ld->w;
    ld->shards = o->shard_count > 1 ? o->shard_count : 1;
    ld->shard = ld->shards > 1 ? o->shard_rank : 0;
    if (ld->shard < 0 || ld->shard >= ld->shards) {
        free(ld);
        return qg__error(NULL, QG_ERR_INVALID_ARG, "loader: shard %d of %d", o->shard_rank,
                         o->shard_count);
    }
    /* this shard's positions: shard, shard + shards, ... below count */
    ld->local = ld->count > (size_t)ld->shard
                    ? (ld->count - (size_t)ld->shard + (size_t)ld->shards - 1) / (size_t)ld->shards
                    : 0;
    ld->nbatches = o->drop_last ? ld->count / ((size_t)o->batch * (size_t)ld->shards)
                                : (ld->local + (size_t)o->batch - 1) / (size_t)o->batch;
    if (o->drop_last)
        ld->local = ld->nbatches * (size_t)o->batch;
    /* Chunks small enough that every worker gets a share of a batch, large
     * enough that tiny in-memory samples do not contend on the lock. */
    ld->chunk = on_demand ? 1 : o->batch / (4 * nworkers) > 1 ? o->batch / (4 * nworkers) : 1;
    for (int ch = 0; ch < c && !on_demand; ch++)
        for (int v = 0; v < 256; v++)
            ld->lut[ch][v] = ((float)v / 255.0f - o->mean[ch]) / o->std[ch];
    ld->order = malloc((ld->count ? ld->count : 1) * sizeof *ld->order);
    int ok = ld->order != NULL;
    for (int i = 0; i < nbuf; i++) {
        ld->buf[i].images = malloc((size_t)o->batch * ld->sample_floats * sizeof(float));
        ld->buf[i].labels = malloc((size_t)o->batch * sizeof(int32_t));
        ok = ok && ld->buf[i].images && ld->buf[i].labels;
    }
    if (!ok) {
        qg__loader_free(ld);
        return qg__error(NULL, QG_ERR_NOMEM, "out of memory for %d loader buffers of %d images",
                         nbuf, o->batch);
    }
    pthread_mutex_init(&ld->mu, NULL);
    pthread_cond_init(&ld->work_cv, NULL);
    pthread_cond_init(&ld->ready_cv, NULL);
    ld->sync_ok = 1;
    for (int t = 0; t < nworkers; t++) {
        worker_arg *wa = malloc(sizeof *wa);
        int e = wa ? 0 : ENOMEM;
        if (wa) {
            wa->ld = ld;
            wa->id = t;
            e = pthread_create(&ld->threads[t], NULL, worker, wa);
            if (e)
                free(wa);
        }
        if (e) {
            qg__loader_free(ld);
            return qg__error(NULL, QG_ERR_NOMEM, "cannot start loader thread %d: %s", t + 1,
                             strerror(e));
        }
        ld->threads_started = t + 1;
    }
    *out = ld;
    return QG_OK;
}

void qg__loader_free(qg_loader *ld)
{
    if (!ld)
        return;
    if (ld->threads_started) {
        pthread_mutex_lock(&ld->mu);
        ld->stop = 1;
        pthread_cond_broadcast(&ld->work_cv);
        pthread_mutex_unlock(&ld->mu);
        for (int t = 0; t < ld->threads_started; t++)
            pthread_join(ld->threads[t], NULL);
    }
    if (ld->sync_ok) {
        pthread_mutex_destroy(&ld->mu);
        pthread_cond_destroy(&ld->work_cv);
        pthread_cond_destroy(&ld->ready_cv);
    }
    for (int t = 0; t < MAX_WORKERS; t++)
        qg__dataset_scratch_free(ld->ds, ld->scratch[t]);
    for (int i = 0; i < ld->nbuf; i++) {
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
    while (ld->in_flight > 0)
        pthread_cond_wait(&ld->ready_cv, &ld->mu);
    ld->restarting = 0;
    /* Batches of the previous epoch (filling, ready or held) are discarded. */
    for (int i = 0; i < ld->nbuf; i++)
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
        for (int i = 0; i < ld->nbuf; i++)
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
