/* src/model/qbits.h: the per-quantizer bit widths of a mixed-precision
 * model (internal; ProQHA, docs/methods.md §8).
 *
 * Every weight or activation quantizer whose bit width may change after the
 * model is built registers one slot here when it is built: its name (the
 * layer, or the activation node), its kind, its bit width, and for weights
 * the number of weights. The quantizers read their slot's bits at every
 * forward, so setting a slot takes effect at once. Each slot also owns a
 * 1-element buffer parameter `<name>.kbits` holding the same value, so the
 * bit widths travel with the weights through checkpoints (save, --init,
 * --resume, eval); after a load, qg__qbits_pull copies them back.
 *
 * Any model builder can take part: weight slots come from the ProQHA
 * weight quantizer (src/model/wquant_dorefa.c, through the method's wquant
 * hook), activation slots from qg__node_pact_quant (src/model/nodes_pq.h).
 * The cost functions below enumerate the slots, so they need nothing
 * model-specific. */
#ifndef QG_MODEL_QBITS_H
#define QG_MODEL_QBITS_H

#include <stddef.h>

#include "model/graph.h"

typedef enum qg_qb_kind { QG_QB_WEIGHT = 0, QG_QB_ACT = 1 } qg_qb_kind;

/* Bit widths a slot may hold: 1..16, or 32 (full precision). */
#define QG_QB_FLOAT 32
static inline int qg__qbits_valid(int b)
{
    return (b >= 1 && b <= 16) || b == QG_QB_FLOAT;
}

typedef struct qg_qslot {
    char name[80];            /* layer (weights) or activation node name */
    qg_qb_kind kind;
    int bits;
    int act;                  /* ACT: the activation id the quantizer writes */
    size_t numel;             /* WEIGHT: number of weights */
    qg_param *buf;            /* `<name>.kbits`, 1 float */
} qg_qslot;

typedef struct qg_qbits qg_qbits;
struct qg_qbits {
    qg_qslot *v;
    int n, cap;
};

/* Registers a slot (and its buffer, set to bits); returns its index, or -1
 * with the error recorded. */
int qg__qbits_add(qg_model *m, const char *name, qg_qb_kind kind, int bits, int act,
                  size_t numel);
int qg__qbits_count(const qg_model *m);
const qg_qslot *qg__qbits_at(const qg_model *m, int i);
static inline int qg__qbits_get(const qg_model *m, int i)
{
    return m->qbits->v[i].bits;
}
/* Sets slot i (and its buffer); bits must be qg__qbits_valid. */
qg_status qg__qbits_set(qg_model *m, int i, int bits);
/* All slots of a kind (kind < 0: every slot). */
qg_status qg__qbits_set_all(qg_model *m, int kind, int bits);
/* Sets slots by name from a spec "NAME=B[,NAME=B...]": NAME is a slot's
 * name (a layer for its weights, an activation node for its activations),
 * or a prefix ending in '*' for every slot under it; B is 1..16 or 32.
 * The pairs apply left to right, so a later, narrower one overrides a
 * wider one. A name that matches no slot is an error that lists the
 * spec's item; *changed (may be NULL) counts the slots set. */
qg_status qg__qbits_apply_spec(qg_model *m, const char *spec, int *changed);
/* After parameters were loaded: the buffers' values become the bits
 * (checked). No slots: nothing to do. */
qg_status qg__qbits_pull(qg_model *m);
void qg__qbits_free(qg_model *m);

/* The two costs of docs/methods.md §8.5 for the bit widths `bits` (one per
 * slot; NULL: the current ones):
 *   wmem   = sum k_w |W| / (32 sum |W|) over the weight slots;
 *   bitops = sum k_w k_a MACs / (32*32 sum MACs) over the weight slots,
 *            k_a the bits of the activation slot that writes the layer's
 *            input (32 when none), MACs from qg__node_macs.
 * A model without weight slots gets 1 and 1. */
qg_status qg__qbits_cost(const qg_model *m, const int *bits, double *wmem, double *bitops);
/* "weights 2-6 bits, activations 8 bits; weight memory 0.151940, bit
 * operations 0.036535": the widths in use and both costs, for the run's
 * log after --init or --kbits changed them. "" (and QG_OK) without slots. */
qg_status qg__qbits_summary(const qg_model *m, char *buf, size_t cap);

/* The activation slot feeding weight slot i's layer, or -1. */
int qg__qbits_input_slot(const qg_model *m, int i);

#endif
