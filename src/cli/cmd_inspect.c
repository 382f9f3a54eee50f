/* src/cli/cmd_inspect.c: `qgate inspect`: what a checkpoint holds
 * (src/interop/ckview.h). */
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>

#include "qgate.h"
#include "cli/cli.h"
#include "interop/ckview.h"

static void usage(FILE *f)
{
    fprintf(f,
"usage: qgate inspect CHECKPOINT [--json]\n"
"\n"
"Prints what a qgate checkpoint (.safetensors) or a PyTorch .pth holds: the\n"
"architecture, input shape, method configuration and epoch from the metadata;\n"
"one row per conv and linear layer (weight shape, parameters, the precision\n"
"its weights are stored at, the density of each weight bit plane, PG/CG\n"
"threshold statistics, the PACT clip of its block); and totals (parameters,\n"
"model size at the stored precisions against float32). Needs no device.\n"
"\n"
"Precision: BSQ bit planes (<layer>.pweight/.nweight) give their own; a\n"
"'layer_bits' metadata object {\"<layer>\": bits} next; otherwise quantized\n"
"qgate ResNets keep their block convs at 'wbits', the rest in float32.\n"
"Bit-plane density: the share of weights whose sign-magnitude code has that\n"
"bit set, MSB first (code = round(|w| / max|w| * (2^bits - 1))).\n"
"\n"
"  --json      the same as one JSON object: {\"meta\": {...}, \"layers\": [{\"name\",\n"
"              \"shape\", \"params\", \"wbits\", \"bitplane_density\", \"threshold_mean\",\n"
"              \"threshold_min\", \"threshold_max\", \"pact_alpha\"}], \"totals\": {...}}\n"
"              (qgate plot layers reads it)\n");
}

/* A metadata value; numbers written as %.9g come back as %g. */
static const char *meta_or(const qg_ckview *v, const char *k, const char *def)
{
    static char ring[8][64];
    static int next;
    const char *s = qg__ckview_meta(v, k);
    if (!s)
        return def;
    char *end;
    double d = strtod(s, &end);
    if (end == s || *end || strchr(s, '.') == NULL)
        return s;
    char *b = ring[next++ % 8];
    snprintf(b, sizeof ring[0], "%g", d);
    return b;
}

static int meta_on(const qg_ckview *v, const char *k)
{
    const char *s = qg__ckview_meta(v, k);
    return s && atoi(s) != 0;
}

static void shape_str(const qg_ck_layer *l, char *buf, size_t cap)
{
    size_t k = 0;
    buf[0] = 0;
    for (int d = 0; d < l->ndim && k < cap; d++)
        k += (size_t)snprintf(buf + k, cap - k, "%s%lld", d ? "x" : "", (long long)l->shape[d]);
}

typedef struct totals {
    size_t params, weights, other;
    double bits_stored, bits_weights;
    int quantized_layers;
} totals;

static totals sum(const qg_ckview *v, const qg_ck_layer *ls, size_t n)
{
    totals t = {0};
    for (size_t i = 0; i < n; i++) {
        t.weights += ls[i].params;
        t.bits_weights += (double)ls[i].params * ls[i].bits;
        t.quantized_layers += ls[i].bits < 32;
    }
    /* every other float tensor (BN, biases, thresholds, alphas, statistics)
     * at 32 bits; CG's masks and BSQ's planes are structure, not storage */
    for (size_t i = 0; i < qg__ckview_count(v); i++) {
        const qg_ck_tensor *x = qg__ckview_at(v, i);
        size_t l = strlen(x->name);
        int weight = 0;
        for (size_t k = 0; k < n && !weight; k++) {
            size_t ln = strlen(ls[k].name);
            weight = strncmp(x->name, ls[k].name, ln) == 0 &&
                     (strcmp(x->name + ln, ".weight") == 0 || strcmp(x->name + ln, ".pweight") == 0 ||
                      strcmp(x->name + ln, ".nweight") == 0);
        }
        if (weight || (l > 5 && strcmp(x->name + l - 5, ".mask") == 0))
            continue;
        t.other += x->numel;
    }
    t.params = t.weights + t.other;
    t.bits_stored = t.bits_weights + 32.0 * (double)t.other;
    return t;
}

