/* src/method/method.c: the method configuration (qgate/method.h) and the
 * hook dispatch over the registered methods (method.h). Everything here is
 * generic: it reads the methods' option tables and calls their hooks, and
 * names no method. Tests: tests/test_method.c. */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "method/method.h"
#include "model/nodes_quant.h"

static const qg_method_desc *const registry[QG_METHOD_COUNT] = {
#define QG_METHOD(id, desc) [QG_METHOD_##id] = &desc,
#include "method/methods.def"
#undef QG_METHOD
};

const qg_method_desc *qg__method_desc(qg_method_id id)
{
    return (unsigned)id < QG_METHOD_COUNT ? registry[id] : NULL;
}

static int find_method(const char *name)
{
    for (int i = 0; i < QG_METHOD_COUNT; i++)
        if (strcmp(registry[i]->name, name) == 0)
            return i;
    return -1;
}

/* key or alias, with '-' and '_' alike (--pred-bits, pred_bits). */
static int name_eq(const char *a, const char *b)
{
    if (!a || !b)
        return 0;
    for (; *a && *b; a++, b++) {
        char x = *a == '-' ? '_' : *a, y = *b == '-' ? '_' : *b;
        if (x != y)
            return 0;
    }
    return *a == *b;
}

/* Whether `name` is one of the '|'-separated names in `list`, or -1 when
 * not; else its index. */
static int list_index(const char *list, const char *name)
{
    char one[64];
    for (int k = 0; list && *list; k++) {
        size_t len = strcspn(list, "|");
        snprintf(one, sizeof one, "%.*s", (int)len, list);
        if (name_eq(one, name))
            return k;
        list += len + (list[len] == '|');
    }
    return -1;
}

static int opt_index(const qg_method_desc *d, const char *key)
{
    for (int i = 0; i < d->nopts; i++)
        if (name_eq(d->opts[i].key, key) || name_eq(d->opts[i].alias, key) ||
            list_index(d->opts[i].also, key) >= 0)
            return i;
    return -1;
}

static void set_value(unsigned char *params, const qg_mopt *o, double v)
{
    if (o->type == QG_MOPT_FLOAT)
        memcpy(params + o->offset, &(float){(float)v}, sizeof(float));
    else
        memcpy(params + o->offset, &(int){(int)v}, sizeof(int));
}

static double get_value(const unsigned char *params, const qg_mopt *o)
{
    if (o->type == QG_MOPT_FLOAT) {
        float f;
        memcpy(&f, params + o->offset, sizeof f);
        return f;
    }
    int i;
    memcpy(&i, params + o->offset, sizeof i);
    return i;
}

void qg__method_cfg_init(qg_method_cfg *mc)
{
    memset(mc, 0, sizeof *mc);
    for (int m = 0; m < QG_METHOD_COUNT; m++) {
        const qg_method_desc *d = registry[m];
        QG_ASSERT(d->params_size <= QG_METHOD_PARAMS_MAX && d->nopts <= 32);
        for (int i = 0; i < d->nopts; i++)
            set_value(mc->params[m], &d->opts[i], d->opts[i].def);
    }
}

qg_status qg_method_cfg_new(qg_method_cfg **out)
{
    *out = malloc(sizeof **out);
    if (!*out)
        return qg__error(NULL, QG_ERR_NOMEM, "out of memory");
    qg__method_cfg_init(*out);
    return QG_OK;
}

void qg_method_cfg_free(qg_method_cfg *cfg)
{
    free(cfg);
}

qg_status qg_method_cfg_copy(const qg_method_cfg *src, qg_method_cfg **out)
{
    *out = malloc(sizeof **out);
    if (!*out)
        return qg__error(NULL, QG_ERR_NOMEM, "out of memory");
    **out = *src;
    return QG_OK;
}

static qg_status unknown_method(const char *name)
{
    char list[256] = "";
    for (int i = 0; i < QG_METHOD_COUNT; i++) {
        strncat(list, i ? ", " : "", sizeof list - strlen(list) - 1);
        strncat(list, registry[i]->name, sizeof list - strlen(list) - 1);
    }
    return qg__error(NULL, QG_ERR_NOT_FOUND, "unknown method '%s' (known: %s)", name, list);
}

qg_status qg_method_cfg_enable(qg_method_cfg *cfg, const char *method, int on)
{
    int m = find_method(method);
    if (m < 0)
        return unknown_method(method);
    if (on)
        cfg->enabled |= 1u << m;
    else
        cfg->enabled &= ~(1u << m);
    return QG_OK;
}

