/* src/model/qbits.c: per-quantizer bit widths and the ProQHA costs (see
 * qbits.h). Tests: tests/test_proqha.c. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "model/nodes.h"
#include "model/qbits.h"

int qg__qbits_add(qg_model *m, const char *name, qg_qb_kind kind, int bits, int act,
                  size_t numel)
{
    if (!qg__qbits_valid(bits)) {
        qg__error(m->ctx, QG_ERR_INVALID_ARG, "%s: %d bits (use 1..16 or 32)", name, bits);
        return -1;
    }
    if (!m->qbits && !(m->qbits = calloc(1, sizeof *m->qbits))) {
        qg__error(m->ctx, QG_ERR_NOMEM, "out of memory");
        return -1;
    }
    qg_qbits *q = m->qbits;
    if (q->n == q->cap) {
        int cap = q->cap ? 2 * q->cap : 32;
        qg_qslot *v = realloc(q->v, (size_t)cap * sizeof *v);
        if (!v) {
            qg__error(m->ctx, QG_ERR_NOMEM, "out of memory");
            return -1;
        }
        q->v = v;
        q->cap = cap;
    }
    qg_qslot *s = &q->v[q->n];
    memset(s, 0, sizeof *s);
    snprintf(s->name, sizeof s->name, "%s", name);
    s->kind = kind;
    s->bits = bits;
    s->act = act;
    s->numel = numel;
    char pn[96];
    int64_t one[1] = {1};
    snprintf(pn, sizeof pn, "%s.kbits", name);
    if (qg__model_add_param(m, pn, QG_PARAM_BUFFER, 1, one, &s->buf) != QG_OK ||
        qg__param_init_const(s->buf, (float)bits) != QG_OK)
        return -1;
    return q->n++;
}

int qg__qbits_count(const qg_model *m)
{
    return m->qbits ? m->qbits->n : 0;
}

const qg_qslot *qg__qbits_at(const qg_model *m, int i)
{
    return &m->qbits->v[i];
}

qg_status qg__qbits_set(qg_model *m, int i, int bits)
{
    if (i < 0 || i >= qg__qbits_count(m))
        return qg__error(m->ctx, QG_ERR_INVALID_ARG, "quantizer %d: the model has %d", i,
                         qg__qbits_count(m));
    qg_qslot *s = &m->qbits->v[i];
    if (!qg__qbits_valid(bits))
        return qg__error(m->ctx, QG_ERR_INVALID_ARG, "%s: %d bits (use 1..16 or 32)", s->name,
                         bits);
    s->bits = bits; /* the buffer is written even when unchanged: a restore may have moved it */
    return qg__param_init_const(s->buf, (float)bits);
}

qg_status qg__qbits_apply_spec(qg_model *m, const char *spec, int *changed)
{
    int n = 0;
    const char *p = spec;
    if (changed)
        *changed = 0;
    if (!qg__qbits_count(m))
        return qg__error(m->ctx, QG_ERR_INVALID_ARG, "--kbits: this model has no bit-width "
                         "slots (only --proqha models have per-quantizer bits)");
    while (*p) {
        size_t len = strcspn(p, ",");
        char item[128];
        if (len == 0 || len >= sizeof item)
            return qg__error(m->ctx, QG_ERR_INVALID_ARG, "--kbits: bad item '%.*s' in '%s' "
                             "(want NAME=BITS)", (int)len, p, spec);
        memcpy(item, p, len);
        item[len] = 0;
        p += len + (p[len] == ',');
        char *eq = strrchr(item, '='), *end;
        long bits = eq ? strtol(eq + 1, &end, 10) : 0;
        if (!eq || eq == item || end == eq + 1 || *end || !qg__qbits_valid((int)bits))
            return qg__error(m->ctx, QG_ERR_INVALID_ARG, "--kbits: bad item '%s' (want "
                             "NAME=BITS, BITS 1..16 or 32)", item);
        *eq = 0;
        size_t nl = strlen(item);
        int prefix = item[nl - 1] == '*', hits = 0;
        if (prefix)
            item[--nl] = 0;
        for (int i = 0; i < qg__qbits_count(m); i++) {
            const char *name = m->qbits->v[i].name;
            if (prefix ? strncmp(name, item, nl) != 0 : strcmp(name, item) != 0)
                continue;
            qg_status st = qg__qbits_set(m, i, (int)bits);
            if (st != QG_OK)
                return st;
            hits++;
        }
        if (!hits)
            return qg__error(m->ctx, QG_ERR_INVALID_ARG, "--kbits: no quantizer named '%s%s' "
                             "(qgate inspect lists them)", item, prefix ? "*" : "");
        n += hits;
    }
    if (changed)
        *changed = n;
    return QG_OK;
}

