/* src/train/search.h: ProQHA's progressive mixed-precision search
 * (docs/methods.md §8.4), behind `qgate search`. Starting from a --proqha
 * checkpoint, each step samples candidates that lower the bits of a random
 * share of the quantizers, scores each by one Adam step on a fixed batch
 * (the device kernel qg__pq_score), keeps the lowest score, fine-tunes it
 * with Adam + cosine through qg_train_run and tests it; it stops after the
 * steps or once the cost is within the budget. Prints nothing: lines reach
 * the caller's log callback, records go to the JSON-lines file. */
#ifndef QG_TRAIN_SEARCH_H
#define QG_TRAIN_SEARCH_H

#include "qgate/train.h"

typedef struct qg_search_cfg {
    /* The fine-tuning runs: device, data, limits, batch (also the scoring
     * batch), eval_batch, seed (candidate sampling too), workers, optim
     * (Adam lr 1e-3 clip 5 by default), sched (cosine), epochs (the
     * search epochs of every step), verbose, stop. model, methods,
     * init_path, checkpoint_path and metrics_path are set per step. */
    qg_train_cfg train;
    const char *init_path;    /* the starting --proqha checkpoint */
    int steps;                /* at most this many steps */
    int lambda;               /* candidates per step */
    int interval;             /* bits a picked quantizer loses */
    float ratio;              /* share of the quantizers picked per candidate */
    /* 1: candidates lower weight quantizers only (activations keep their
     * bits, which the weight-memory cost does not count); 0: any, as the
     * reference */
    int weights_only;
    double budget;            /* stop once the weight-memory cost is <= this (0: never) */
    size_t cand_test;         /* test images for each candidate's accuracy (0: none) */
    const char *metrics_path; /* JSON lines: one per candidate and per step */
    const char *checkpoint_path;  /* step s: <path minus .st>.step<s>.st; the last: path */
    void (*log)(void *user, const char *line);
    void *user;
} qg_search_cfg;

/* The defaults of §8.4 (25 steps, 500 candidates, interval 1, ratio 0.5,
 * 30 epochs, Adam lr 1e-3, clip 5, cosine). */
void qg__search_cfg_defaults(qg_search_cfg *c);

qg_status qg__search_run(const qg_search_cfg *c);

/* A candidate's score for the model's current bit widths: forward and
 * backward on the n samples (trainer t, batch >= n), the global gradient
 * norm clipped to o->clip_norm (> 0), then qg__pq_score over every
 * trainable gradient with o's lr, betas and eps. score (1 float) and ws
 * (QG_QUANT_WS_NUMEL floats) are scratch. BN running statistics move (a
 * training forward); the parameters do not. */
struct qg_model;
qg_status qg__search_score(qg_trainer *t, struct qg_model *m, const float *img,
                           const int32_t *lab, int n, const qg_optim_cfg *o, qg_tensor *score,
                           qg_tensor *ws, double *out);

/* The path of step s's checkpoint for --checkpoint `path`. */
void qg__search_step_path(const char *path, int step, char *buf, size_t cap);

#endif
