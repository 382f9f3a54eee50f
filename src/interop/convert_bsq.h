/* src/interop/convert_bsq.h: a float qgate checkpoint to BSQ's bit
 * representation (docs/methods.md §7.2): every conv weight except the
 * option-B shortcut's, and the linear layer's weight and bias, becomes
 * X.pweight / X.nweight [shape..., N] and X.scale (X.pbias / X.nbias /
 * X.biasscale for a bias) with S = max |w| and the codes rint(|w|(2^N-1)/S)
 * peeled MSB first; X.weight / X.bias then hold the value of those bits.
 * Everything else (BN, the shortcut) is copied; optimizer state is
 * dropped. The metadata switches BSQ on (methods=bsq, nbits). */
#ifndef QG_INTEROP_CONVERT_BSQ_H
#define QG_INTEROP_CONVERT_BSQ_H

#include <stddef.h>

#include "model/safetensors.h"

typedef struct qg_bsq_convert_report {
    size_t layers;           /* layers converted */
    size_t tensors;          /* tensors converted (weights and biases) */
    size_t values;           /* their values */
    double bits;             /* their bits (sign not counted) */
} qg_bsq_convert_report;

/* Whether `name` of f is converted (a 4-d or 2-d X.weight outside a
 * shortcut, or the X.bias of one). */
int qg__bsq_convert_quantizes(const qg_st_file *f, const char *name);
/* bits: the precision of every tensor; with scheme (a BSQ checkpoint of
 * the same architecture, may be NULL), each tensor takes that file's
 * precision instead. */
qg_status qg__bsq_convert(const char *in, int bits, const char *scheme, const char *out,
                          qg_bsq_convert_report *r);

#endif
