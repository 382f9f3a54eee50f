/* src/train/dist_train.h: what the training loop does in a data-parallel
 * run (mpirun -np N qgate train), on top of src/dist: device choice per
 * process, parameters from rank 0, gradient averaging, buffers and
 * metrics agreed across processes, and ending the job when a process
 * fails. With one process every call is a no-op (or nearly: a few
 * assignments), so trainer.c calls them unconditionally.
 * docs/distributed.md; tests: tests/test_dist.c, tests/test_dist.sh. */
#ifndef QG_TRAIN_DIST_TRAIN_H
#define QG_TRAIN_DIST_TRAIN_H

#include "qgate/train.h"
#include "model/graph.h"

typedef struct qg_dtrain {
    int rank, size;
    float *host;           /* gradients staged for MPI, all trained parameters */
    size_t floats;
    size_t bucket;         /* floats per allreduce bucket */
    char device[32];       /* the device this process chose, when it chose */
    double grad_s, grad_bytes;   /* time in and bytes of the gradient allreduces */
    long grad_steps;
} qg_dtrain;

/* Joins the job (src/dist), picks this process's device: --device "A,B,.."
 * (one entry per local rank, cycled), else, with several processes and no
 * --device / $QGATE_DEVICE, the local rank modulo the node's GPUs and
 * accelerators (all its devices when it has none).
 * *device is updated when a choice was made. */
qg_status qg__dtrain_begin(const qg_train_cfg *cfg, qg_dtrain *d, const char **device);
/* Turns on the context's collective paths (sync-BN, gate counters) and
 * copies rank 0's parameters and buffers to every process. */
qg_status qg__dtrain_attach(qg_dtrain *d, qg_model *m, int sync_bn);
/* Averages the gradients of the trained parameters across processes. */
qg_status qg__dtrain_grads(qg_dtrain *d, qg_model *m);
/* Sums v[0..n) across processes (step loss, counts, flags). */
qg_status qg__dtrain_sum(qg_dtrain *d, double *v, size_t n);
/* Epoch end: running batch-norm statistics averaged over processes, every
 * other buffer set to rank 0's. */
qg_status qg__dtrain_buffers(qg_dtrain *d, qg_model *m);
/* Metric values averaged over processes (each process collected the same
 * keys in the same order; gating counters are already global). */
qg_status qg__dtrain_metrics(qg_dtrain *d, qg_metric *v, size_t n);
/* Whether this process writes files and reports (rank 0). */
int qg__dtrain_leader(const qg_dtrain *d);
/* A failed process ends the job with its message (several processes);
 * frees the staging buffer. */
void qg__dtrain_end(qg_dtrain *d, qg_status st);

#endif
