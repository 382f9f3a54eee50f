/* src/method/m_pact.c: PACT clipping (learned alpha) instead of ReLU, one
 * alpha per residual block and one for the stem, named
 * <block>.relu.upper_bound as in dnn-gating (docs/methods.md §5.3). The
 * builder fuses the clip into the batch norm before it (src/model/resnet.c,
 * src/ops/bn.c). */
#include "config.h"

#include "method/method.h"

const qg_method_desc qg__method_pact = {
    .name = "pact",
    .summary = "PACT clipping (learned alpha, one per block) instead of ReLU",
};
