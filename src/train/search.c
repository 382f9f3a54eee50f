/* src/train/search.c: ProQHA's search loop (see search.h; docs/methods.md
 * §8.4). Scoring runs forward and backward on the fixed batch through the
 * trainer (qg__trainer_grad) and the score kernel over every trainable
 * gradient; fine-tuning is qg_train_run from the chosen candidate's weights
 * (--init semantics: fresh Adam state, cosine from the start). Unlike the
 * reference, every candidate is evaluated with its own bit widths. */
#include "config.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/rng.h"
#include "data/dataset.h"
#include "model/graph.h"
#include "model/qbits.h"
#include "model/safetensors.h"
#include "quant/quant.h"
#include "tensor/tensor_impl.h"
#include "train/checkpoint.h"
#include "train/search.h"
#include "train/trainer.h"

void qg__search_cfg_defaults(qg_search_cfg *c)
{
    memset(c, 0, sizeof *c);
    qg_train_cfg_defaults(&c->train);
    c->train.epochs = 30;
    c->train.optim = (qg_optim_cfg){.kind = QG_OPTIM_ADAM, .lr = 1e-3f, .beta1 = 0.9f,
                                    .beta2 = 0.999f, .eps = 1e-7f, .clip_norm = 5.0f,
                                    .decay_kinds = QG_DECAY_ALL};
    c->train.sched.kind = QG_SCHED_COSINE;
    c->train.sched.end_lr = 0;
    c->steps = 25;
    c->lambda = 500;
    c->interval = 1;
    c->ratio = 0.5f;
    c->cand_test = 1000;
}

void qg__search_step_path(const char *path, int step, char *buf, size_t cap)
{
    const char *dot = strrchr(path, '.'), *slash = strrchr(path, '/');
    if (dot && (!slash || dot > slash) && dot != path)
        snprintf(buf, cap, "%.*s.step%d%s", (int)(dot - path), path, step, dot);
    else
        snprintf(buf, cap, "%s.step%d", path, step);
}

