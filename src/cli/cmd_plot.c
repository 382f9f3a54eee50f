/* src/cli/cmd_plot.c: `qgate plot` (src/plot/plot.h). */
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qgate.h"
#include "cli/cli.h"
#include "interop/ckview.h"
#include "plot/plot.h"

static void usage(FILE *f)
{
    fprintf(f,
"usage: qgate plot KIND -o OUT.{png,svg,pdf} [options] [CHECKPOINT]\n"
"\n"
"Draws a figure with Cairo; the format follows OUT's extension (PNG in pixels,\n"
"SVG and PDF in points).\n"
"\n"
"kinds:\n"
"  curves     --metrics FILE [--metrics FILE2 ...]: training curves of qgate\n"
"             train --metrics files overlaid (loss, accuracy %%, learning rate,\n"
"             gating sparsity %%, FLOP reduction, compression, as present);\n"
"             train solid, test dashed, one colour per file (--label NAME each)\n"
"  layers     [CHECKPOINT] [--metrics FILE] [--json FILE]: per-layer bars:\n"
"             weight bits, parameters, mean gating threshold and PACT clip from a\n"
"             checkpoint; sparsity and FLOP reduction per layer from the last line\n"
"             of a metrics file; any of them from a JSON object {\"layers\":\n"
"             [{\"name\", \"sparsity\", \"flop_reduction\", \"wbits\", \"params\",\n"
"             \"threshold_mean\", \"pact_alpha\"}]} (qgate inspect --json writes one)\n"
"  hist       CHECKPOINT: a weight histogram per conv/linear layer with the\n"
"             quantization levels of its stored precision marked\n"
"             (--layers SUBSTRING selects, --bins N, --bits N marks N-bit levels)\n"
"  bitplanes  CHECKPOINT: heat map of weight bit-plane density, layers x bits\n"
"             (--bits N shows every layer's weights as N-bit codes)\n"
"\n"
"CHECKPOINT is a qgate .safetensors or a PyTorch .pth.\n"
"\n"
"  -o, --output FILE    the figure (required)\n"
"  --size WxH           pixels or points (default per kind)\n"
"  --title TEXT\n");
}

int qg_cli_plot(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *kind = argv[1];
    static const struct option opts[] = {
        {"output", 1, 0, 'o'}, {"metrics", 1, 0, 'm'}, {"label", 1, 0, 'l'},
        {"json", 1, 0, 'j'}, {"layers", 1, 0, 'L'}, {"bins", 1, 0, 'b'}, {"bits", 1, 0, 'B'},
        {"size", 1, 0, 's'}, {"title", 1, 0, 't'}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    qg_plot_opts po = {0};
    const char *metrics[16], *labels[16] = {0}, *json = NULL, *match = NULL;
    size_t nm = 0, nl = 0;
    int bins = 60, bits = 0, c;
    optind = 2;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "o:", opts, NULL)) != -1) {
        switch (c) {
        case 'o': po.out = optarg; break;
        case 'm':
            if (nm == 16) {
                fprintf(stderr, "qgate plot: at most 16 --metrics files\n");
                return 2;
            }
            metrics[nm++] = optarg;
            break;
        case 'l':
            if (nl < 16)
                labels[nl++] = optarg;
            break;
        case 'j': json = optarg; break;
        case 'L': match = optarg; break;
        case 'b': bins = atoi(optarg); break;
        case 'B': bits = atoi(optarg); break;
        case 's':
            if (sscanf(optarg, "%dx%d", &po.width, &po.height) != 2) {
                fprintf(stderr, "qgate plot: --size takes WxH (e.g. 1200x800), not '%s'\n",
                        optarg);
                return 2;
            }
            break;
        case 't': po.title = optarg; break;
        case 'h': usage(stdout); return 0;
        default:
            fprintf(stderr, "qgate plot: unknown or incomplete option '%s'\n", argv[optind - 1]);
            return 2;
        }
    }
    if (!po.out) {
        fprintf(stderr, "qgate plot: -o OUT.png|svg|pdf is required\n");
        return 2;
    }
    if (bits < 0 || bits > QG_CK_MAX_BITS) {
        fprintf(stderr, "qgate plot: --bits must be in 1..%d\n", QG_CK_MAX_BITS);
        return 2;
    }
    const char *ckpath = optind < argc ? argv[optind] : NULL;
    if (optind + 1 < argc) {
        fprintf(stderr, "qgate plot: one checkpoint at most ('%s' is extra)\n", argv[optind + 1]);
        return 2;
    }
    int needs_ck = strcmp(kind, "hist") == 0 || strcmp(kind, "bitplanes") == 0;
    if (strcmp(kind, "curves") != 0 && strcmp(kind, "layers") != 0 && !needs_ck) {
        fprintf(stderr, "qgate plot: unknown kind '%s' (curves, layers, hist, bitplanes)\n",
                kind);
        return 2;
    }
    if (needs_ck && !ckpath) {
        fprintf(stderr, "qgate plot %s: give a checkpoint (.safetensors or .pth)\n", kind);
        return 2;
    }
    qg_ckview *ck = NULL;
    if (ckpath && strcmp(kind, "curves") != 0 && qg__ckview_open(ckpath, &ck) != QG_OK) {
        fprintf(stderr, "qgate plot: %s\n", qg_last_error());
        return 1;
    }
    qg_status st;
    if (strcmp(kind, "curves") == 0)
        st = qg__plot_curves(&po, metrics, labels, nm);
    else if (strcmp(kind, "layers") == 0)
        st = qg__plot_layers(&po, ck, nm ? metrics[0] : NULL, json);
    else if (strcmp(kind, "hist") == 0)
        st = qg__plot_hist(&po, ck, match, bins, bits);
    else
        st = qg__plot_bitplanes(&po, ck, bits);
    qg__ckview_free(ck);
    if (st != QG_OK) {
        fprintf(stderr, "qgate plot: %s\n", qg_last_error());
        return 1;
    }
    printf("wrote %s\n", po.out);
    return 0;
}
