/* qgate/method.h: the method configuration of a model and its training.
 *
 * A qg_method_cfg says which training methods are on (uniform quantization,
 * PACT, precision gating, channel gating, ...) and holds each method's
 * options. It is the one description of a method everywhere: the CLI flags
 * are parsed into it, it is validated in one place (qg_method_cfg_check),
 * written into a checkpoint's metadata and read back from it, and the model
 * builder, the trainer and the benchmarks take it as it is.
 *
 * Options are set and read by their key, as text: the same key is the long
 * flag of `qgate train` (--wbits), the checkpoint metadata key and the name
 * in qg_method_option_at. A key that several methods share (gtar, sigma,
 * spbp: precision and channel gating both have them) is set on each of
 * them; each method keeps its own default. Enabling is by the method's name
 * (qg_method_cfg_enable(cfg, "pg", 1)).
 *
 * Ownership: the caller owns a qg_method_cfg and frees it with
 * qg_method_cfg_free (NULL is a no-op). Not thread-safe; configurations are
 * small and may be copied freely with qg_method_cfg_copy.
 * See docs/architecture.md for how a method plugs in.
 */
#ifndef QGATE_METHOD_H
#define QGATE_METHOD_H

#include <stddef.h>
#include <qgate/export.h>
#include <qgate/status.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct qg_method_cfg qg_method_cfg;

/* A new configuration with every method off (a full-precision model). */
QG_API qg_status qg_method_cfg_new(qg_method_cfg **out);
QG_API void qg_method_cfg_free(qg_method_cfg *cfg);
QG_API qg_status qg_method_cfg_copy(const qg_method_cfg *src, qg_method_cfg **out);

/* Turns a method on or off by name ("quant", "pact", "pg", "cg").
 * QG_ERR_NOT_FOUND for an unknown name (qg_last_error lists the known). */
QG_API qg_status qg_method_cfg_enable(qg_method_cfg *cfg, const char *method, int on);
/* 1 when the method is on, 0 when off or unknown. */
QG_API int qg_method_cfg_enabled(const qg_method_cfg *cfg, const char *method);

/* Sets option `key` (e.g. "wbits", "pred_bits", "gtar") from text. The
 * value is checked against the option's type and range (the message names
 * the option as its flag, --key). Setting an option marks it as given;
 * qg_method_cfg_check refuses options given for methods that are off. */
QG_API qg_status qg_method_cfg_set(qg_method_cfg *cfg, const char *key, const char *value);
/* The option's value as text into buf (as it would be stored in a
 * checkpoint), from the first enabled method that has it, else the first
 * method that has it. QG_ERR_NOT_FOUND for an unknown key. */
QG_API qg_status qg_method_cfg_get(const qg_method_cfg *cfg, const char *key, char *buf, size_t cap);

/* Checks the combination: options against their methods, methods against
 * each other. On failure returns QG_ERR_INVALID_ARG and qg_last_error()
 * names the flags at fault. */
QG_API qg_status qg_method_cfg_check(const qg_method_cfg *cfg);

/* A short human summary ("pg w8 a3 pb2 pact", "full precision"). */
QG_API void qg_method_cfg_describe(const qg_method_cfg *cfg, char *buf, size_t cap);

/* The known methods and options, for help texts and tools. */
typedef struct qg_method_info {
    const char *name;          /* "pg": also the flag --pg */
    const char *summary;       /* one line */
} qg_method_info;
typedef struct qg_method_option {
    const char *key;           /* "pred_bits": metadata key; flag --pred-bits */
    const char *alias;         /* another long flag ("pb"), or NULL */
    char short_flag;           /* 'w', or 0 */
    int is_flag;               /* takes no value (--spbp) */
    const char *method;        /* the method that owns it */
    const char *help;
    const char *also;          /* further long flags, '|'-separated, or NULL */
} qg_method_option;
QG_API size_t qg_method_count(void);
QG_API const qg_method_info *qg_method_at(size_t i);
QG_API size_t qg_method_option_count(void);
QG_API const qg_method_option *qg_method_option_at(size_t i);

#ifdef __cplusplus
}
#endif
#endif
