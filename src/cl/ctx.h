/* src/cl/ctx.h: the context struct and the kernel-program API (internal).
 *
 * Programs are built lazily from cl/common.cl + cl/<program>.cl with the
 * tunable parameters given as sorted -D options, and are kept in the context
 * for its lifetime; compiled binaries are also cached on disk
 * (binary_cache.c). Kernel objects are created once per (program, name).
 */
#ifndef QG_CL_CTX_H
#define QG_CL_CTX_H

#include <limits.h>
#include <stddef.h>
#include <CL/cl.h>

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

struct qg_ctx {
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
    char err[2048];
    void *gemm_state;           /* owned by gemm/gemm.c */
    void (*gemm_state_free)(void *);
    void *tune_state;           /* owned by tune/ (parameter lookup) */
    void (*tune_state_free)(void *);
    struct qg_param_override *overrides; /* set by tests and the tuner */
    struct qg_kprof *kprof;     /* per-kernel device times (QGATE_PROFILE_KERNELS) */
    cl_mem scratch;             /* qg__ctx_scratch's buffer */
    size_t scratch_bytes;
    size_t mem_bytes, mem_peak; /* device buffers qgate holds now / at most */
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
#define QG_MAX_TUNABLES 16
#define QG_MAX_CANDIDATES 12
typedef struct qg_tunable {
    const char *name;
    long def;
    long candidates[QG_MAX_CANDIDATES];
    int ncandidates;
    const char *meaning;
    long cpu_def;               /* default on CPU devices (0: same as def) */
} qg_tunable;

typedef struct qg_program_desc {
    const char *name;                   /* cl/<name>.cl */
    const char *summary;
    qg_tunable tunables[QG_MAX_TUNABLES];
    int ntunables;
    /* NULL or a check of a full parameter set (values in tunables order)
     * against the device; returns 0 and writes why when invalid. */
    int (*valid)(const qg_ctx *ctx, const long *values, char *why, size_t cap);
} qg_program_desc;

/* The default of t on this context's device (cpu_def on CPUs). */
long qg__tunable_default(const qg_ctx *ctx, const qg_tunable *t);

/* The registry: every program of cl/ except common. */
const qg_program_desc *qg__program_find(const char *name);
size_t qg__program_count(void);
const qg_program_desc *qg__program_at(size_t i);

/* Current parameter values of a program for this context (override, else
 * tuned, else defaults), in tunables order. */
qg_status qg__program_params(qg_ctx *ctx, const char *program, long *values, int *n);
/* The same for one shape class of the program's work (e.g. a conv's
 * "c16k16h32w32s1", see qg__conv_shape_class): override, else the
 * databases' entry for that class, else their "*" entry, else defaults.
 * A shape_class of NULL is qg__program_params. */
qg_status qg__program_params_shape(qg_ctx *ctx, const char *program, const char *shape_class,
                                   long *values, int *n);
/* Overrides the parameters of `program` (values in tunables order), after
 * checking candidates' ranges and the program's constraints; NULL values
 * clears the override. */
qg_status qg__program_override(qg_ctx *ctx, const char *program, const long *values);
/* Kernel `kernel` of `program` built with the context's current values;
 * also returns one parameter's value (e.g. "WG") when `param` is set. */
qg_status qg__kernel_current(qg_ctx *ctx, const char *program, const char *kernel,
                             cl_kernel *out, const char *param, long *param_value);

void qg__overrides_free(qg_ctx *ctx);

/* Returns the kernel `kernel` of program `program` built with `params`
 * (any order; sorted internally). The kernel is owned by the context. */
qg_status qg__kernel_get(qg_ctx *ctx, const char *program,
                         const qg_kparam *params, size_t nparams,
                         const char *kernel, cl_kernel *out);

/* Builds (or finds) a program without creating a kernel. */
qg_status qg__program_build(qg_ctx *ctx, const char *program, const qg_kparam *params,
                            size_t nparams);
/* Same with the context's current parameter values. */
qg_status qg__program_build_current(qg_ctx *ctx, const char *program);

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
 * and reported by qg__kargs_launch with the kernel name and arg index. */
typedef struct qg_kargs {
    qg_ctx *ctx;
    cl_kernel k;
    const char *name;
    cl_uint n;
    cl_int err;
    cl_uint err_index;
} qg_kargs;

void qg__kargs_init(qg_kargs *a, qg_ctx *ctx, cl_kernel k, const char *name);
/* Kernel `kernel` of `program` built with the context's current
 * parameters, ready for its arguments; *wg receives the program's "WG"
 * (def_wg when it has none). */
qg_status qg__kargs_get(qg_ctx *ctx, const char *program, const char *kernel, long def_wg,
                        qg_kargs *a, size_t *wg);
void qg__karg_mem(qg_kargs *a, cl_mem m);
void qg__karg_int(qg_kargs *a, int v);
void qg__karg_uint(qg_kargs *a, unsigned v);
void qg__karg_float(qg_kargs *a, float v);
void qg__karg_local(qg_kargs *a, size_t bytes);
/* Binds a tensor as two arguments: its buffer and its element offset. */
void qg__karg_tensor(qg_kargs *a, const qg_tensor *t);
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
