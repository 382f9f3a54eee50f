/* src/method/method.h: how a training method plugs into qgate (internal).
 *
 * A method is one descriptor (qg_method_desc) in its own file under
 * src/method/, registered by one line in src/method/methods.def. The
 * descriptor declares the method's options (a table: key, type, default,
 * range, help; parsing, validation of ranges, checkpoint metadata and the
 * CLI help all come from it), checks the combination with the other
 * methods, and offers hooks at the plug-in points:
 *   - model building: the weight quantizer a conv or linear layer of a
 *     given role gets (src/model/wquant.h), and a hook once the model is
 *     built (to add auxiliary losses, src/model/graph.h);
 *   - training: a gradient hook before the optimizer step, a hook after it,
 *     and hooks at the start and end of every epoch;
 *   - reporting: scalar and per-layer metrics for the progress line, the
 *     JSON metrics and `qgate eval`.
 * The trainer calls the hooks of every enabled method in registration
 * order and knows nothing about any one method. docs/architecture.md walks
 * through adding a method. */
#ifndef QG_METHOD_METHOD_H
#define QG_METHOD_METHOD_H

#include <stddef.h>
#include <stdint.h>

#include "qgate/method.h"
#include "model/graph.h"
#include "model/wquant.h"

/* One entry per registered method, from methods.def. */
typedef enum qg_method_id {
#define QG_METHOD(id, desc) QG_METHOD_##id,
#include "method/methods.def"
#undef QG_METHOD
    QG_METHOD_COUNT
} qg_method_id;

/* CHOICE: one of the '|'-separated names in `choices`, stored as its
 * index (an int); metadata and messages use the name. */
typedef enum qg_mopt_type { QG_MOPT_INT, QG_MOPT_FLOAT, QG_MOPT_FLAG, QG_MOPT_CHOICE } qg_mopt_type;

/* One option of a method, stored at `offset` in the method's parameter
 * struct (int for INT, FLAG and CHOICE, float for FLOAT). */
typedef struct qg_mopt {
    const char *key;          /* metadata key; the flag is --key with '_' -> '-' */
    const char *alias;        /* another long flag, or NULL */
    char short_flag;
    qg_mopt_type type;
    size_t offset;
    double def, lo, hi;
    const char *help;         /* for --help: "N  weight bits (2..16; default 8)" */
    const char *also;         /* further long flags, '|'-separated ("trunc_bits|t": the
                                 original tools' spellings), or NULL */
    const char *choices;      /* CHOICE: "pytorch|tf" (def/lo/hi are indices) */
} qg_mopt;

/* Largest parameter struct a method may have (checked at registration). */
#define QG_METHOD_PARAMS_MAX 128
#define QG_METHOD_OPTS_MAX 16

/* Where a conv or linear layer sits in a model: methods choose weight
 * quantizers by role (PSGD quantizes all, PG's first-last flag the stem
 * and the classifier). */
typedef enum qg_layer_role {
    QG_ROLE_STEM = 0,         /* the first conv */
    QG_ROLE_BLOCK = 1,        /* convs inside residual blocks / the body */
    QG_ROLE_SHORTCUT = 2,     /* option-B 1x1 shortcut convs */
    QG_ROLE_CLASSIFIER = 3,   /* the final linear layer(s) */
    QG_ROLE_DEPTHWISE = 4     /* depthwise convs (ShuffleNet's 3x3) */
} qg_layer_role;

/* Metrics a method reports: scalars (key -> value) and per-layer values
 * (key -> layer -> value). `prefix` is "" for test-time, "train_" for the
 * training phase. The sink is the CLI's or the API user's. */
typedef struct qg_metric_sink {
    void (*scalar)(void *user, const char *key, double value);
    void (*layer)(void *user, const char *key, const char *layer, double value);
    void *user;
} qg_metric_sink;

struct qg_method_cfg {
    unsigned enabled;                          /* bit per qg_method_id */
    uint32_t given[QG_METHOD_COUNT];           /* bit per option: set explicitly */
    _Alignas(8) unsigned char params[QG_METHOD_COUNT][QG_METHOD_PARAMS_MAX];
};

