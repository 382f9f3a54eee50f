/* src/train/checkpoint.c: model <-> safetensors (see checkpoint.h). */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "train/checkpoint.h"
#include "model/qbits.h"
#include "tensor/tensor_impl.h"

static const char *state_names[2] = {"state0", "state1"};

/* PyTorch's BatchNorm2d has a third buffer, num_batches_tracked (int64
 * []), which qgate does not use. It is written beside every running_var
 * (as I32 [], the number of training steps from the metadata's "step"),
 * so the file loads with load_state_dict(strict=True); loading ignores
 * it. */
static const char nbt_suffix[] = ".num_batches_tracked";

static int is_bn_var(const char *name)
{
    size_t n = strlen(name);
    return n > 12 && strcmp(name + n - 12, ".running_var") == 0;
}

int qg__checkpoint_ignored(const char *name)
{
    size_t n = strlen(name), k = sizeof nbt_suffix - 1;
    return n > k && strcmp(name + n - k, nbt_suffix) == 0;
}

qg_status qg__checkpoint_save(qg_model *m, const char *path, const qg_st_meta *meta,
                              size_t nmeta, int with_optimizer)
{
    qg_status st = QG_OK;
    size_t cap = (size_t)m->nparams * 4, n = 0;
    int32_t steps = 0;
    for (size_t i = 0; i < nmeta; i++)
        if (strcmp(meta[i].key, "step") == 0)
            steps = (int32_t)strtol(meta[i].value, NULL, 10);
    qg_st_tensor *ts = calloc(cap, sizeof *ts);
    char **names = calloc(cap, sizeof *names);
    void **bufs = calloc(cap, sizeof *bufs);
    if (!ts || !names || !bufs) {
        st = qg__error(m->ctx, QG_ERR_NOMEM, "out of memory saving '%s'", path);
        goto fail;
    }
    for (int i = 0; i < m->nparams; i++) {
        qg_param *p = m->params[i];
        for (int k = -1; k < 2; k++) {
            qg_tensor *t = k < 0 ? p->value : (with_optimizer ? p->state[k] : NULL);
            if (!t)
                continue;
            size_t bytes = qg_tensor_numel(t) * sizeof(float);
            bufs[n] = malloc(bytes ? bytes : 1);
            names[n] = malloc(strlen(p->name) + 32);
            if (!bufs[n] || !names[n]) {
                st = qg__error(m->ctx, QG_ERR_NOMEM, "out of memory saving '%s'", path);
                n++;
                goto fail;
            }
            if (k < 0)
                strcpy(names[n], p->name);
            else
                sprintf(names[n], "optimizer.%s.%s", p->name, state_names[k]);
            st = qg_tensor_read(t, bufs[n], bytes);
            if (st != QG_OK) {
                n++;
                goto fail;
            }
            ts[n].name = names[n];
            ts[n].dtype = QG_DTYPE_F32;
            ts[n].ndim = t->ndim;
            memcpy(ts[n].shape, t->shape, sizeof ts[n].shape);
            ts[n].data = bufs[n];
            n++;
        }
        if (is_bn_var(p->name)) {
            size_t len = strlen(p->name) - 12;
            bufs[n] = malloc(sizeof steps);
            names[n] = malloc(len + sizeof nbt_suffix);
            if (!bufs[n] || !names[n]) {
                st = qg__error(m->ctx, QG_ERR_NOMEM, "out of memory saving '%s'", path);
                n++;
                goto fail;
            }
            memcpy(bufs[n], &steps, sizeof steps);
            memcpy(names[n], p->name, len);
            strcpy(names[n] + len, nbt_suffix);
            ts[n] = (qg_st_tensor){.name = names[n], .dtype = QG_DTYPE_I32, .ndim = 0,
                                   .data = bufs[n]};
            n++;
        }
    }
    st = qg__safetensors_write(path, ts, n, meta, nmeta);
    if (st != QG_OK)
        qg__error(m->ctx, st, "%s", qg_last_error());
fail:
    for (size_t i = 0; i < n; i++) {
        free(bufs[i]);
        free(names[i]);
    }
    free(ts);
    free(names);
    free(bufs);
    return st;
}

/* "[64, 10]" */
static void shape_str(int ndim, const int64_t *shape, char *buf, size_t cap)
{
    size_t at = (size_t)snprintf(buf, cap, "[");
    for (int d = 0; d < ndim && at < cap; d++)
        at += (size_t)snprintf(buf + at, cap - at, "%s%lld", d ? ", " : "", (long long)shape[d]);
    if (at < cap)
        snprintf(buf + at, cap - at, "]");
}

/* Shapes match dimension by dimension. The one equivalence: a single
 * value stored as a scalar [] or as [1] (PyTorch keeps scalar parameters
 * such as PACT's alpha as [], qgate as [1]). */
static int same_shape(const qg_st_tensor *e, const qg_tensor *t)
{
    if (e->ndim <= 1 && t->ndim <= 1 && (e->ndim == 0 || e->shape[0] == 1) &&
        (t->ndim == 0 || t->shape[0] == 1))
        return 1;
    if (e->ndim != t->ndim)
        return 0;
    for (int d = 0; d < e->ndim; d++)
        if (e->shape[d] != t->shape[d])
            return 0;
    return 1;
}

