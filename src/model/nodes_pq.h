/* src/model/nodes_pq.h: ProQHA's quantizers as model parts (docs/methods.md
 * §8.2): the DoReFa weight quantizer (a qg_wquant_ops) and the PACT
 * quantizer node for activations. Both register a slot in the model's
 * per-quantizer bit widths (src/model/qbits.h) and read it at every
 * forward, so a search can change any one of them between steps. Kernels:
 * src/quant/quant.h (qg__dorefa_*, qg__pact_quant_*). */
#ifndef QG_MODEL_NODES_PQ_H
#define QG_MODEL_NODES_PQ_H

#include "model/graph.h"
#include "model/wquant.h"

/* DoReFa weights with ProQHA's (non-detached max) gradient; cfg points to
 * an int: the initial bits (1..16 or 32). */
extern const qg_wquant_ops qg__wquant_dorefa;

/* PACT quantizer: q = quantize_bits(clamp(x, 0, alpha)) with alpha the
 * parameter `name`.alpha (initialised to 10) and a bit-width slot named
 * `name`; returns the output activation id or -1. */
int qg__node_pact_quant(qg_model *m, const char *name, int in, int bits);

#endif