int qg_method_cfg_enabled(const qg_method_cfg *cfg, const char *method)
{
    int m = find_method(method);
    return m >= 0 && (cfg->enabled & (1u << m));
}

int qg__method_given(const qg_method_cfg *mc, qg_method_id id, const char *key)
{
    int i = opt_index(registry[id], key);
    return i >= 0 && (mc->given[id] & (1u << i));
}

/* Parses `value` for option o; message names the flag. */
static qg_status parse_value(const qg_mopt *o, const char *value, double *v)
{
    char *end;
    if (o->type == QG_MOPT_FLAG) {
        if (!value || !*value || strcmp(value, "1") == 0 || strcmp(value, "true") == 0) {
            *v = 1;
            return QG_OK;
        }
        if (strcmp(value, "0") == 0 || strcmp(value, "false") == 0) {
            *v = 0;
            return QG_OK;
        }
        return qg__error(NULL, QG_ERR_INVALID_ARG, "--%s is a switch (1/0), got '%s'", o->key,
                         value);
    }
    if (!value)
        value = "";
    if (o->type == QG_MOPT_CHOICE) {
        int k = list_index(o->choices, value);
        char flag[64];
        snprintf(flag, sizeof flag, "%s", o->alias ? o->alias : o->key);
        for (char *c = flag; *c; c++)
            *c = *c == '_' ? '-' : *c;
        if (k < 0 || k < o->lo || k > o->hi)
            return qg__error(NULL, QG_ERR_INVALID_ARG, "--%s expects one of %s, got '%s'", flag,
                             o->choices, value);
        *v = k;
        return QG_OK;
    }
    double x = o->type == QG_MOPT_INT ? (double)strtol(value, &end, 10) : strtod(value, &end);
    if (*value == 0 || *end != 0 || !(x >= o->lo && x <= o->hi)) {
        if (o->type == QG_MOPT_INT)
            return qg__error(NULL, QG_ERR_INVALID_ARG, "--%s expects an integer in %.0f..%.0f, "
                             "got '%s'", o->alias ? o->alias : o->key, o->lo, o->hi, value);
        return qg__error(NULL, QG_ERR_INVALID_ARG, "--%s expects a number in [%g, %g], got "
                         "'%s'", o->alias ? o->alias : o->key, o->lo, o->hi, value);
    }
    *v = x;
    return QG_OK;
}

qg_status qg_method_cfg_set(qg_method_cfg *cfg, const char *key, const char *value)
{
    int found = 0;
    for (int m = 0; m < QG_METHOD_COUNT; m++) {
        const qg_method_desc *d = registry[m];
        int i = opt_index(d, key);
        if (i < 0)
            continue;
        double v;
        qg_status st = parse_value(&d->opts[i], value, &v);
        if (st != QG_OK)
            return st;
        set_value(cfg->params[m], &d->opts[i], v);
        cfg->given[m] |= 1u << i;
        found = 1;
    }
    if (found)
        return QG_OK;
    if (find_method(key) >= 0) {
        double v;
        qg_mopt sw = {.key = key, .type = QG_MOPT_FLAG};
        qg_status st = parse_value(&sw, value, &v);
        return st != QG_OK ? st : qg_method_cfg_enable(cfg, key, v != 0);
    }
    return qg__error(NULL, QG_ERR_NOT_FOUND, "unknown method option '%s'", key);
}

static void format_value(const qg_mopt *o, double v, char *buf, size_t cap)
{
    if (o->type == QG_MOPT_CHOICE) {
        const char *c = o->choices;
        for (int k = 0; k < (int)v && c && *c; k++)
            c += strcspn(c, "|") + (c[strcspn(c, "|")] == '|');
        snprintf(buf, cap, "%.*s", c ? (int)strcspn(c, "|") : 0, c ? c : "");
        return;
    }
    if (o->type == QG_MOPT_FLOAT)
        snprintf(buf, cap, "%.9g", v);
    else
        snprintf(buf, cap, "%d", (int)v);
}

