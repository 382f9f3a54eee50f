/* src/model/grad_plan.c: where each activation's gradient lives in the
 * arena. A gradient is needed only while backward runs between its
 * consumers and its producer: it is first written by the backward of the
 * last node that reads the activation and last read by the backward of the
 * node that writes it (the logits' gradient is written by the loss before
 * backward starts; the input's is read by callers after it ends). Two
 * gradients whose node ranges do not meet can share memory, so ResNet-20
 * keeps a handful of live gradients instead of one per activation, and a
 * backward pass reuses memory it touched a moment ago. Nodes touch only
 * the gradients of their own inputs and output (graph.h), which is what
 * makes the ranges exact. */
#include "config.h"

#include <stdlib.h>

#include "model/graph.h"

typedef struct grad_slot {
    int act;
    int lo, hi;       /* nodes whose backward may touch it, inclusive */
    size_t size, off; /* floats */
} grad_slot;

static int by_size_desc(const void *a, const void *b)
{
    const grad_slot *x = a, *y = b;
    if (x->size != y->size)
        return x->size < y->size ? 1 : -1;
    return x->act - y->act; /* a fixed order, so the plan is reproducible */
}

size_t qg__grad_plan(const qg_model *m, const size_t *sizes, size_t *off)
{
    int na = m->nacts, nn = m->nnodes;
    grad_slot *s = malloc((size_t)na * sizeof *s);
    if (!s)
        return 0;
    for (int i = 0; i < na; i++) {
        s[i] = (grad_slot){.act = i, .lo = -1, .hi = -1, .size = sizes[i]};
        for (int k = 0; k < nn; k++) {
            const qg_node *n = &m->nodes[k];
            if (n->out == i)
                s[i].lo = k;
            if ((n->in[0] == i || n->in[1] == i) && k > s[i].hi)
                s[i].hi = k;
        }
        if (i == 0)
            s[i].lo = -1; /* read by callers once backward has finished */
        if (i == na - 1 || s[i].hi < s[i].lo)
            s[i].hi = nn; /* the logits' (written before backward), or unread */
    }
    qsort(s, (size_t)na, sizeof *s, by_size_desc);
    /* First fit, largest first: the lowest offset clear of every placed
     * gradient whose range meets this one. */
    size_t total = 0;
    for (int i = 0; i < na; i++) {
        size_t at = 0;
        for (int moved = 1; moved;) {
            moved = 0;
            for (int j = 0; j < i; j++) {
                int meet = s[j].lo <= s[i].hi && s[i].lo <= s[j].hi;
                if (meet && at < s[j].off + s[j].size && s[j].off < at + s[i].size) {
                    at = s[j].off + s[j].size;
                    moved = 1;
                }
            }
        }
        s[i].off = at;
        if (at + s[i].size > total)
            total = at + s[i].size;
    }
    for (int i = 0; i < na; i++)
        off[s[i].act] = s[i].off;
    free(s);
    return total;
}