static void method_line(const qg_ckview *v, const qg_ck_layer *ls, size_t n, char *buf,
                        size_t cap)
{
    int bsq = 0;
    for (size_t i = 0; i < n; i++)
        bsq |= ls[i].bsq;
    size_t k = 0;
    int wb = atoi(meta_or(v, "wbits", "32")), ab = atoi(meta_or(v, "abits", "32"));
    buf[0] = 0;
#define ADD(...) (k += (size_t)snprintf(buf + k, k < cap ? cap - k : 0, __VA_ARGS__))
    if (meta_on(v, "pg"))
        ADD("%sprecision gating (w%d a%d, %s prediction bits, target %s, sigma %s%s)",
            k ? ", " : "", wb, ab, meta_or(v, "pred_bits", "?"), meta_or(v, "gtar", "?"),
            meta_or(v, "sigma", "?"), meta_on(v, "spbp") ? ", sparse bp" : "");
    else if (meta_on(v, "psgd"))
        ADD("%sPSGD: float weights trained toward a %d-bit grid (lambda_s %s%s)", k ? ", " : "",
            wb, meta_or(v, "lambda_s", "?"), meta_on(v, "first_last_quant") ? ", first-last" : "");
    else if (strstr(meta_or(v, "methods", ""), "proqha"))
        ADD("%sProQHA (DoReFa weights, PACT activations, per-quantizer bits; started at "
            "w%d a%d%s)", k ? ", " : "", wb, ab, meta_on(v, "pq_float") ? ", float" : "");
    else if (wb < 32)
        ADD("%squantized (w%d a%d)", k ? ", " : "", wb, ab);
    if (meta_on(v, "cg"))
        ADD("%schannel gating (%s partitions%s%s, target %s%s)%s", k ? ", " : "",
            meta_or(v, "partitions", "?"), meta_on(v, "cg_group") ? ", group" : "",
            meta_on(v, "cg_shuffle") ? ", shuffle" : "", meta_or(v, "gtar", "?"),
            meta_on(v, "spbp") ? ", sparse bp" : "", meta_on(v, "postact") ? ", post-activated" : "");
    if (meta_on(v, "pact"))
        ADD("%sPACT", k ? ", " : "");
    if (bsq)
        ADD("%sBSQ bit planes (precision per layer; sign bit not counted)", k ? ", " : "");
    if (qg__ckview_meta(v, "method"))
        ADD("%s%s", k ? ", " : "", qg__ckview_meta(v, "method"));
    if (!k)
        ADD("full precision");
#undef ADD
}

static int print_json(const qg_ckview *v, const qg_ck_layer *ls, size_t n, const totals *t)
{
    json_t *root = json_object(), *meta = json_object(), *layers = json_array();
    for (size_t i = 0; i < qg__ckview_meta_count(v); i++) {
        const char *k, *val;
        qg__ckview_meta_at(v, i, &k, &val);
        json_object_set_new(meta, k, json_string(val));
    }
    for (size_t i = 0; i < n; i++) {
        const qg_ck_layer *l = &ls[i];
        json_t *o = json_object(), *sh = json_array(), *dn = json_array();
        for (int d = 0; d < l->ndim; d++)
            json_array_append_new(sh, json_integer(l->shape[d]));
        for (int b = 0; b < l->nplanes; b++)
            json_array_append_new(dn, json_real(l->density[b]));
        json_object_set_new(o, "name", json_string(l->name));
        json_object_set_new(o, "kind", json_string(l->conv ? "conv" : "linear"));
        json_object_set_new(o, "shape", sh);
        json_object_set_new(o, "params", json_integer((json_int_t)l->params));
        json_object_set_new(o, "wbits", json_integer(l->bits));
        if (l->bsq)
            json_object_set_new(o, "bsq", json_true());
        json_object_set_new(o, "bitplane_density", dn);
        if (l->has_thr) {
            json_object_set_new(o, "threshold_mean", json_real(l->thr_mean));
            json_object_set_new(o, "threshold_min", json_real(l->thr_min));
            json_object_set_new(o, "threshold_max", json_real(l->thr_max));
        }
        if (l->has_alpha)
            json_object_set_new(o, "pact_alpha", json_real(l->alpha));
        json_array_append_new(layers, o);
    }
    json_t *tt = json_object();
    json_object_set_new(tt, "params", json_integer((json_int_t)t->params));
    json_object_set_new(tt, "weights", json_integer((json_int_t)t->weights));
    json_object_set_new(tt, "bytes_float32", json_real(t->params * 4.0));
    json_object_set_new(tt, "bytes_stored", json_real(t->bits_stored / 8));
    json_object_set_new(tt, "weight_compression",
                        json_real(t->bits_weights > 0 ? 32.0 * t->weights / t->bits_weights : 1));
    json_object_set_new(root, "meta", meta);
    json_object_set_new(root, "layers", layers);
    json_object_set_new(root, "totals", tt);
    int rc = json_dumpf(root, stdout, JSON_INDENT(1) | JSON_PRESERVE_ORDER) == 0 ? 0 : 1;
    putchar('\n');
    json_decref(root);
    return rc;
}