qg_status qg_method_cfg_get(const qg_method_cfg *cfg, const char *key, char *buf, size_t cap)
{
    int first = -1, fi = -1;
    for (int m = 0; m < QG_METHOD_COUNT; m++) {
        int i = opt_index(registry[m], key);
        if (i < 0)
            continue;
        if (first < 0 || ((cfg->enabled & (1u << m)) && !(cfg->enabled & (1u << first)))) {
            first = m;
            fi = i;
        }
    }
    if (first < 0) {
        int m = find_method(key);
        if (m < 0)
            return qg__error(NULL, QG_ERR_NOT_FOUND, "unknown method option '%s'", key);
        snprintf(buf, cap, "%d", (cfg->enabled >> m) & 1);
        return QG_OK;
    }
    const qg_mopt *o = &registry[first]->opts[fi];
    format_value(o, get_value(cfg->params[first], o), buf, cap);
    return QG_OK;
}

/* "--pg or --cg": the methods that declare option `key`. */
static void owners(const char *key, char *buf, size_t cap)
{
    buf[0] = 0;
    int n = 0;
    for (int m = 0; m < QG_METHOD_COUNT; m++)
        if (opt_index(registry[m], key) >= 0) {
            size_t len = strlen(buf);
            snprintf(buf + len, cap - len, "%s--%s", n++ ? " or " : "", registry[m]->name);
        }
}

/* Validation; `mc` may be completed by the methods' checks (derived
 * values), hence not const inside. */
static qg_status check(qg_method_cfg *mc)
{
    char why[512];
    /* A method turns on by its options only for options no method that is
     * on already declares: --psgd --wbits 4 sets PSGD's grid bits and does
     * not also turn on uniform quantization, which shares the flag. */
    unsigned explicit_on = mc->enabled;
    for (int m = 0; m < QG_METHOD_COUNT; m++) {
        if (!registry[m]->auto_enable || !mc->given[m])
            continue;
        for (int i = 0; i < registry[m]->nopts; i++) {
            if (!(mc->given[m] & (1u << i)))
                continue;
            int claimed = 0;
            for (int k = 0; k < QG_METHOD_COUNT; k++)
                if (k != m && (explicit_on & (1u << k)) &&
                    opt_index(registry[k], registry[m]->opts[i].key) >= 0)
                    claimed = 1;
            if (!claimed)
                mc->enabled |= 1u << m;
        }
    }
    for (int m = 0; m < QG_METHOD_COUNT; m++) {
        if (!(mc->enabled & (1u << m)) || !registry[m]->check)
            continue;
        why[0] = 0;
        if (!registry[m]->check(mc, why, sizeof why))
            return qg__error(NULL, QG_ERR_INVALID_ARG, "%s", why);
    }
    /* options given for methods that are off */
    for (int m = 0; m < QG_METHOD_COUNT; m++) {
        const qg_method_desc *d = registry[m];
        for (int i = 0; i < d->nopts; i++) {
            if (!(mc->given[m] & (1u << i)))
                continue;
            int used = 0;
            for (int k = 0; k < QG_METHOD_COUNT; k++)
                if ((mc->enabled & (1u << k)) && opt_index(registry[k], d->opts[i].key) >= 0)
                    used = 1;
            if (!used) {
                char who[128];
                owners(d->opts[i].key, who, sizeof who);
                const char *flag = d->opts[i].alias ? d->opts[i].alias : d->opts[i].key;
                return qg__error(NULL, QG_ERR_INVALID_ARG, "--%s only applies with %s", flag,
                                 who);
            }
        }
    }
    return QG_OK;
}

qg_status qg_method_cfg_check(const qg_method_cfg *cfg)
{
    qg_method_cfg tmp = *cfg;
    return check(&tmp);
}

qg_status qg__method_cfg_finish(qg_method_cfg *mc)
{
    return check(mc);
}

void qg_method_cfg_describe(const qg_method_cfg *cfg, char *buf, size_t cap)
{
    size_t len = 0;
    buf[0] = 0;
    for (int m = 0; m < QG_METHOD_COUNT && len + 1 < cap; m++) {
        if (!(cfg->enabled & (1u << m)))
            continue;
        char part[128] = "";
        if (registry[m]->describe)
            registry[m]->describe(cfg, part, sizeof part);
        snprintf(buf + len, cap - len, "%s%s%s%s", len ? " " : "", registry[m]->name,
                 part[0] ? " " : "", part);
        len = strlen(buf);
    }
    if (!len)
        snprintf(buf, cap, "full precision");
}

/* ---- the option catalogue (help, tools) ------------------------------------ */

