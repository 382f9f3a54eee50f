/* src/train/dist_train.c: the data-parallel parts of the training loop
 * (dist_train.h).
 *
 * Gradients: every trained parameter's gradient is read into one host
 * buffer, in buckets (QGATE_DIST_BUCKET_MB, default 4 MiB); each bucket's
 * non-blocking allreduce starts as soon as it is read, so the transfer of
 * the next bucket from the device overlaps the wire; the sums are scaled
 * by 1/N on the host and written back. Overlap with the backward pass
 * itself is not done: the graph runs on one in-order queue and the
 * allreduce is host-staged, so it would need a read-back per node; at the
 * measured sizes (README, "Several devices") the allreduce is a few
 * percent of a step on one node. */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/error.h"
#include "cl/ctx.h"
#include "dist/dist.h"
#include "tensor/tensor_impl.h"
#include "train/dist_train.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int qg__dtrain_leader(const qg_dtrain *d)
{
    return d->rank == 0;
}

qg_status qg__dtrain_begin(const qg_train_cfg *cfg, qg_dtrain *d, const char **device)
{
    memset(d, 0, sizeof *d);
    d->size = 1;
    qg_status st = qg__dist_init();
    if (st != QG_OK)
        return st;
    d->rank = qg__dist_rank();
    d->size = qg__dist_size();
    if (d->size < 2)
        return QG_OK;
    int local = qg__dist_local_rank();
    const char *want = cfg->device ? cfg->device : getenv("QGATE_DEVICE");
    if (want && strchr(want, ',')) {
        /* one entry per local rank: "0,1,2,3" */
        int k = 0;
        for (const char *p = want; *p; p++)
            k += *p == ',';
        int pick = local % (k + 1);
        const char *p = want;
        for (int i = 0; i < pick; i++)
            p = strchr(p, ',') + 1;
        size_t len = strcspn(p, ",");
        snprintf(d->device, sizeof d->device, "%.*s", (int)len, p);
        *device = d->device;
    } else if (!want || !*want) {
        /* GPUs and accelerators when the node has any (PoCL's CPU device
         * is usually listed beside them), else every device */
        qg_device_info *devs = NULL;
        size_t n = 0, fast = 0;
        if (qg_devices_list(&devs, &n) == QG_OK && n > 0) {
            for (size_t i = 0; i < n; i++)
                fast += devs[i].type == QG_DEVICE_TYPE_GPU ||
                        devs[i].type == QG_DEVICE_TYPE_ACCELERATOR;
            size_t want_k = (size_t)local % (fast ? fast : n), k = 0;
            for (size_t i = 0; i < n; i++) {
                int ok = !fast || devs[i].type == QG_DEVICE_TYPE_GPU ||
                         devs[i].type == QG_DEVICE_TYPE_ACCELERATOR;
                if (ok && k++ == want_k) {
                    snprintf(d->device, sizeof d->device, "%d", devs[i].index);
                    *device = d->device;
                    break;
                }
            }
        }
        free(devs);
    }
    return QG_OK;
}

/* Every parameter's value (and buffer) from rank 0. */
static qg_status bcast_values(qg_model *m, int buffers_only)
{
    qg_status st = QG_OK;
    for (int i = 0; i < m->nparams; i++) {
        qg_param *p = m->params[i];
        if (buffers_only && p->kind != QG_PARAM_BUFFER)
            continue;
        size_t bytes = qg_tensor_numel(p->value) * qg_dtype_size(p->value->dtype);
        void *h = malloc(bytes ? bytes : 1);
        if (!h)
            return qg__error(m->ctx, QG_ERR_NOMEM, "out of memory broadcasting '%s'", p->name);
        st = qg_tensor_read(p->value, h, bytes);
        if (st == QG_OK)
            st = qg__dist_bcast(h, bytes);
        if (st == QG_OK)
            st = qg_tensor_write(p->value, h, bytes);
        free(h);
        if (st != QG_OK)
            return st;
    }
    return QG_OK;
}

qg_status qg__dtrain_attach(qg_dtrain *d, qg_model *m, int sync_bn)
{
    if (d->size < 2)
        return QG_OK;
    m->ctx->sync_bn = sync_bn != 0;
    m->ctx->dist_counts = 1;
    d->floats = 0;
    for (int i = 0; i < m->nparams; i++)
        if (m->params[i]->grad)
            d->floats += qg_tensor_numel(m->params[i]->grad);
    d->host = malloc((d->floats ? d->floats : 1) * sizeof *d->host);
    if (!d->host)
        return qg__error(m->ctx, QG_ERR_NOMEM, "out of memory for %zu gradient floats",
                         d->floats);
    const char *mb = getenv("QGATE_DIST_BUCKET_MB");
    double v = mb ? atof(mb) : 4.0;
    d->bucket = v > 0 ? (size_t)(v * 1048576.0 / sizeof(float)) : d->floats;
    if (d->bucket < 1)
        d->bucket = 1;
    return bcast_values(m, 0);
}

