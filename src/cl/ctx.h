/* src/cl/ctx.h: the context struct and the kernel-program API (internal).
 *
 * Programs are built lazily from cl/common.cl + cl/<program>.cl with the
 * tunable parameters given as sorted -D options, and are kept in the context
 * for its lifetime; compiled binaries are also cached on disk
 * (binary_cache.c). Launchers name kernels by qg_kernel_id (cl/kernels.h):
 * the first launch of a kernel resolves its program's parameters
 * (override, tuning database, defaults), builds it and creates the kernel;
 * later launches find it by index (registry.c, launch.c).
 */
#ifndef QG_CL_CTX_H
#define QG_CL_CTX_H

#include <limits.h>
#include <stddef.h>
#include <CL/cl.h>

#include "core/error.h"
#include "cl/kernels.h"
#include "qgate/device.h"
#include "qgate/tensor.h"

typedef struct qg_kernel_entry {
    char name[64];
    cl_kernel kernel;
    struct qg_kernel_entry *next;
} qg_kernel_entry;

typedef struct qg_program_entry {
    char program[64];
    char *options;              /* full build options, the cache identity */
    cl_program prog;
    qg_kernel_entry *kernels;
    struct qg_program_entry *next;
} qg_program_entry;

/* One parameter set of a registry program as this context runs it: the
 * values (tunables order), and once a kernel of it is asked for, the
 * built program and that kernel with its argument count. Never freed
 * before the context, so pointers to it stay valid. */
#define QG_MAX_TUNABLES 16
typedef struct qg_variant {
    qg_prog_id prog;
    long values[QG_MAX_TUNABLES];
    cl_program program;         /* owned by ctx->programs */
    cl_kernel kernels[QG_K_COUNT];
    cl_uint nargs[QG_K_COUNT];
    struct qg_variant *next;
} qg_variant;

struct qg_shape_slot;

struct qg_ctx {
    qg_err_head head;           /* first: core/error.h records errors here */
    cl_platform_id platform;
    cl_device_id device;
    cl_context context;
    cl_command_queue queue;
    qg_device_info info;
    int profiling;
    int verbose;
    int fp32_correct_div;       /* device offers correctly rounded / and sqrt */
    char cache_dir[PATH_MAX];   /* "" = disk cache disabled */
    char kernel_dir[PATH_MAX];  /* "" = embedded sources */
    char tune_db[PATH_MAX];     /* "" = $QGATE_TUNE_DB or the XDG default */
    qg_program_entry *programs;
    qg_build_stats stats;
    void *gemm_state;           /* owned by gemm/gemm.c */
    void (*gemm_state_free)(void *);
    struct qg_tunedb *tunedb;   /* tunedb.c: the loaded databases */
    /* registry.c: each program's current parameters (NULL: resolve at its
     * next use), every variant made, the per-shape-class resolutions and
     * the overrides set by tests and the tuner. */
    qg_variant *current[QG_PROG_COUNT];
    qg_variant *variants;
    struct qg_shape_slot *shapes;
    size_t nshapes, shapes_cap;
    unsigned char overridden[QG_PROG_COUNT];
    long override_values[QG_PROG_COUNT][QG_MAX_TUNABLES];
    struct qg_kprof *kprof;     /* per-kernel device times (QGATE_PROFILE_KERNELS) */
    cl_mem scratch;             /* qg__ctx_scratch's buffer */
    size_t scratch_bytes;
    size_t mem_bytes, mem_peak; /* device buffers qgate holds now / at most */
    /* data-parallel run (src/dist): batch-norm statistics of the global
     * batch (--sync-bn, src/ops/bn_sync.c); gate counters summed over the
     * processes (src/model/graph.c). Set by the trainer, 0 otherwise. */
    int sync_bn, dist_counts;
};

/* Accounts a device buffer of `bytes` created (+) or released (-): what
 * bench train reports as the device memory of a step. */
void qg__ctx_mem(qg_ctx *ctx, size_t bytes, int sign);

/* A device buffer of at least `bytes` for values that live only between
 * the launches of one operation (partial sums): owned by the context,
 * grown when too small, so a training step allocates nothing once warm.
 * Valid until the next call; the in-order queue keeps users apart. */
qg_status qg__ctx_scratch(qg_ctx *ctx, size_t bytes, cl_mem *out);