static void logf_(const qg_search_cfg *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void logf_(const qg_search_cfg *c, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (c->log)
        c->log(c->user, line);
}

/* The search's working state. */
typedef struct search {
    const qg_search_cfg *c;
    qg_ctx *ctx;
    qg_dataset *train, *test;
    float *img;                /* the fixed batch */
    int32_t *lab;
    int n;
    qg_model *m;
    qg_trainer *t;
    float **snap;              /* host copy of every parameter's value */
    qg_tensor *score, *ws;
    FILE *metrics;
    int nq;
    int *parent, *cand, *best, *order;
    int *elig, nelig;          /* the quantizers candidates may lower */
} search;

static qg_status snapshot(search *s, int save)
{
    qg_model *m = s->m;
    if (!s->snap && !(s->snap = calloc((size_t)m->nparams, sizeof *s->snap)))
        return qg__error(s->ctx, QG_ERR_NOMEM, "out of memory");
    for (int i = 0; i < m->nparams; i++) {
        qg_tensor *v = m->params[i]->value;
        size_t bytes = qg_tensor_numel(v) * sizeof(float);
        if (!s->snap[i] && !(s->snap[i] = malloc(bytes ? bytes : 1)))
            return qg__error(s->ctx, QG_ERR_NOMEM, "out of memory");
        qg_status st = save ? qg_tensor_read(v, s->snap[i], bytes)
                            : qg_tensor_write(v, s->snap[i], bytes);
        if (st != QG_OK)
            return st;
    }
    return QG_OK;
}

static void free_model(search *s)
{
    if (s->snap && s->m)
        for (int i = 0; i < s->m->nparams; i++)
            free(s->snap[i]);
    free(s->snap);
    s->snap = NULL;
    qg_trainer_free(s->t);
    s->t = NULL;
    qg__model_free(s->m);
    s->m = NULL;
}

/* Loads a checkpoint into a new model (its own architecture and methods). */
static qg_status load_model(search *s, const char *path)
{
    qg_st_file *f = NULL;
    qg_status st = qg__safetensors_read(path, &f);
    if (st != QG_OK)
        return qg__error(s->ctx, st, "--init: %s", qg_last_error());
    st = qg__model_from_meta(s->ctx, f, path, qg__dataset_channels(s->train),
                             qg__dataset_height(s->train), qg__dataset_width(s->train),
                             qg__dataset_classes(s->train), &s->m);
    if (st == QG_OK)
        st = qg__checkpoint_load(s->m, f, path, 0);
    qg__safetensors_free(f);
    if (st != QG_OK)
        return st;
    if (qg__qbits_count(s->m) < 2)
        return qg__error(s->ctx, QG_ERR_INVALID_ARG, "'%s' has %d quantizers with their own "
                         "bit widths: train the starting model with --proqha", path,
                         qg__qbits_count(s->m));
    qg_optim_cfg o = s->c->train.optim;
    QG_TRY(qg_trainer_new(s->m, &o, s->n, &s->t));
    return QG_OK;
fail:
    return st;
}

qg_status qg__search_score(qg_trainer *t, qg_model *m, const float *img, const int32_t *lab,
                           int n, const qg_optim_cfg *o, qg_tensor *score, qg_tensor *ws,
                           double *out)
{
    qg_status st = qg__trainer_grad(t, img, lab, n, NULL);
    float norm = 0, scale = 1;
    if (st == QG_OK && o->clip_norm > 0)
        st = qg__optim_grad_norm(m, &norm);
    if (st != QG_OK)
        return st;
    if (o->clip_norm > 0 && norm > o->clip_norm)
        scale = o->clip_norm / (norm + 1e-6f);
    QG_TRY(qg_tensor_zero(score));
    for (int i = 0; i < m->nparams; i++) {
        qg_param *p = m->params[i];
        if (!p->grad || p->kind == QG_PARAM_BUFFER)
            continue;
        QG_TRY(qg__pq_score(m->ctx, p->grad, scale, o->lr, o->beta1, o->beta2, o->eps, score,
                            ws));
    }
    float v;
    QG_TRY(qg_tensor_read(score, &v, sizeof v));
    *out = v;
fail:
    return st;
}

/* One Adam step's score on the fixed batch for the current bit widths. */
static qg_status score_now(search *s, double *score)
{
    return qg__search_score(s->t, s->m, s->img, s->lab, s->n, &s->c->train.optim, s->score,
                            s->ws, score);
}

static qg_status set_bits(search *s, const int *bits)
{
    for (int i = 0; i < s->nq; i++) {
        qg_status st = qg__qbits_set(s->m, i, bits[i]);
        if (st != QG_OK)
            return st;
    }
    return QG_OK;
}

/* Lowers floor(ratio * nelig) distinct random eligible quantizers by
 * interval, not below 2 (a partial Fisher-Yates shuffle; with every
 * quantizer eligible, the same draws as before weights_only existed). */
static void sample(search *s, qg_rng *rng)
{
    int ne = s->nelig, k = (int)floor(s->c->ratio * ne);
    for (int i = 0; i < s->nq; i++)
        s->cand[i] = s->parent[i];
    for (int i = 0; i < ne; i++)
        s->order[i] = s->elig[i];
    for (int i = 0; i < k && i < ne; i++) {
        int j = i + (int)(qg__rng_uniform(rng) * (ne - i));
        if (j >= ne)
            j = ne - 1;
        int t = s->order[i];
        s->order[i] = s->order[j];
        s->order[j] = t;
        int q = s->order[i], b = s->cand[q];
        if (b == QG_QB_FLOAT)
            continue; /* a float quantizer stays float */
        b -= s->c->interval;
        s->cand[q] = b < 2 ? 2 : b;
    }
}

static void json_bits(FILE *f, const search *s, const int *bits)
{
    fputs("\"kbits\": [", f);
    for (int i = 0; i < s->nq; i++)
        fprintf(f, "%s%d", i ? ", " : "", bits[i]);
    fputs("]", f);
}

static void json_names(FILE *f, const search *s)
{
    fputs("{\"quantizers\": [", f);
    for (int i = 0; i < s->nq; i++) {
        const qg_qslot *q = qg__qbits_at(s->m, i);
        fprintf(f, "%s[\"%s\", \"%s\"]", i ? ", " : "", q->name,
                q->kind == QG_QB_WEIGHT ? "w" : "a");
    }
    fputs("]}\n", f);
}

typedef struct ft_result {
    double test_acc;
    int got;
    const qg_search_cfg *c;
} ft_result;

static void ft_event(const qg_train_event *ev, void *user)
{
    ft_result *r = user;
    if (ev->kind == QG_TRAIN_EV_EPOCH) {
        r->test_acc = ev->test_acc;
        r->got = 1;
        logf_(r->c, "  fine-tune epoch %d/%d: train loss %.4f acc %.2f%%, test acc %.2f%%",
              ev->epoch, ev->epochs, ev->train_loss, 100 * ev->train_acc, 100 * ev->test_acc);
    }
}

static qg_status open_data(search *s)
{
    const qg_train_cfg *tc = &s->c->train;
    qg_data_opts dopts = {tc->input_size, tc->resize, tc->normalize, tc->workers,
                          tc->crop_scale};
    qg_status st = qg__dataset_load_opts(tc->data, tc->data_dir, 1, &dopts, &s->train);
    if (st == QG_OK)
        st = qg__dataset_load_opts(tc->data, tc->data_dir, 0, &dopts, &s->test);
    if (st != QG_OK)
        return st;
    if (tc->limit_train)
        qg__dataset_truncate(s->train, tc->limit_train);
    if (s->c->cand_test)
        qg__dataset_truncate(s->test, s->c->cand_test);
    /* the fixed batch: the first `batch` training images, unaugmented */
    qg_loader_opts lo = {.batch = tc->batch, .shuffle = 0, .drop_last = 0, .seed = tc->seed};
    int crop, flip;
    qg__data_defaults(tc->data, &lo, &crop, &flip);
    lo.crop_pad = 0;
    lo.flip = 0;
    qg_loader *ld = NULL;
    QG_TRY(qg__loader_new(s->train, &lo, &ld));
    QG_TRY(qg__loader_start_epoch(ld, 0));
    const float *img;
    const int32_t *lab;
    int n;
    if (!qg__loader_next(ld, &img, &lab, &n)) {
        st = qg__error(s->ctx, QG_ERR_INVALID_ARG, "no training images for the scoring batch");
        goto fail;
    }
    size_t per = (size_t)qg__dataset_channels(s->train) * (size_t)qg__dataset_height(s->train) *
                 (size_t)qg__dataset_width(s->train);
    s->img = malloc((size_t)n * per * sizeof *s->img);
    s->lab = malloc((size_t)n * sizeof *s->lab);
    if (!s->img || !s->lab) {
        st = qg__error(s->ctx, QG_ERR_NOMEM, "out of memory");
        goto fail;
    }
    memcpy(s->img, img, (size_t)n * per * sizeof *s->img);
    memcpy(s->lab, lab, (size_t)n * sizeof *s->lab);
    s->n = n;
fail:
    qg__loader_free(ld);
    return st;
}

static qg_status cand_acc(search *s, double *acc)
{
    *acc = -1;
    if (!s->c->cand_test)
        return QG_OK;
    qg_loader_opts lo = {.batch = s->n};
    int crop, flip;
    double loss;
    qg__data_defaults(s->c->train.data, &lo, &crop, &flip);
    return qg__evaluate(s->m, s->test, s->n, &lo, &loss, acc);
}

static qg_status run(search *s)
{
    const qg_search_cfg *c = s->c;
    qg_status st = QG_OK;
    char cur[1024], next[1024];
    snprintf(cur, sizeof cur, "%s", c->init_path);
    QG_TRY(open_data(s));
    QG_TRY(load_model(s, cur));
    s->nq = qg__qbits_count(s->m);
    s->parent = calloc((size_t)s->nq, sizeof(int));
    s->cand = calloc((size_t)s->nq, sizeof(int));
    s->best = calloc((size_t)s->nq, sizeof(int));
    s->order = calloc((size_t)s->nq, sizeof(int));
    s->elig = calloc((size_t)s->nq, sizeof(int));
    if (!s->parent || !s->cand || !s->best || !s->order || !s->elig)
        return qg__error(s->ctx, QG_ERR_NOMEM, "out of memory");
    for (int i = 0; i < s->nq; i++)
        if (!c->weights_only || qg__qbits_at(s->m, i)->kind == QG_QB_WEIGHT)
            s->elig[s->nelig++] = i;
    if (s->nelig == 0)
        return qg__error(s->ctx, QG_ERR_INVALID_ARG, "the model in '%s' has no %squantizer "
                         "for the search to lower", c->init_path,
                         c->weights_only ? "weight " : "");
    logf_(c, "candidates lower %d of the %d quantizers%s", s->nelig, s->nq,
          c->weights_only ? " (weights only: activations keep their bits)" : "");
    int64_t one[1] = {1}, wsn[1] = {QG_QUANT_WS_NUMEL};
    QG_TRY(qg_tensor_new(s->ctx, 1, one, QG_DTYPE_F32, "pq.score", &s->score));
    QG_TRY(qg_tensor_new(s->ctx, 1, wsn, QG_DTYPE_F32, "pq.ws", &s->ws));
    if (s->metrics)
        json_names(s->metrics, s);
    qg_rng rng = {c->train.seed * 0x9E3779B97F4A7C15ULL + 7};
    qg_method_cfg *mc = NULL;
    char arch[64];
    for (int step = 1; step <= c->steps; step++) {
        if (c->train.stop && *c->train.stop)
            return qg__error(s->ctx, QG_ERR_INTERRUPTED, "interrupted");
        double wmem, bitops;
        for (int i = 0; i < s->nq; i++)
            s->parent[i] = qg__qbits_get(s->m, i);
        QG_TRY(qg__qbits_cost(s->m, NULL, &wmem, &bitops));
        if (c->budget > 0 && wmem <= c->budget) {
            logf_(c, "cost %.6f is within the budget %.6f: done", wmem, c->budget);
            break;
        }
        QG_TRY(snapshot(s, 1));
        double best = INFINITY;
        for (int k = 0; k < c->lambda; k++) {
            sample(s, &rng);
            QG_TRY(set_bits(s, s->cand));
            double score, acc, cw, cb;
            QG_TRY(score_now(s, &score));
            QG_TRY(snapshot(s, 0)); /* the training forward moved BN statistics */
            QG_TRY(cand_acc(s, &acc));
            QG_TRY(qg__qbits_cost(s->m, s->cand, &cw, &cb));
            logf_(c, "step %d/%d candidate %d/%d: score %.6g cost %.6f bitops %.6f test acc "
                  "%.2f%%", step, c->steps, k + 1, c->lambda, score, cw, cb, 100 * acc);
            if (s->metrics) {
                fprintf(s->metrics, "{\"step\": %d, \"candidate\": %d, ", step, k + 1);
                json_bits(s->metrics, s, s->cand);
                fprintf(s->metrics, ", \"score\": %.9g, \"cost\": %.9g, \"cost_bitops\": %.9g, "
                        "\"test_acc\": %.6f}\n", score, cw, cb, acc);
                fflush(s->metrics);
            }
            if (score < best) {
                best = score;
                memcpy(s->best, s->cand, (size_t)s->nq * sizeof(int));
            }
        }
        /* the parent's weights with the chosen bit widths, fine-tuned */
        QG_TRY(set_bits(s, s->best));
        QG_TRY(qg__qbits_cost(s->m, NULL, &wmem, &bitops));
        logf_(c, "step %d/%d chose score %.6g cost %.6f bitops %.6f", step, c->steps, best,
              wmem, bitops);
        char tmp[1100];
        snprintf(tmp, sizeof tmp, "%s.choice.tmp", c->checkpoint_path);
        QG_TRY(qg_model_save(s->m, tmp));
        snprintf(arch, sizeof arch, "%s", s->m->arch);
        QG_TRY(qg_method_cfg_copy(s->m->methods, &mc));
        free_model(s);
        qg__search_step_path(c->checkpoint_path, step, next, sizeof next);
        qg_train_cfg tc = c->train;
        ft_result fr = {.test_acc = 0, .got = 0, .c = c};
        tc.model = arch;
        tc.methods = mc;
        tc.init_path = tmp;
        tc.resume_path = NULL;
        tc.checkpoint_path = next;
        tc.metrics_path = NULL;
        tc.callback = ft_event;
        tc.user = &fr;
        st = qg_train_run(&tc);
        remove(tmp);
        qg_method_cfg_free(mc);
        mc = NULL;
        if (st != QG_OK)
            goto fail;
        QG_TRY(load_model(s, next));
        snprintf(cur, sizeof cur, "%s", next);
        logf_(c, "step %d/%d: cost %.6f bitops %.6f test acc %.2f%% -> %s", step, c->steps,
              wmem, bitops, 100 * fr.test_acc, next);
        if (s->metrics) {
            fprintf(s->metrics, "{\"step\": %d, ", step);
            json_bits(s->metrics, s, s->best);
            fprintf(s->metrics, ", \"score\": %.9g, \"cost\": %.9g, \"cost_bitops\": %.9g, "
                    "\"test_acc\": %.6f, \"checkpoint\": \"%s\"}\n", best, wmem, bitops,
                    fr.test_acc, next);
            fflush(s->metrics);
        }
        if (c->budget > 0 && wmem <= c->budget) {
            logf_(c, "cost %.6f is within the budget %.6f: done", wmem, c->budget);
            break;
        }
    }
    /* the result under the plain --checkpoint name */
    if (strcmp(cur, c->init_path) != 0)
        QG_TRY(qg_model_save(s->m, c->checkpoint_path));
fail:
    qg_method_cfg_free(mc);
    return st;
}

qg_status qg__search_run(const qg_search_cfg *c)
{
    if (!c->init_path || !c->checkpoint_path)
        return qg__error(NULL, QG_ERR_INVALID_ARG, "search: --init and --checkpoint are needed");
    if (c->lambda < 1 || c->steps < 1 || c->interval < 1 || !(c->ratio > 0 && c->ratio <= 1))
        return qg__error(NULL, QG_ERR_INVALID_ARG, "search: --steps, --lambda and --interval "
                         "must be at least 1 and --ratio in (0, 1]");
    search s = {.c = c};
    qg_ctx_opts co = {.device = c->train.device, .verbose = c->train.verbose};
    qg_status st = qg_ctx_new(&co, &s.ctx);
    if (st != QG_OK)
        return st;
    if (c->metrics_path && !(s.metrics = fopen(c->metrics_path, "a"))) {
        st = qg__error(s.ctx, QG_ERR_IO, "--metrics '%s': cannot open for appending",
                       c->metrics_path);
    } else {
        st = run(&s);
    }
    if (s.metrics)
        fclose(s.metrics);
    free_model(&s);
    qg_tensor_free(s.score);
    qg_tensor_free(s.ws);
    qg__dataset_free(s.train);
    qg__dataset_free(s.test);
    free(s.img);
    free(s.lab);
    free(s.parent);
    free(s.cand);
    free(s.best);
    free(s.order);
    free(s.elig);
    qg_ctx_free(s.ctx);
    return st;
}
