/* src/method/gating.h: the reporting that the gating methods (precision
 * and channel gating) share: update-phase sparsity per gated layer and for
 * the model, and, where skipped work is real compute (CG), the FLOP
 * reduction. Reads the device gate counters of src/model/graph.h. */
#ifndef QG_METHOD_GATING_H
#define QG_METHOD_GATING_H

#include "method/method.h"

/* Metrics: "<prefix>sparsity", "<prefix>flop_reduction" and, for the test
 * phase (prefix ""), per layer "sparsity_layers", "flop_reduction_layers",
 * plus "macs_dense" and "macs_effective". */
/* They have the method hooks' signatures, so a gating method's descriptor
 * names them directly. */
qg_status qg__gating_metrics(qg_model *m, const qg_method_cfg *mc, const char *prefix,
                             const qg_metric_sink *sink);
/* "sparsity 45.1% FLOPs /1.83" for the progress line ("" without gates). */
void qg__gating_progress(qg_model *m, const qg_method_cfg *mc, char *buf, size_t cap);
qg_status qg__gating_reset(qg_model *m, const qg_method_cfg *mc);

#endif