/* Kernel profile: with QGATE_PROFILE_KERNELS set, every launch waits for
 * its event and adds the device time to its kernel's row; the table is
 * printed to stderr when the context is freed. A developer's tool: it
 * serialises the queue. */
struct qg_kprof *qg__kprof_new(void);
void qg__kprof_add(qg_ctx *ctx, const char *kernel, double seconds);
void qg__kprof_print(qg_ctx *ctx);

/* One tunable parameter: -D<name>=<value>. */
typedef struct qg_kparam {
    const char *name;
    long value;
} qg_kparam;

/* A kernel program's tunable parameter: default and the candidate values
 * the tuner may try. CPUs (PoCL) and GPUs want opposite shapes for some
 * kernels (few items with wide vectors vs many items with coalesced
 * loads), so an untuned CPU device may start from its own default. Constraints between parameters live in `valid`. */
#define QG_MAX_CANDIDATES 12
typedef struct qg_tunable {
    const char *name;
    long def;
    long candidates[QG_MAX_CANDIDATES];
    int ncandidates;
    const char *meaning;
    long cpu_def;               /* default on CPU devices (0: same as def) */
    /* A host-side choice stored with the program's parameters (per device
     * and shape class) but not a kernel build option: left out of the -D
     * options, so its values share one build; any value in lo..hi is
     * valid in a database. The search keeps it at def; its own
     * measurement sets it (conv_masked's PAY, src/tune/convm_pays.c). */
    int host_only;
    long lo, hi;
} qg_tunable;

typedef struct qg_program_desc {
    const char *name;                   /* cl/<name>.cl */
    const char *summary;
    qg_tunable tunables[QG_MAX_TUNABLES];
    int ntunables;
    /* NULL or a check of a full parameter set (values in tunables order)
     * against the device; returns 0 and writes why when invalid. */
    int (*valid)(const qg_ctx *ctx, const long *values, char *why, size_t cap);
    /* Not a cl/ program: parameters of another library's kernel (CLBlast's
     * Xgemm), kept in the tuning database and applied by their owner. */
    int external;
    qg_prog_id id;
} qg_program_desc;

/* The default of t on this context's device (cpu_def on CPUs). */
long qg__tunable_default(const qg_ctx *ctx, const qg_tunable *t);

/* The registry: one entry per qg_prog_id, in that order. */
const qg_program_desc *qg__program_find(const char *name);
const qg_program_desc *qg__program_desc(qg_prog_id id);
size_t qg__program_count(void);
const qg_program_desc *qg__program_at(size_t i);
/* The kernels: name and program of each qg_kernel_id. */
const char *qg__kernel_name(qg_kernel_id k);
qg_prog_id qg__kernel_program(qg_kernel_id k);

/* The variant of program p with the context's current parameters
 * (override, else tuned, else defaults); resolved at the first call and
 * after each override or database change, otherwise an array read. */
qg_status qg__variant_resolve(qg_ctx *ctx, qg_prog_id p, const char *shape_class,
                              qg_variant **out);
static inline qg_status qg__variant_current(qg_ctx *ctx, qg_prog_id p, qg_variant **out)
{
    if (ctx->current[p]) {
        *out = ctx->current[p];
        return QG_OK;
    }
    return qg__variant_resolve(ctx, p, NULL, out);
}
/* The current values of program p (tunables order), valid until the next
 * override or database change. */
static inline qg_status qg__program_values(qg_ctx *ctx, qg_prog_id p, const long **values)
{
    qg_variant *v;
    qg_status st = qg__variant_current(ctx, p, &v);
    if (st == QG_OK)
        *values = v->values;
    return st;
}
/* The same for one shape class of the program's work (e.g. a conv's
 * "c16k16h32w32s1", see qg__conv_shape_class): override, else the
 * databases' entry for that class, else their "*" entry, else defaults;
 * cached per (program, shape class). A shape_class of NULL is
 * qg__variant_current. */
qg_status qg__variant_shape(qg_ctx *ctx, qg_prog_id p, const char *shape_class,
                            qg_variant **out);
/* Forgets every resolution (after an override or a database change); the
 * variants themselves stay. */
void qg__program_invalidate(qg_ctx *ctx);
/* Releases the variants, their kernels and the resolution caches. */
void qg__variants_free(qg_ctx *ctx);

/* Current parameter values of a program for this context, by name (tests,
 * tuner), in tunables order. */