/* flex: the parameter when its value is loaded and its last axis is
 * flexible (qg_param.flex_last), else NULL. */
static qg_status load_one(qg_model *m, const qg_st_file *f, const char *path, const char *name,
                          qg_tensor *t, int required, qg_param *flex)
{
    const qg_st_tensor *e = qg__safetensors_get(f, name);
    if (!e) {
        if (!required)
            return QG_OK;
        return qg__error(m->ctx, QG_ERR_FORMAT, "checkpoint '%s' has no tensor '%s'", path,
                         name);
    }
    char have[128], want[128];
    qg_param *fp = flex;
    if (fp && e->dtype == QG_DTYPE_F32 && e->ndim == t->ndim && e->ndim >= 1 &&
        !same_shape(e, t)) {
        /* a flexible last axis (BSQ's planes) takes the file's length */
        int d = 0;
        while (d < e->ndim - 1 && e->shape[d] == t->shape[d])
            d++;
        if (d == e->ndim - 1 && e->shape[d] >= 1 && e->shape[d] <= 32) {
            qg_status st = qg__model_param_resize(m, fp, e->ndim, e->shape);
            if (st != QG_OK)
                return st;
            t = fp->value;
        }
    }
    shape_str(e->ndim, e->shape, have, sizeof have);
    shape_str(t->ndim, t->shape, want, sizeof want);
    if (e->dtype != QG_DTYPE_F32 || !same_shape(e, t))
        return qg__error(m->ctx, QG_ERR_SHAPE, "checkpoint '%s': tensor '%s' is %s %s, the "
                         "model expects F32 %s", path, name, qg_dtype_name(e->dtype), have,
                         want);
    size_t n = qg_tensor_numel(t);
    /* A NaN or Inf weight would train "normally" into garbage, or trip
     * the divergence check with a misleading hint: refuse it here. */
    const float *v = e->data;
    size_t bad = 0, first = 0;
    for (size_t i = 0; i < n; i++)
        if (!isfinite(v[i]) && bad++ == 0)
            first = i;
    if (bad)
        return qg__error(m->ctx, QG_ERR_FORMAT, "checkpoint '%s': tensor '%s' holds %zu "
                         "non-finite value%s (the first, %g, at element %zu); the file is "
                         "corrupt or was saved after training diverged", path, name, bad,
                         bad > 1 ? "s" : "", (double)v[first], first);
    return qg_tensor_write(t, e->data, n * sizeof(float));
}

qg_status qg__checkpoint_load(qg_model *m, const qg_st_file *f, const char *path,
                              int with_optimizer)
{
    qg_status st = QG_OK;
    char name[160];
    for (int i = 0; i < m->nparams && st == QG_OK; i++) {
        qg_param *p = m->params[i];
        st = load_one(m, f, path, p->name, p->value, 1, p->flex_last ? p : NULL);
        for (int k = 0; k < 2 && st == QG_OK && with_optimizer; k++) {
            if (!p->state[k])
                continue;
            snprintf(name, sizeof name, "optimizer.%s.%s", p->name, state_names[k]);
            st = load_one(m, f, path, name, p->state[k], 1, NULL);
        }
    }
    /* per-quantizer bit widths travel as buffers (src/model/qbits.h) */
    return st == QG_OK ? qg__qbits_pull(m) : st;
}

static int model_has(const qg_model *m, const char *name)
{
    for (int i = 0; i < m->nparams; i++)
        if (strcmp(m->params[i]->name, name) == 0)
            return 1;
    return 0;
}

qg_status qg__checkpoint_init(qg_model *m, const qg_st_file *f, const char *path, int *loaded,
                              int *kept, char *kept_names, size_t cap)
{
    *loaded = *kept = 0;
    if (kept_names && cap)
        kept_names[0] = '\0';
    /* a tensor without a place means the file holds another architecture:
     * its weights would be dropped without a word */
    for (size_t i = 0; i < qg__safetensors_count(f); i++) {
        const char *name = qg__safetensors_at(f, i)->name;
        if (strncmp(name, "optimizer.", 10) != 0 && !qg__checkpoint_ignored(name) &&
            !model_has(m, name))
            return qg__error(m->ctx, QG_ERR_SHAPE, "--init '%s': tensor '%s' has no place in "
                             "this model; the file holds another architecture or method "
                             "(see `qgate inspect %s`)", path, name, path);
    }
    size_t at = 0;
    for (int i = 0; i < m->nparams; i++) {
        qg_param *p = m->params[i];
        if (!qg__safetensors_get(f, p->name)) {
            ++*kept;
            if (kept_names && at < cap)
                at += (size_t)snprintf(kept_names + at, cap - at, "%s%s", at ? ", " : "",
                                       p->name);
            continue;
        }
        qg_status st = load_one(m, f, path, p->name, p->value, 1, p->flex_last ? p : NULL);
        if (st != QG_OK)
            return st;
        ++*loaded;
    }
    if (*loaded == 0)
        return qg__error(m->ctx, QG_ERR_FORMAT, "--init '%s': none of its tensors is a "
                         "parameter of this model", path);
    return qg__qbits_pull(m);
}
