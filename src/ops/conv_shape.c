/* src/ops/conv_shape.c: the shape class of a convolution, the key under
 * which `qgate tune --shapes FILE` stores per-shape parameters of the
 * direct kernels (cl/conv_direct.cl) and under which a conv plan
 * (src/ops/conv_direct.c) looks them up. Tests: tests/test_tune_shapes.c. */
#include "config.h"

#include <stdio.h>

#include "ops/conv.h"

/* The batch is left out: the kernels' best tiling follows the map and
 * channel sizes, and a class per batch size would split one layer's
 * tuning between training and evaluation. Kernel size and padding are
 * left out because the direct kernels take only 3x3 (pad 1 in ResNets).
 * A grouped conv ends in "g" and its groups ("c16k16h32w32s1g4"): its
 * tiles span one group's channels. */
void qg__conv_shape_class(const qg_conv_desc *d, char *buf, size_t cap)
{
    if (d->groups > 1)
        snprintf(buf, cap, "c%dk%dh%dw%ds%dg%d", d->C, d->K, d->H, d->W, d->stride, d->groups);
    else
        snprintf(buf, cap, "c%dk%dh%dw%ds%d", d->C, d->K, d->H, d->W, d->stride);
}
