/* src/cli/cmd_convert.c: `qgate convert`: PyTorch .pth -> safetensors
 * (src/interop/convert.h), and a float safetensors checkpoint -> BSQ's bit
 * representation (src/interop/convert_bsq.h). */
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qgate.h"
#include "cli/cli.h"
#include "interop/convert.h"
#include "interop/convert_bsq.h"
#include "interop/pth.h"
#include "train/checkpoint.h"

static void usage(FILE *f)
{
    fprintf(f,
"usage: qgate convert IN.pth -o OUT.safetensors [options]\n"
"       qgate convert FLOAT.safetensors --bits N -o BIN.safetensors\n"
"       qgate convert FLOAT.safetensors --scheme BSQ.safetensors -o BIN.safetensors\n"
"\n"
"A .safetensors input is a float qgate checkpoint to turn into BSQ's bit\n"
"representation (the start of `qgate train --bsq --init BIN.safetensors`):\n"
"every conv weight except option-B shortcuts, and the linear weight and\n"
"bias, become positive/negative bit planes X.pweight, X.nweight [..., N]\n"
"(MSB first) and a scale X.scale = max|w| (X.pbias, X.nbias, X.biasscale\n"
"for the bias); X.weight then holds the value of the bits.\n"
"  --bits N              precision of every converted tensor (1..16)\n"
"  --scheme FILE         each tensor takes the precision it has in FILE (a BSQ\n"
"                        checkpoint of the same architecture) instead\n"
"\n"
"A .pth input:\n"
"Reads a PyTorch checkpoint (torch.save: the zip file of torch >= 1.6 or the\n"
"legacy stream of older versions) holding a state dict, bare or under\n"
"'state_dict' next to 'epoch', 'acc', 'best_acc', ... No pickled code runs:\n"
"only dicts, lists, numbers, strings and tensors are read, and anything else\n"
"(a pickled model class, os.system) is refused with its name; save\n"
"model.state_dict(), not the model.\n"
"\n"
"Names are mapped to qgate's CIFAR ResNets: DataParallel's 'module.' is\n"
"dropped, fc.* becomes linear.*, downsample.* becomes shortcut.*, and\n"
"num_batches_tracked and PSG's *scale_value buffers are left out. The depth,\n"
"shortcut option, input channels and classes come from the tensors; epoch,\n"
"accuracies and other top-level scalars go into the metadata as pth.<key>.\n"
"The result is verified by building the model and loading it (needs an\n"
"OpenCL device; --no-verify skips it); tensors the model does not use are\n"
"then an error (a wrong --arch?) unless --drop-unused or --keep-unused.\n"
"\n"
"  -o, --output FILE     the safetensors checkpoint to write (required)\n"
"  --arch NAME           resnet20, resnet32, ... (default: from layer1's blocks)\n"
"  --shortcut A|B        (default: B when shortcut convs exist)\n"
"  --input CxHxW         input shape (default: conv1's channels, 32x32 for 3,\n"
"                        28x28 for 1)\n"
"  --dataset NAME        recorded for qgate eval (default: cifar10/cifar100/\n"
"                        fashion-mnist from channels and classes)\n"
"  --wbits N --abits N --pred-bits N\n"
"                        bit widths of a quantized or precision-gated model\n"
"  --meta KEY=VALUE      extra metadata (repeatable; e.g. partitions=4)\n"
"  --check FILE          safetensors with 'input' [N,C,H,W] and PyTorch's\n"
"                        'logits' [N,K]: runs the converted model on the input\n"
"                        and fails when a logit differs by more than --tol\n"
"  --tol X               (default 1e-4)\n"
"  --drop-unused         leave out tensors the qgate model does not use\n"
"  --keep-unused         keep them\n"
"  --no-verify           write without building the model\n"
"  --device N|NAME       OpenCL device for the verification\n");
}

typedef struct used_set {
    qg_model *m;
} used_set;

static int is_used(const char *name, void *arg)
{
    return qg__model_find_param(((used_set *)arg)->m, name) != NULL;
}

/* FLOAT.safetensors -> BIN.safetensors (bit planes). */
static int convert_bsq(const char *in, const char *out, int bits, const char *scheme)
{
    if (!bits && !scheme) {
        fprintf(stderr, "qgate convert: '%s' is a safetensors checkpoint: give --bits N or "
                "--scheme BSQ.safetensors to convert it to bit planes\n", in);
        return 2;
    }
    if (bits && scheme) {
        fprintf(stderr, "qgate convert: give --bits or --scheme, not both\n");
        return 2;
    }
    qg_bsq_convert_report r;
    if (qg__bsq_convert(in, bits, scheme, out, &r) != QG_OK) {
        fprintf(stderr, "qgate convert: %s\n", qg_last_error());
        return 1;
    }
    printf("converted %zu layers (%zu tensors, %zu values) of %s to bit planes: %.2f bits on "
           "average (%s), compression %.2fx\n", r.layers, r.tensors, r.values, in,
           r.bits / (double)r.values, scheme ? "precisions of --scheme" : "--bits",
           32.0 * (double)r.values / r.bits);
    printf("wrote %s\n", out);
    return 0;
}