int qg_cli_inspect(int argc, char **argv)
{
    static const struct option opts[] = {{"json", 0, 0, 'j'}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    int json = 0, c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'j': json = 1; break;
        case 'h': usage(stdout); return 0;
        default:
            fprintf(stderr, "qgate inspect: unknown option '%s'\n", argv[optind - 1]);
            return 2;
        }
    }
    if (optind != argc - 1) {
        usage(stderr);
        return 2;
    }
    const char *path = argv[optind];
    qg_ckview *v;
    if (qg__ckview_open(path, &v) != QG_OK) {
        fprintf(stderr, "qgate inspect: %s\n", qg_last_error());
        return 1;
    }
    const qg_ck_layer *ls;
    size_t n = qg__ckview_layers(v, &ls);
    totals t = sum(v, ls, n);
    if (json) {
        int rc = print_json(v, ls, n, &t);
        qg__ckview_free(v);
        return rc;
    }
    char m[512];
    method_line(v, ls, n, m, sizeof m);
    printf("%s\n", path);
    printf("  model    %s, shortcut %s, input %sx%sx%s, %s classes, dataset %s\n",
           meta_or(v, "arch", "?"), meta_or(v, "shortcut", "?"), meta_or(v, "in_channels", "?"),
           meta_or(v, "in_height", "?"), meta_or(v, "in_width", "?"), meta_or(v, "classes", "?"),
           meta_or(v, "dataset", "?"));
    printf("  method   %s\n", m);
    printf("  training epoch %s, step %s, optimizer %s, base lr %s, seed %s\n",
           meta_or(v, "epoch", "?"), meta_or(v, "step", "?"), meta_or(v, "optimizer", "?"),
           meta_or(v, "base_lr", "?"), meta_or(v, "seed", "?"));
    if (qg__ckview_meta(v, "converted_from")) {
        printf("  source   %s %s", meta_or(v, "converted_from", ""), meta_or(v, "source_file", ""));
        for (size_t i = 0; i < qg__ckview_meta_count(v); i++) {
            const char *k, *val;
            qg__ckview_meta_at(v, i, &k, &val);
            if (strncmp(k, "pth.", 4) == 0)
                printf(", %s = %.60s", k + 4, meta_or(v, k, val));
        }
        printf("\n");
    }
    int any_thr = 0, any_alpha = 0, maxp = 0;
    for (size_t i = 0; i < n; i++) {
        any_thr |= ls[i].has_thr;
        any_alpha |= ls[i].has_alpha;
        if (ls[i].bits < 32 && ls[i].nplanes > maxp)
            maxp = ls[i].nplanes;
    }
    printf("\n%-24s %-12s %8s %4s", "layer", "weights", "params", "bits");
    if (maxp)
        printf("  %-*s", 4 * maxp, "bit planes % (MSB..LSB)");
    if (any_thr)
        printf("  %-26s", "threshold mean [min, max]");
    if (any_alpha)
        printf("  %7s", "PACT a");
    printf("\n");
    for (size_t i = 0; i < n; i++) {
        const qg_ck_layer *l = &ls[i];
        char sh[48];
        shape_str(l, sh, sizeof sh);
        printf("%-24s %-12s %8zu %4d", l->name, sh, l->params, l->bits);
        if (maxp) {
            char d[128] = "";
            size_t k = 0;
            for (int b = 0; l->bits < 32 && b < l->nplanes && k < sizeof d; b++)
                k += (size_t)snprintf(d + k, sizeof d - k, "%4.0f", 100 * l->density[b]);
            printf("  %-*s", 4 * maxp, l->bits < 32 ? d : "   (float)");
        }
        if (any_thr) {
            char th[64] = "";
            if (l->has_thr)
                snprintf(th, sizeof th, "%.3f [%.3f, %.3f]", l->thr_mean, l->thr_min, l->thr_max);
            printf("  %-26s", th);
        }
        if (any_alpha) {
            if (l->has_alpha)
                printf("  %7.3f", l->alpha);
            else
                printf("  %7s", "");
        }
        printf("\n");
    }
    printf("\ntotal: %zu values (%zu in %zu conv/linear weights, %zu others: batch norm, "
           "biases, thresholds, clips); %.1f KiB at "
           "float32, %.1f KiB at the stored precisions (%.2fx)",
           t.params, t.weights, n, t.other, t.params * 4.0 / 1024, t.bits_stored / 8 / 1024,
           t.bits_stored > 0 ? 32.0 * t.params / t.bits_stored : 1.0);
    if (t.quantized_layers)
        printf("; weights alone %.2fx (%d of %zu layers quantized)",
               32.0 * t.weights / t.bits_weights, t.quantized_layers, n);
    printf("\n");
    qg__ckview_free(v);
    return 0;
}