typedef struct qg_method_desc {
    const char *name;         /* "pg"; its flag --pg enables it */
    const char *summary;
    const char *help;         /* extra help lines (recipes), or NULL */
    const qg_mopt *opts;
    int nopts;
    size_t params_size;
    /* Turned on when any of its options is given (-w turns quantization on). */
    int auto_enable;
    /* The method trains float weights toward a grid its weight quantizers
     * know: the trainer and `qgate eval` also evaluate at low precision
     * (model->lowp set; the "_lp" metrics). */
    int lowp_eval;
    /* Which parameter kinds get weight decay when the method is on (bit i
     * = qg_param_kind i; 0: no opinion). CG's reference decays only conv
     * and linear weights. */
    unsigned decay_kinds;
    /* Checks this method against the whole configuration (it is enabled);
     * writes a message naming flags into why and returns 0 when invalid.
     * May also complete derived values (nothing else may). */
    int (*check)(qg_method_cfg *mc, char *why, size_t cap);
    /* Short summary of its settings ("w8 a3"), appended by describe. */
    void (*describe)(const qg_method_cfg *mc, char *buf, size_t cap);
    /* The weight quantizer for a layer of this role, or NULL (not this
     * method's business). The first enabled method that answers wins. */
    const qg_wquant_ops *(*wquant)(const qg_method_cfg *mc, qg_layer_role role,
                                   const void **wq_cfg);
    /* The activation bits of the input of a float-weight layer of this
     * role, or 0 (not this method's business): the builder then puts a
     * per-sample activation quantizer (qg__node_aquant) in front of the
     * layer. PG-TF quantizes the depthwise convs' input this way. The
     * first enabled method that answers wins. */
    int (*ainput)(const qg_method_cfg *mc, qg_layer_role role);
    /* After the model is built (auxiliary losses, extra state). */
    qg_status (*model_ready)(qg_model *m, const qg_method_cfg *mc);
    /* Before the optimizer step, gradients complete (PSGD's scaling). */
    qg_status (*grad_hook)(qg_model *m, const qg_method_cfg *mc);
    /* After the optimizer step (BSQ's clamp). */
    qg_status (*post_step)(qg_model *m, const qg_method_cfg *mc);
    /* At the start / end of an epoch (0-based; BSQ's re-quantization). */
    qg_status (*epoch_begin)(qg_model *m, const qg_method_cfg *mc, int epoch);
    qg_status (*epoch_end)(qg_model *m, const qg_method_cfg *mc, int epoch);
    /* Metrics since the last reset_metrics; `prefix` as in the sink. */
    qg_status (*metrics)(qg_model *m, const qg_method_cfg *mc, const char *prefix,
                         const qg_metric_sink *sink);
    qg_status (*reset_metrics)(qg_model *m, const qg_method_cfg *mc);
    /* The short progress-line text ("sparsity 45.1%"), or "" . */
    void (*progress)(qg_model *m, const qg_method_cfg *mc, char *buf, size_t cap);
} qg_method_desc;

#define QG_METHOD(id, desc) extern const qg_method_desc desc;
#include "method/methods.def"
#undef QG_METHOD

const qg_method_desc *qg__method_desc(qg_method_id id);

/* The method's parameter struct (its own type), or NULL when off. */
static inline const void *qg__method_params(const qg_method_cfg *mc, qg_method_id id)
{
    return mc && (mc->enabled & (1u << id)) ? mc->params[id] : NULL;
}
static inline int qg__method_on(const qg_method_cfg *mc, qg_method_id id)
{
    return mc && (mc->enabled & (1u << id)) != 0;
}
/* Whether option `key` of method `id` was given explicitly. */
int qg__method_given(const qg_method_cfg *mc, qg_method_id id, const char *key);

/* Initialises a configuration in place: every method off, defaults set. */
void qg__method_cfg_init(qg_method_cfg *mc);
/* qg_method_cfg_check, and the derived values it completes in place (PG
 * turns quantization on). Call once after the options are set. */
qg_status qg__method_cfg_finish(qg_method_cfg *mc);

/* Checkpoint metadata: every option of the enabled methods and a
 * "methods" list. `add` is called once per pair; the strings live in
 * `scratch` (at least QG_METHOD_META_SCRATCH bytes). */
#define QG_METHOD_META_SCRATCH 4096
typedef void (*qg_meta_add_fn)(void *user, const char *key, const char *value);
void qg__method_cfg_to_meta(const qg_method_cfg *mc, char *scratch, qg_meta_add_fn add,
                            void *user);
/* Reads a configuration back through `get` (NULL for a missing key).
 * Understands the metadata of checkpoints written before the "methods"
 * key existed (pg, pact, cg, wbits, ... as separate keys). */
typedef const char *(*qg_meta_get_fn)(void *user, const char *key);
qg_status qg__method_cfg_from_meta(qg_method_cfg *mc, qg_meta_get_fn get, void *user);

/* The weight-decay kinds the enabled methods ask for, else `dflt`. */
unsigned qg__methods_decay_kinds(const qg_method_cfg *mc, unsigned dflt);

/* The model's weight quantizer for a layer role (NULL: float weights). */
const qg_wquant_ops *qg__methods_wquant(const qg_method_cfg *mc, qg_layer_role role,
                                        const void **wq_cfg);

/* The input-quantizer bits for a layer role (0: float input), and the
 * builders' one call for it: returns `in` when no method quantizes this
 * role's input, else the output of a new quantizer node "<layer>.aquant"
 * (no parameters) in front of it; -1 with the error recorded on failure.
 * Use it as `x = qg__methods_quant_input(m, mc, QG_ROLE_DEPTHWISE,
 * "stage2.0.branch2.3", x)` right before adding the layer. */
int qg__methods_ainput(const qg_method_cfg *mc, qg_layer_role role);
int qg__methods_quant_input(qg_model *m, const qg_method_cfg *mc, qg_layer_role role,
                            const char *layer, int in);
/* Whether an enabled method asks for a low-precision evaluation. */
int qg__methods_lowp_eval(const qg_method_cfg *mc);

/* The hooks of every enabled method, in registration order. */
qg_status qg__methods_model_ready(qg_model *m, const qg_method_cfg *mc);
qg_status qg__methods_grad_hook(qg_model *m, const qg_method_cfg *mc);
qg_status qg__methods_post_step(qg_model *m, const qg_method_cfg *mc);
qg_status qg__methods_epoch_begin(qg_model *m, const qg_method_cfg *mc, int epoch);
qg_status qg__methods_epoch_end(qg_model *m, const qg_method_cfg *mc, int epoch);
qg_status qg__methods_metrics(qg_model *m, const qg_method_cfg *mc, const char *prefix,
                              const qg_metric_sink *sink);
qg_status qg__methods_reset_metrics(qg_model *m, const qg_method_cfg *mc);
void qg__methods_progress(qg_model *m, const qg_method_cfg *mc, char *buf, size_t cap);

#endif
