/* src/plot/plot.h: the figures of `qgate plot`, drawn with Cairo (internal;
 * tests: tests/test_plot.c).
 *
 * The output format follows the file name: .png (width x height pixels),
 * .svg or .pdf (width x height points). Every figure has a title, axis
 * labels with units and a legend where lines or colours need one.
 *
 *  curves     training curves of one or more metrics files (JSON lines of
 *             qgate train --metrics) overlaid, one panel per quantity
 *             present: loss, accuracy (%), learning rate, gating sparsity
 *             (%), FLOP reduction (x), compression (x); train solid, test
 *             dashed, one colour per run.
 *  layers     per-layer bars: sparsity, FLOP reduction, weight bits,
 *             parameters, mean threshold, PACT clip; from a checkpoint, the
 *             last line of a metrics file (sparsity_layers,
 *             flop_reduction_layers) and/or a JSON file with
 *             {"layers": [{"name", "sparsity", "flop_reduction", "wbits",
 *             ...}]} (qgate inspect --json writes one).
 *  hist       one weight histogram per conv/linear layer, the quantization
 *             grid of its stored precision marked.
 *  bitplanes  heat map of weight bit-plane density, layers x bits (MSB
 *             first).
 */
#ifndef QG_PLOT_PLOT_H
#define QG_PLOT_PLOT_H

#include <stddef.h>
#include "qgate/status.h"
#include "interop/ckview.h"

typedef struct qg_plot_opts {
    const char *out;          /* .png, .svg or .pdf */
    int width, height;        /* 0: defaults per kind */
    const char *title;        /* NULL: a default */
} qg_plot_opts;

qg_status qg__plot_curves(const qg_plot_opts *o, const char *const *files,
                          const char *const *labels, size_t n);

/* Any source may be NULL; at least one must give layers. */
qg_status qg__plot_layers(const qg_plot_opts *o, const qg_ckview *ck, const char *metrics,
                          const char *json);

/* `match`: only layers whose name contains it (NULL: all); `bits` > 0
 * marks every layer's grid at that precision instead of the stored one. */
qg_status qg__plot_hist(const qg_plot_opts *o, const qg_ckview *ck, const char *match, int bins,
                        int bits);

/* `bits` > 0: every layer's codes at that precision (float layers too). */
qg_status qg__plot_bitplanes(const qg_plot_opts *o, const qg_ckview *ck, int bits);

#endif
