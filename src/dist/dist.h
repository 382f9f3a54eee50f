/* src/dist/dist.h: the process group of a data-parallel run (MPI when
 * configured --with-mpi and started by mpirun/srun; otherwise one process
 * and every call below is a no-op). The trainer, batch norm (--sync-bn)
 * and the gating counters call only this interface; nothing else includes
 * mpi.h. Every function that communicates is collective: all processes
 * call it in the same order with the same sizes. Twin: tests/test_dist.c,
 * tests/test_dist.sh; docs/distributed.md. */
#ifndef QG_DIST_DIST_H
#define QG_DIST_DIST_H

#include <stddef.h>

#include "qgate/status.h"

/* Joins the job when the process was started by an MPI launcher (MPI
 * built in and the launcher's environment present); idempotent. Returns
 * QG_OK for a single process too. Finalisation is registered with atexit. */
qg_status qg__dist_init(void);
int qg__dist_rank(void);        /* 0 for one process */
int qg__dist_size(void);        /* 1 for one process */
int qg__dist_local_rank(void);  /* rank among the processes of this node */
/* Whether MPI support was compiled in (not whether the job has > 1 rank). */
int qg__dist_available(void);

/* In place, across all processes: sums of floats (accumulated by MPI in
 * float) and of doubles, and the maximum of doubles. */
qg_status qg__dist_sum_f(float *v, size_t n);
qg_status qg__dist_sum_d(double *v, size_t n);
qg_status qg__dist_max_d(double *v, size_t n);
/* Rank 0's bytes to every process. */
qg_status qg__dist_bcast(void *v, size_t bytes);

/* Bucketed sum of floats: buckets of at most `bucket` floats are started
 * as non-blocking allreduces (qg__dist_sum_start) and finished in order
 * (qg__dist_sum_wait), so the caller can stage the next bucket to or from
 * its device while earlier ones are on the wire. At most QG_DIST_INFLIGHT
 * outstanding. */
enum { QG_DIST_INFLIGHT = 8 };
typedef struct qg_dist_req {
    void *impl[QG_DIST_INFLIGHT];   /* MPI_Request handles */
    int n;
} qg_dist_req;
qg_status qg__dist_sum_start(qg_dist_req *r, float *v, size_t n);
qg_status qg__dist_sum_wait(qg_dist_req *r); /* all outstanding */

/* Ends the whole job after this process printed why: "qgate (rank R of N):
 * MSG" on stderr, then MPI_Abort. Single process: returns (the caller
 * reports the error as usual). */
void qg__dist_abort(const char *msg);

/* Seconds spent in collectives and bytes reduced since the last call to
 * qg__dist_stats_reset (the README's per-step allreduce numbers). */
void qg__dist_stats(double *seconds, double *bytes, long *calls);
void qg__dist_stats_reset(void);

#endif