qg_status qg__program_params(qg_ctx *ctx, const char *program, long *values, int *n);
/* The same for one shape class (see qg__variant_shape). */
qg_status qg__program_params_shape(qg_ctx *ctx, const char *program, const char *shape_class,
                                   long *values, int *n);
/* Overrides the parameters of `program` (values in tunables order), after
 * checking candidates' ranges and the program's constraints; NULL values
 * clears the override. Either way the program's kernels are resolved
 * again at their next launch. */
qg_status qg__program_override(qg_ctx *ctx, const char *program, const long *values);

/* Returns the kernel `kernel` of program `program` built with `params`
 * (any order; sorted internally). The kernel is owned by the context. A
 * slow path for tests and tools; launchers use qg__kargs_get. */
qg_status qg__kernel_get(qg_ctx *ctx, const char *program,
                         const qg_kparam *params, size_t nparams,
                         const char *kernel, cl_kernel *out);

/* Builds (or finds) a program without creating a kernel. */
qg_status qg__program_build(qg_ctx *ctx, const char *program, const qg_kparam *params,
                            size_t nparams);
/* Same, returning the program (owned by the context). */
qg_status qg__program_build_get(qg_ctx *ctx, const char *program, const qg_kparam *params,
                                size_t nparams, cl_program *out);
/* Same with the context's current parameter values. */
qg_status qg__program_build_current(qg_ctx *ctx, const char *program);
/* Builds v's program if needed and creates its kernel k, with its
 * argument count (the slow path of qg__kargs_variant). */
qg_status qg__variant_kernel(qg_ctx *ctx, qg_variant *v, qg_kernel_id k);

/* Source text of cl/<name>.cl: embedded, or read from kernel_dir. *out is
 * malloc'd and NUL-terminated. */
qg_status qg__cl_source_load(qg_ctx *ctx, const char *name, char **out,
                             size_t *len);

/* Embedded sources, generated at build time by build-aux/embed-cl.sh. */
typedef struct qg_cl_source {
    const char *name;
    const unsigned char *bytes;
    size_t len;
} qg_cl_source;
extern const qg_cl_source qg__cl_sources[];
extern const size_t qg__cl_source_count;

/* Disk cache of program binaries keyed by an arbitrary string. */
qg_status qg__bincache_load(qg_ctx *ctx, const char *key,
                            unsigned char **bin, size_t *len);
void qg__bincache_store(qg_ctx *ctx, const char *key,
                        const unsigned char *bin, size_t len);

/* Kernel-argument builder: type-checked setters, the first failure is kept
 * and reported by qg__kargs_launch with the kernel name and arg index;
 * the launch also checks that every argument of the kernel was set. */
typedef struct qg_kargs {
    qg_ctx *ctx;
    cl_kernel k;
    const char *name;
    cl_uint n;
    cl_uint nargs;              /* the kernel's argument count */
    cl_int err;
    cl_uint err_index;
} qg_kargs;

/* Kernel k of variant v, ready for its arguments (created on first use). */
qg_status qg__kargs_variant(qg_ctx *ctx, qg_variant *v, qg_kernel_id k, qg_kargs *a);
/* Kernel k built with its program's current parameters, ready for its
 * arguments; *wg (if not NULL) receives the program's WG. */
qg_status qg__kargs_get(qg_ctx *ctx, qg_kernel_id k, qg_kargs *a, size_t *wg);
/* Same, with all the program's current values (tunables order, valid
 * until the next override) in *values. */
qg_status qg__kargs_getv(qg_ctx *ctx, qg_kernel_id k, qg_kargs *a, const long **values);
void qg__karg_mem(qg_kargs *a, cl_mem m);
void qg__karg_int(qg_kargs *a, int v);
void qg__karg_uint(qg_kargs *a, unsigned v);
void qg__karg_float(qg_kargs *a, float v);
void qg__karg_local(qg_kargs *a, size_t bytes);
/* Enqueues with `global` rounded up to a multiple of `local` (local may be
 * NULL for "let the driver choose"). */
qg_status qg__kargs_launch(qg_kargs *a, cl_uint dims, const size_t *global,
                           const size_t *local);
/* Same, returning the event (profiling), which the caller releases. */
qg_status qg__kargs_launch_ev(qg_kargs *a, cl_uint dims, const size_t *global,
                              const size_t *local, cl_event *ev);

static inline size_t qg__round_up(size_t n, size_t m)
{
    return m ? (n + m - 1) / m * m : n;
}

#endif