qg_status qg__dtrain_grads(qg_dtrain *d, qg_model *m)
{
    if (d->size < 2)
        return QG_OK;
    qg_status st = QG_OK;
    double t0 = now_s();
    qg_dist_req req = {0};
    size_t at = 0, started = 0;
    /* read each gradient; start a bucket's allreduce once it is full */
    for (int i = 0; i < m->nparams; i++) {
        qg_tensor *g = m->params[i]->grad;
        if (!g)
            continue;
        size_t n = qg_tensor_numel(g);
        QG_TRY(qg_tensor_read(g, d->host + at, n * sizeof(float)));
        at += n;
        if (at - started >= d->bucket) {
            QG_TRY(qg__dist_sum_start(&req, d->host + started, at - started));
            started = at;
        }
    }
    QG_TRY(qg__dist_sum_start(&req, d->host + started, at - started));
    QG_TRY(qg__dist_sum_wait(&req));
    float scale = 1.0f / (float)d->size;
    for (size_t i = 0; i < at; i++)
        d->host[i] *= scale;
    at = 0;
    for (int i = 0; i < m->nparams; i++) {
        qg_tensor *g = m->params[i]->grad;
        if (!g)
            continue;
        size_t n = qg_tensor_numel(g);
        QG_TRY(qg_tensor_write(g, d->host + at, n * sizeof(float)));
        at += n;
    }
    d->grad_s += now_s() - t0;
    d->grad_bytes += (double)at * sizeof(float);
    d->grad_steps++;
fail:
    if (st != QG_OK)
        qg__dist_sum_wait(&req);
    return st;
}

qg_status qg__dtrain_sum(qg_dtrain *d, double *v, size_t n)
{
    return d->size < 2 ? QG_OK : qg__dist_sum_d(v, n);
}

static int is_running_stat(const char *name)
{
    size_t n = strlen(name);
    return (n >= 12 && strcmp(name + n - 12, "running_mean") == 0) ||
           (n >= 11 && strcmp(name + n - 11, "running_var") == 0);
}

qg_status qg__dtrain_buffers(qg_dtrain *d, qg_model *m)
{
    if (d->size < 2)
        return QG_OK;
    qg_status st = QG_OK;
    for (int i = 0; i < m->nparams && st == QG_OK; i++) {
        qg_param *p = m->params[i];
        if (p->kind != QG_PARAM_BUFFER || p->value->dtype != QG_DTYPE_F32 ||
            !is_running_stat(p->name))
            continue;
        size_t n = qg_tensor_numel(p->value);
        float *h = malloc((n ? n : 1) * sizeof *h);
        if (!h)
            return qg__error(m->ctx, QG_ERR_NOMEM, "out of memory averaging '%s'", p->name);
        st = qg_tensor_read(p->value, h, n * sizeof *h);
        if (st == QG_OK)
            st = qg__dist_sum_f(h, n);
        for (size_t j = 0; j < n; j++)
            h[j] /= (float)d->size;
        if (st == QG_OK)
            st = qg_tensor_write(p->value, h, n * sizeof *h);
        free(h);
    }
    if (st != QG_OK)
        return st;
    /* the other buffers (masks, counters, method state) as rank 0 has them */
    for (int i = 0; i < m->nparams; i++) {
        qg_param *p = m->params[i];
        if (p->kind != QG_PARAM_BUFFER || (p->value->dtype == QG_DTYPE_F32 &&
                                           is_running_stat(p->name)))
            continue;
        size_t bytes = qg_tensor_numel(p->value) * qg_dtype_size(p->value->dtype);
        void *h = malloc(bytes ? bytes : 1);
        if (!h)
            return qg__error(m->ctx, QG_ERR_NOMEM, "out of memory broadcasting '%s'", p->name);
        st = qg_tensor_read(p->value, h, bytes);
        if (st == QG_OK)
            st = qg__dist_bcast(h, bytes);
        if (st == QG_OK)
            st = qg_tensor_write(p->value, h, bytes);
        free(h);
        if (st != QG_OK)
            return st;
    }
    return QG_OK;
}

qg_status qg__dtrain_metrics(qg_dtrain *d, qg_metric *v, size_t n)
{
    if (d->size < 2 || n == 0)
        return QG_OK;
    /* the same list everywhere, or nothing is averaged */
    double cnt[2] = {(double)n, -(double)n};
    qg_status st = qg__dist_max_d(cnt, 2);
    if (st != QG_OK || cnt[0] != -cnt[1])
        return st;
    double *x = malloc(n * sizeof *x);
    if (!x)
        return qg__error(NULL, QG_ERR_NOMEM, "out of memory for %zu metrics", n);
    for (size_t i = 0; i < n; i++)
        x[i] = v[i].value;
    st = qg__dist_sum_d(x, n);
    for (size_t i = 0; i < n && st == QG_OK; i++)
        v[i].value = x[i] / d->size;
    free(x);
    return st;
}

void qg__dtrain_end(qg_dtrain *d, qg_status st)
{
    free(d->host);
    d->host = NULL;
    if (d->size > 1 && st != QG_OK && st != QG_ERR_INTERRUPTED) /* (every process stops) */
        qg__dist_abort(qg_last_error());
}