static qg_method_info infos[QG_METHOD_COUNT];
static qg_method_option options[QG_METHOD_COUNT * 32];
static size_t noptions;

static void catalogue(void)
{
    if (noptions || !QG_METHOD_COUNT)
        return;
    for (int m = 0; m < QG_METHOD_COUNT; m++) {
        const qg_method_desc *d = registry[m];
        infos[m] = (qg_method_info){d->name, d->summary};
        for (int i = 0; i < d->nopts; i++)
            options[noptions++] = (qg_method_option){
                d->opts[i].key, d->opts[i].alias, d->opts[i].short_flag,
                d->opts[i].type == QG_MOPT_FLAG, d->name, d->opts[i].help, d->opts[i].also};
    }
}

size_t qg_method_count(void)
{
    return QG_METHOD_COUNT;
}

const qg_method_info *qg_method_at(size_t i)
{
    catalogue();
    return i < QG_METHOD_COUNT ? &infos[i] : NULL;
}

size_t qg_method_option_count(void)
{
    catalogue();
    return noptions;
}

const qg_method_option *qg_method_option_at(size_t i)
{
    catalogue();
    return i < noptions ? &options[i] : NULL;
}

/* ---- checkpoint metadata ------------------------------------------------------ */

void qg__method_cfg_to_meta(const qg_method_cfg *mc, char *scratch, qg_meta_add_fn add,
                            void *user)
{
    char *p = scratch, *end = scratch + QG_METHOD_META_SCRATCH;
    char *list = p;
    *p = 0;
    for (int m = 0; m < QG_METHOD_COUNT; m++)
        if (mc->enabled & (1u << m))
            p += snprintf(p, (size_t)(end - p), "%s%s", p == list ? "" : ",", registry[m]->name);
    p++;
    add(user, "methods", list);
    /* Each method's switch, and the options of the enabled ones: a
     * reader that predates "methods" (or a person) sees them as before. */
    for (int m = 0; m < QG_METHOD_COUNT && p < end; m++) {
        const qg_method_desc *d = registry[m];
        add(user, d->name, (mc->enabled & (1u << m)) ? "1" : "0");
        if (!(mc->enabled & (1u << m)))
            continue;
        for (int i = 0; i < d->nopts && end - p > 40; i++) {
            format_value(&d->opts[i], get_value(mc->params[m], &d->opts[i]), p,
                         (size_t)(end - p));
            add(user, d->opts[i].key, p);
            p += strlen(p) + 1;
        }
    }
}

static void set_from_meta(qg_method_cfg *mc, qg_meta_get_fn get, void *user)
{
    for (int m = 0; m < QG_METHOD_COUNT; m++) {
        if (!(mc->enabled & (1u << m)))
            continue;
        const qg_method_desc *d = registry[m];
        for (int i = 0; i < d->nopts; i++) {
            const char *v = get(user, d->opts[i].key);
            double x;
            if (v && parse_value(&d->opts[i], v, &x) == QG_OK) {
                set_value(mc->params[m], &d->opts[i], x);
                mc->given[m] |= 1u << i;
            }
        }
    }
}

qg_status qg__method_cfg_from_meta(qg_method_cfg *mc, qg_meta_get_fn get, void *user)
{
    qg__method_cfg_init(mc);
    const char *list = get(user, "methods");
    if (list) {
        char buf[512];
        snprintf(buf, sizeof buf, "%s", list);
        for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok;
             tok = strtok_r(NULL, ",", &save)) {
            int m = find_method(tok);
            if (m < 0)
                return qg__error(NULL, QG_ERR_FORMAT, "the checkpoint was trained with method "
                                 "'%s', which this qgate does not know", tok);
            mc->enabled |= 1u << m;
        }
    } else {
        /* Checkpoints from before the method registry: one switch per
         * method, quantization implied by bit widths below 32. */
        for (int m = 0; m < QG_METHOD_COUNT; m++) {
            const char *v = get(user, registry[m]->name);
            if (v && strcmp(v, "1") == 0)
                mc->enabled |= 1u << m;
        }
        const char *wb = get(user, "wbits");
        int m = find_method("quant"), pg = find_method("pg");
        if (m >= 0 && ((wb && atoi(wb) > 0 && atoi(wb) < 32) ||
                       (pg >= 0 && (mc->enabled & (1u << pg)))))
            mc->enabled |= 1u << m;
    }
    set_from_meta(mc, get, user);
    return QG_OK;
}