qg_status qg__qbits_set_all(qg_model *m, int kind, int bits)
{
    for (int i = 0; i < qg__qbits_count(m); i++)
        if (kind < 0 || (int)m->qbits->v[i].kind == kind) {
            qg_status st = qg__qbits_set(m, i, bits);
            if (st != QG_OK)
                return st;
        }
    return QG_OK;
}

qg_status qg__qbits_pull(qg_model *m)
{
    for (int i = 0; i < qg__qbits_count(m); i++) {
        qg_qslot *s = &m->qbits->v[i];
        float v;
        qg_status st = qg_tensor_read(s->buf->value, &v, sizeof v);
        if (st != QG_OK)
            return st;
        int b = (int)v;
        if ((float)b != v || !qg__qbits_valid(b))
            return qg__error(m->ctx, QG_ERR_FORMAT, "%s.kbits holds %g, not a bit width "
                             "(1..16 or 32)", s->name, (double)v);
        s->bits = b;
    }
    return QG_OK;
}

void qg__qbits_free(qg_model *m)
{
    if (!m->qbits)
        return;
    free(m->qbits->v);
    free(m->qbits);
    m->qbits = NULL;
}

static const qg_node *find_node(const qg_model *m, const char *name)
{
    for (int i = 0; i < m->nnodes; i++)
        if (strcmp(m->nodes[i].name, name) == 0)
            return &m->nodes[i];
    return NULL;
}

int qg__qbits_input_slot(const qg_model *m, int i)
{
    const qg_node *n = find_node(m, m->qbits->v[i].name);
    if (!n)
        return -1;
    for (int j = 0; j < m->qbits->n; j++)
        if (m->qbits->v[j].kind == QG_QB_ACT && m->qbits->v[j].act == n->in[0])
            return j;
    return -1;
}

qg_status qg__qbits_cost(const qg_model *m, const int *bits, double *wmem, double *bitops)
{
    double wn = 0, wd = 0, bn = 0, bd = 0;
    for (int i = 0; i < qg__qbits_count(m); i++) {
        const qg_qslot *s = &m->qbits->v[i];
        if (s->kind != QG_QB_WEIGHT)
            continue;
        int kw = bits ? bits[i] : s->bits;
        wn += (double)kw * (double)s->numel;
        wd += 32.0 * (double)s->numel;
        const qg_node *n = find_node(m, s->name);
        if (!n)
            return qg__error(m->ctx, QG_ERR_INVALID_ARG, "quantizer %s has no layer", s->name);
        double macs = qg__node_macs(m, n);
        int a = qg__qbits_input_slot(m, i);
        int ka = a < 0 ? 32 : bits ? bits[a] : m->qbits->v[a].bits;
        bn += (double)kw * ka * macs;
        bd += 1024.0 * macs;
    }
    *wmem = wd > 0 ? wn / wd : 1.0;
    *bitops = bd > 0 ? bn / bd : 1.0;
    return QG_OK;
}

/* "2-6 bits", "8 bits" or "none" for the slots of one kind. */
static void span(const qg_model *m, qg_qb_kind kind, char *buf, size_t cap)
{
    int lo = 0, hi = 0;
    for (int i = 0; i < qg__qbits_count(m); i++) {
        const qg_qslot *s = &m->qbits->v[i];
        if (s->kind != kind)
            continue;
        lo = lo && lo < s->bits ? lo : s->bits;
        hi = hi > s->bits ? hi : s->bits;
    }
    if (!hi)
        snprintf(buf, cap, "none");
    else if (lo == hi)
        snprintf(buf, cap, "%d bits", lo);
    else
        snprintf(buf, cap, "%d-%d bits", lo, hi);
}

qg_status qg__qbits_summary(const qg_model *m, char *buf, size_t cap)
{
    if (cap)
        buf[0] = 0;
    if (!qg__qbits_count(m))
        return QG_OK;
    double wmem, bitops;
    qg_status st = qg__qbits_cost(m, NULL, &wmem, &bitops);
    if (st != QG_OK)
        return st;
    char w[32], a[32];
    span(m, QG_QB_WEIGHT, w, sizeof w);
    span(m, QG_QB_ACT, a, sizeof a);
    snprintf(buf, cap, "weights %s, activations %s; weight memory %.6f, bit operations %.6f", w,
             a, wmem, bitops);
    return QG_OK;
}
