/* src/dist/dist.c: the process group (dist.h). With QG_HAVE_MPI the calls
 * map onto MPI_COMM_WORLD; without it, or when the process was not started
 * by an MPI launcher, the group is this one process and the collectives
 * return at once. MPI's default error handler stays in place
 * (MPI_ERRORS_ARE_FATAL): a failed collective, or a peer that died, ends
 * the job from inside MPI with its own message rather than hanging. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/error.h"
#include "dist/dist.h"

#ifdef QG_HAVE_MPI
#include <limits.h>
#include <mpi.h>
#endif

static int g_init, g_rank, g_size = 1, g_local;
static double g_sec, g_bytes;
static long g_calls;

int qg__dist_rank(void) { return g_rank; }
int qg__dist_size(void) { return g_size; }
int qg__dist_local_rank(void) { return g_local; }

void qg__dist_stats(double *seconds, double *bytes, long *calls)
{
    *seconds = g_sec;
    *bytes = g_bytes;
    *calls = g_calls;
}

void qg__dist_stats_reset(void)
{
    g_sec = g_bytes = 0;
    g_calls = 0;
}

#ifdef QG_HAVE_MPI

int qg__dist_available(void) { return 1; }

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Started by mpirun/mpiexec (Open MPI), srun (PMIx or PMI-2)? */
static int launched(void)
{
    static const char *vars[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"};
    for (size_t i = 0; i < sizeof vars / sizeof *vars; i++)
        if (getenv(vars[i]))
            return 1;
    return 0;
}

static void finalize(void)
{
    int fin = 0;
    MPI_Finalized(&fin);
    if (!fin)
        MPI_Finalize();
}

qg_status qg__dist_init(void)
{
    if (g_init)
        return QG_OK;
    g_init = 1;
    if (!launched())
        return QG_OK;
    int was = 0, provided;
    MPI_Initialized(&was);
    if (!was) {
        if (MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
            return qg__error(NULL, QG_ERR_UNSUPPORTED, "MPI_Init failed (started by an MPI "
                             "launcher, but MPI cannot start)");
        atexit(finalize);
    }
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
    MPI_Comm node;
    if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, g_rank, MPI_INFO_NULL,
                            &node) == MPI_SUCCESS) {
        MPI_Comm_rank(node, &g_local);
        MPI_Comm_free(&node);
    }
    return QG_OK;
}

/* MPI counts are int: long buffers go in pieces. */
#define PIECE ((size_t)INT_MAX / 2)

static qg_status reduce(void *v, size_t n, MPI_Datatype t, size_t elem, MPI_Op op)
{
    if (g_size < 2 || n == 0)
        return QG_OK;
    double t0 = now_s();
    for (size_t at = 0; at < n; at += PIECE) {
        int k = (int)(n - at < PIECE ? n - at : PIECE);
        MPI_Allreduce(MPI_IN_PLACE, (char *)v + at * elem, k, t, op, MPI_COMM_WORLD);
    }
    g_sec += now_s() - t0;
    g_bytes += (double)n * (double)elem;
    g_calls++;
    return QG_OK;
}

qg_status qg__dist_sum_f(float *v, size_t n) { return reduce(v, n, MPI_FLOAT, 4, MPI_SUM); }
qg_status qg__dist_sum_d(double *v, size_t n) { return reduce(v, n, MPI_DOUBLE, 8, MPI_SUM); }
qg_status qg__dist_max_d(double *v, size_t n) { return reduce(v, n, MPI_DOUBLE, 8, MPI_MAX); }

qg_status qg__dist_bcast(void *v, size_t bytes)
{
    if (g_size < 2 || bytes == 0)
        return QG_OK;
    double t0 = now_s();
    for (size_t at = 0; at < bytes; at += PIECE) {
        int k = (int)(bytes - at < PIECE ? bytes - at : PIECE);
        MPI_Bcast((char *)v + at, k, MPI_BYTE, 0, MPI_COMM_WORLD);
    }
    g_sec += now_s() - t0;
    g_calls++;
    return QG_OK;
}

qg_status qg__dist_sum_start(qg_dist_req *r, float *v, size_t n)
{
    if (g_size < 2 || n == 0)
        return QG_OK;
    if (r->n == QG_DIST_INFLIGHT || n > PIECE) {
        qg_status st = qg__dist_sum_wait(r);
        if (st != QG_OK || n > PIECE)
            return st == QG_OK ? qg__dist_sum_f(v, n) : st;
    }
    double t0 = now_s();
    MPI_Request *q = malloc(sizeof *q);
    if (!q)
        return qg__error(NULL, QG_ERR_NOMEM, "out of memory for an MPI request");
    MPI_Iallreduce(MPI_IN_PLACE, v, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, q);
    r->impl[r->n++] = q;
    g_sec += now_s() - t0;
    g_bytes += (double)n * 4;
    g_calls++;
    return QG_OK;
}

qg_status qg__dist_sum_wait(qg_dist_req *r)
{
    double t0 = now_s();
    for (int i = 0; i < r->n; i++) {
        MPI_Wait(r->impl[i], MPI_STATUS_IGNORE);
        free(r->impl[i]);
    }
    r->n = 0;
    g_sec += now_s() - t0;
    return QG_OK;
}

void qg__dist_abort(const char *msg)
{
    if (g_size < 2)
        return;
    fprintf(stderr, "qgate (rank %d of %d): %s; ending the job\n", g_rank, g_size, msg);
    fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, 1);
}

#else /* one process: no MPI compiled in */

int qg__dist_available(void) { return 0; }

qg_status qg__dist_init(void)
{
    g_init = 1;
    return QG_OK;
}

qg_status qg__dist_sum_f(float *v, size_t n) { return QG_OK; }
qg_status qg__dist_sum_d(double *v, size_t n) { return QG_OK; }
qg_status qg__dist_max_d(double *v, size_t n) { return QG_OK; }
qg_status qg__dist_bcast(void *v, size_t bytes) { return QG_OK; }
qg_status qg__dist_sum_start(qg_dist_req *r, float *v, size_t n) { return QG_OK; }

qg_status qg__dist_sum_wait(qg_dist_req *r)
{
    r->n = 0;
    return QG_OK;
}

void qg__dist_abort(const char *msg) {}

#endif