/* ---- hooks ---------------------------------------------------------------- */

unsigned qg__methods_decay_kinds(const qg_method_cfg *mc, unsigned dflt)
{
    for (int m = 0; mc && m < QG_METHOD_COUNT; m++)
        if ((mc->enabled & (1u << m)) && registry[m]->decay_kinds)
            return registry[m]->decay_kinds;
    return dflt;
}

int qg__methods_lowp_eval(const qg_method_cfg *mc)
{
    for (int m = 0; mc && m < QG_METHOD_COUNT; m++)
        if ((mc->enabled & (1u << m)) && registry[m]->lowp_eval)
            return 1;
    return 0;
}

const qg_wquant_ops *qg__methods_wquant(const qg_method_cfg *mc, qg_layer_role role,
                                        const void **wq_cfg)
{
    *wq_cfg = NULL;
    for (int m = 0; mc && m < QG_METHOD_COUNT; m++) {
        if (!(mc->enabled & (1u << m)) || !registry[m]->wquant)
            continue;
        const qg_wquant_ops *ops = registry[m]->wquant(mc, role, wq_cfg);
        if (ops)
            return ops;
    }
    return NULL;
}

int qg__methods_ainput(const qg_method_cfg *mc, qg_layer_role role)
{
    for (int m = 0; mc && m < QG_METHOD_COUNT; m++) {
        if (!(mc->enabled & (1u << m)) || !registry[m]->ainput)
            continue;
        int bits = registry[m]->ainput(mc, role);
        if (bits > 0)
            return bits;
    }
    return 0;
}

int qg__methods_quant_input(qg_model *m, const qg_method_cfg *mc, qg_layer_role role,
                            const char *layer, int in)
{
    int bits = qg__methods_ainput(mc, role);
    if (bits <= 0 || in < 0)
        return in;
    char name[96];
    snprintf(name, sizeof name, "%s.aquant", layer);
    return qg__node_aquant(m, name, in, bits);
}

#define EACH_ENABLED(hook, ...)                                                  \
    do {                                                                         \
        for (int m_ = 0; mc && m_ < QG_METHOD_COUNT; m_++) {                     \
            if (!(mc->enabled & (1u << m_)) || !registry[m_]->hook)              \
                continue;                                                        \
            qg_status st_ = registry[m_]->hook(__VA_ARGS__);                     \
            if (st_ != QG_OK) {                                                  \
                qg__error_append(m->ctx, "method %s, " #hook, registry[m_]->name); \
                return st_;                                                      \
            }                                                                    \
        }                                                                        \
        return QG_OK;                                                            \
    } while (0)

qg_status qg__methods_model_ready(qg_model *m, const qg_method_cfg *mc)
{
    EACH_ENABLED(model_ready, m, mc);
}

qg_status qg__methods_grad_hook(qg_model *m, const qg_method_cfg *mc)
{
    EACH_ENABLED(grad_hook, m, mc);
}

qg_status qg__methods_post_step(qg_model *m, const qg_method_cfg *mc)
{
    EACH_ENABLED(post_step, m, mc);
}

qg_status qg__methods_epoch_begin(qg_model *m, const qg_method_cfg *mc, int epoch)
{
    EACH_ENABLED(epoch_begin, m, mc, epoch);
}

qg_status qg__methods_epoch_end(qg_model *m, const qg_method_cfg *mc, int epoch)
{
    EACH_ENABLED(epoch_end, m, mc, epoch);
}

qg_status qg__methods_metrics(qg_model *m, const qg_method_cfg *mc, const char *prefix,
                              const qg_metric_sink *sink)
{
    EACH_ENABLED(metrics, m, mc, prefix, sink);
}

qg_status qg__methods_reset_metrics(qg_model *m, const qg_method_cfg *mc)
{
    EACH_ENABLED(reset_metrics, m, mc);
}

void qg__methods_progress(qg_model *m, const qg_method_cfg *mc, char *buf, size_t cap)
{
    size_t len = 0;
    buf[0] = 0;
    for (int i = 0; mc && i < QG_METHOD_COUNT && len + 1 < cap; i++) {
        if (!(mc->enabled & (1u << i)) || !registry[i]->progress)
            continue;
        char part[128] = "";
        registry[i]->progress(m, mc, part, sizeof part);
        if (part[0]) {
            snprintf(buf + len, cap - len, " %s", part);
            len = strlen(buf);
        }
    }
}