int qg_cli_convert(int argc, char **argv)
{
    static const struct option opts[] = {
        {"output", 1, 0, 'o'}, {"arch", 1, 0, 'A'}, {"shortcut", 1, 0, 's'},
        {"input", 1, 0, 'i'}, {"dataset", 1, 0, 'D'}, {"wbits", 1, 0, 'w'},
        {"abits", 1, 0, 'a'}, {"pred-bits", 1, 0, 'p'}, {"meta", 1, 0, 'm'},
        {"check", 1, 0, 'c'}, {"tol", 1, 0, 't'}, {"keep-unused", 0, 0, 'k'}, {"drop-unused", 0, 0, 'u'},
        {"no-verify", 0, 0, 'n'}, {"device", 1, 0, 'd'}, {"help", 0, 0, 'h'},
        {"bits", 1, 0, 'b'}, {"scheme", 1, 0, 'S'}, {0, 0, 0, 0}};
    qg_convert_opts co = {0};
    const char *out = NULL, *check = NULL, *device = NULL, *scheme = NULL;
    int bits = 0;
    const char *extra[64];
    double tol = 1e-4;
    int keep = 0, drop = 0, verify = 1, c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "o:", opts, NULL)) != -1) {
        switch (c) {
        case 'o': out = optarg; break;
        case 'A': co.arch = optarg; break;
        case 's':
            if ((optarg[0] != 'A' && optarg[0] != 'B') || optarg[1]) {
                fprintf(stderr, "qgate convert: --shortcut takes A or B, not '%s'\n", optarg);
                return 2;
            }
            co.shortcut = optarg[0];
            break;
        case 'i':
            if (sscanf(optarg, "%dx%dx%d", &co.in_c, &co.in_h, &co.in_w) != 3 || co.in_c < 1 ||
                co.in_h < 1 || co.in_w < 1) {
                fprintf(stderr, "qgate convert: --input takes CxHxW (e.g. 3x32x32), not '%s'\n",
                        optarg);
                return 2;
            }
            break;
        case 'D': co.dataset = optarg; break;
        case 'w': co.wbits = atoi(optarg); break;
        case 'a': co.abits = atoi(optarg); break;
        case 'p': co.pred_bits = atoi(optarg); break;
        case 'm':
            if (co.nextra >= sizeof extra / sizeof *extra) {
                fprintf(stderr, "qgate convert: too many --meta\n");
                return 2;
            }
            extra[co.nextra++] = optarg;
            break;
        case 'c': check = optarg; break;
        case 't': tol = atof(optarg); break;
        case 'k': keep = 1; break;
        case 'u': drop = 1; break;
        case 'n': verify = 0; break;
        case 'd': device = optarg; break;
        case 'b': {
            char *e;
            long v = strtol(optarg, &e, 10);
            if (*e || v < 1 || v > 16) {
                fprintf(stderr, "qgate convert: --bits takes 1..16, not '%s'\n", optarg);
                return 2;
            }
            bits = (int)v;
            break;
        }
        case 'S': scheme = optarg; break;
        case 'h': usage(stdout); return 0;
        default:
            fprintf(stderr, "qgate convert: unknown or incomplete option '%s'\n",
                    argv[optind - 1]);
            return 2;
        }
    }
    co.extra_meta = extra;
    if (optind != argc - 1 || !out) {
        fprintf(stderr, "qgate convert: need one input file and -o OUT.safetensors\n\n");
        usage(stderr);
        return 2;
    }
    if (check && !verify) {
        fprintf(stderr, "qgate convert: --check needs the verification (drop --no-verify)\n");
        return 2;
    }
    const char *in = argv[optind];
    size_t inlen = strlen(in);
    /* by its first bytes, as qgate inspect decides: qgate train writes
     * safetensors under any name (runs/f.st) */
    int pth = qg__pth_sniff_file(in) == 1;
    if (!pth && (bits || scheme || (inlen > 12 && strcmp(in + inlen - 12, ".safetensors") == 0)))
        return convert_bsq(in, out, bits, scheme);
    if (bits || scheme) {
        fprintf(stderr, "qgate convert: --bits and --scheme convert a float safetensors "
                "checkpoint; '%s' is a PyTorch file (convert it without them first)\n", in);
        return 2;
    }
    const char *base = strrchr(in, '/');
    co.source = base ? base + 1 : in;

    int rc = 1;
    qg_pth *p = NULL;
    qg_conv_result *r = NULL;
    qg_ctx *ctx = NULL;
    qg_model *m = NULL;
    qg_st_file *f = NULL;
    if (qg__pth_read(in, &p) != QG_OK || qg__convert_pth(p, &co, &r) != QG_OK) {
        fprintf(stderr, "qgate convert: %s\n", qg_last_error());
        goto done;
    }
    printf("read %s (%s, %s): %zu tensors, %zu renamed, %zu left out%s%s%s\n", in,
           p->format == QG_PTH_ZIP ? "zip" : "legacy stream",
           p->state_key[0] ? p->state_key : "bare state dict", p->ntensors, r->renamed,
           r->dropped, r->dropped ? " (" : "", r->dropped_names, r->dropped ? ", ...)" : "");
    if (p->skipped[0])
        printf("not kept: %s\n", p->skipped);
    printf("model: %s, shortcut %s, input %sx%sx%s, %s classes%s%s\n", qg__convert_meta(r, "arch"),
           qg__convert_meta(r, "shortcut"), qg__convert_meta(r, "in_channels"),
           qg__convert_meta(r, "in_height"), qg__convert_meta(r, "in_width"),
           qg__convert_meta(r, "classes"), qg__convert_meta(r, "epoch") ? ", epoch " : "",
           qg__convert_meta(r, "epoch") ? qg__convert_meta(r, "epoch") : "");
    if (qg__convert_write(r, out) != QG_OK) {
        fprintf(stderr, "qgate convert: %s\n", qg_last_error());
        goto done;
    }
    if (!verify) {
        printf("wrote %s (%zu tensors; not verified)\n", out, r->n);
        rc = 0;
        goto done;
    }
    qg_ctx_opts cto = {.device = device};
    if (qg_ctx_new(&cto, &ctx) != QG_OK || qg__safetensors_read(out, &f) != QG_OK ||
        qg__interop_model_from_meta(ctx, f, out, &m) != QG_OK) {
        fprintf(stderr, "qgate convert: verification: %s\n", qg_last_error());
        goto done;
    }
    if (qg__checkpoint_load(m, f, out, 0) != QG_OK) {
        fprintf(stderr, "qgate convert: verification: %s\n(wrong --arch, --shortcut or method "
                "flags? qgate's names: conv1, bn1, layerS.B.conv1, layerS.B.shortcut.0, "
                "linear)\n", qg_last_error());
        goto done;
    }
    size_t before = r->n, unused = 0;
    char names[300] = "";
    used_set us = {m};
    for (size_t i = 0; i < r->n; i++)
        if (!is_used(r->tensors[i].name, &us) && unused++ < 3) {
            size_t l = strlen(names);
            snprintf(names + l, sizeof names - l, "%s%s", l ? ", " : "", r->tensors[i].name);
        }
    if (unused && !keep && !drop) {
        fprintf(stderr, "qgate convert: %zu tensors are not used by %s (%s%s): a wrong "
                "--arch or --shortcut? (--drop-unused leaves them out, --keep-unused keeps "
                "them)\n", unused, qg__convert_meta(r, "arch"), names, unused > 3 ? ", ..." : "");
        remove(out);
        goto done;
    }
    if (unused && drop) {
        qg__convert_filter(r, is_used, &us);
        if (qg__convert_write(r, out) != QG_OK) {
            fprintf(stderr, "qgate convert: %s\n", qg_last_error());
            goto done;
        }
    }
    printf("verified: %s builds and loads all %d parameter tensors (%zu parameters)\n",
           qg__convert_meta(r, "arch"), m->nparams, qg__model_param_count(m));
    if (unused)
        printf("%zu tensors the model does not use %s (%s%s)\n", unused,
               drop ? "left out" : "kept", names, unused > 3 ? ", ..." : "");
    (void)before;
    if (check) {
        double d, ref;
        if (qg__convert_check_logits(m, check, &d, &ref) != QG_OK) {
            fprintf(stderr, "qgate convert: --check: %s\n", qg_last_error());
            goto done;
        }
        printf("check: logits on %s differ from PyTorch's by at most %.3g (largest |logit| "
               "%.3g, tolerance %.3g)\n", check, d, ref, tol);
        if (!(d <= tol)) {
            fprintf(stderr, "qgate convert: --check failed: max |difference| %.3g > %.3g\n", d,
                    tol);
            goto done;
        }
    }
    printf("wrote %s (%zu tensors)\n", out, r->n);
    rc = 0;
done:
    qg__safetensors_free(f);
    qg__model_free(m);
    qg_ctx_free(ctx);
    qg__convert_free(r);
    qg__pth_free(p);
    return rc;
}
