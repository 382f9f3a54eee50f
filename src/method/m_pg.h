/* src/method/m_pg.h: what model builders ask of precision gating
 * (src/method/m_pg.c). Any builder that makes PG layers uses these, so the
 * layers follow the configured semantics (--pg-style). */
#ifndef QG_METHOD_M_PG_H
#define QG_METHOD_M_PG_H

#include "method/method.h"
#include "model/nodes_quant.h"

/* The node configuration of the gated (qg__node_pgconv) and quantized
 * (qg__node_qconv) convs from a completed method configuration: bit
 * widths, prediction bits, target, loss coefficient, spbp and style.
 * Returns 0 (and a zeroed *out) when neither PG nor quantization is on. */
int qg__pg_node_cfg(const qg_method_cfg *mc, qg_pg_cfg *out);
/* The qg_pact_mode the builder's PACT clips use: QG_PACT_TF with
 * --pg-style tf (dalpha over x >= alpha), else QG_PACT_PG. */
int qg__pg_pact_mode(const qg_method_cfg *mc);

#endif
