/* src/cli/model_flags.c: the shared method flags (see model_flags.h). */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/model_flags.h"
#include "train/trainer.h"

/* Long-only flags use values far above the commands' own enums. */
enum {
    M_PACT = 0x4000, M_PG, M_PB, M_GTAR, M_SIGMA, M_SPBP, M_CG, M_PT, M_GI, M_ALPHA, M_GROUP,
    M_SHUFFLE, M_POSTACT
};

const struct option qg_cli_model_options[] = {
    {"wbits", 1, 0, 'w'}, {"abits", 1, 0, 'a'}, {"pact", 0, 0, M_PACT}, {"pg", 0, 0, M_PG},
    {"pb", 1, 0, M_PB}, {"pred-bits", 1, 0, M_PB}, {"gtar", 1, 0, M_GTAR},
    {"sg", 1, 0, M_SIGMA}, {"sigma", 1, 0, M_SIGMA}, {"spbp", 0, 0, M_SPBP},
    {"cg", 0, 0, M_CG}, {"pt", 1, 0, M_PT}, {"partitions", 1, 0, M_PT}, {"gi", 1, 0, M_GI},
    {"alpha", 1, 0, M_ALPHA}, {"group", 0, 0, M_GROUP}, {"shuffle", 0, 0, M_SHUFFLE},
    {"postact", 0, 0, M_POSTACT},
    {0, 0, 0, 0}};
_Static_assert(sizeof qg_cli_model_options / sizeof *qg_cli_model_options <=
                   QG_CLI_MODEL_NOPTIONS, "raise QG_CLI_MODEL_NOPTIONS");

int qg_cli_parse_long(const char *cmd, const char *flag, const char *v, long lo, long hi,
                      long *out)
{
    char *end;
    long x = strtol(v, &end, 10);
    if (*v == 0 || *end != 0 || x < lo || x > hi) {
        fprintf(stderr, "qgate %s: --%s expects an integer in %ld..%ld, got '%s'\n", cmd, flag,
                lo, hi, v);
        return 0;
    }
    *out = x;
    return 1;
}

int qg_cli_parse_float(const char *cmd, const char *flag, const char *v, double lo, double hi,
                       float *out)
{
    char *end;
    double x = strtod(v, &end);
    if (*v == 0 || *end != 0 || !(x >= lo && x <= hi)) {
        fprintf(stderr, "qgate %s: --%s expects a number in [%g, %g], got '%s'\n", cmd, flag,
                lo, hi, v);
        return 0;
    }
    *out = (float)x;
    return 1;
}

void qg_cli_model_flags_init(qg_cli_model_flags *f)
{
    qg_train_cfg c;
    qg__train_cfg_defaults(&c);
    memset(f, 0, sizeof *f);
    QG_CLI_COPY_METHOD(*f, c);
}

int qg_cli_options_join(struct option *out, size_t cap, const struct option *cmd)
{
    size_t a = 0, b = 0;
    while (cmd[a].name)
        a++;
    while (qg_cli_model_options[b].name)
        b++;
    if (a + b + 1 > cap)
        return 0;
    memcpy(out, cmd, a * sizeof *out);
    memcpy(out + a, qg_cli_model_options, (b + 1) * sizeof *out);
    return 1;
}

int qg_cli_model_flag(const char *cmd, int opt, const char *arg, qg_cli_model_flags *f)
{
    long v;
    switch (opt) {
    case 'w':
        if (!qg_cli_parse_long(cmd, "wbits", arg, 2, 16, &v))
            return -1;
        f->qcfg.wbits = (int)v;
        f->have_w = 1;
        return 1;
    case 'a':
        if (!qg_cli_parse_long(cmd, "abits", arg, 2, 16, &v))
            return -1;
        f->qcfg.abits = (int)v;
        f->have_a = 1;
        return 1;
    case M_PACT: f->pact = 1; return 1;
    case M_PG: f->pg = 1; return 1;
    case M_PB:
        if (!qg_cli_parse_long(cmd, "pb", arg, 1, 15, &v))
            return -1;
        f->qcfg.pred_bits = (int)v;
        f->have_pb = 1;
        return 1;
    case M_GTAR:
        return qg_cli_parse_float(cmd, "gtar", arg, -100, 100, &f->qcfg.gtar) ? 1 : -1;
    case M_SIGMA:
        f->have_sigma = 1;
        return qg_cli_parse_float(cmd, "sg", arg, 0, 100, &f->qcfg.sigma) ? 1 : -1;
    case M_SPBP: f->qcfg.spbp = 1; return 1;
    case M_CG: f->cg = 1; return 1;
    case M_PT:
        if (!qg_cli_parse_long(cmd, "pt", arg, 1, 64, &v))
            return -1;
        if (v < 2 || 16 % v) {
            fprintf(stderr, "qgate %s: --pt %ld must divide the channel counts of the gated "
                    "convs (16, 32, 64) and be at least 2: use 2, 4, 8 or 16\n", cmd, v);
            return -1;
        }
        f->cgcfg.partitions = (int)v;
        f->have_cg_opt = 1;
        return 1;
    case M_GI:
        f->have_cg_opt = 1;
        return qg_cli_parse_float(cmd, "gi", arg, -100, 100, &f->cgcfg.ginit) ? 1 : -1;
    case M_ALPHA:
        f->have_cg_opt = 1;
        return qg_cli_parse_float(cmd, "alpha", arg, 1e-6, 1000, &f->cgcfg.alpha) ? 1 : -1;
    case M_GROUP: f->cgcfg.group = 1; f->have_cg_opt = 1; return 1;
    case M_SHUFFLE: f->cgcfg.shuffle = 1; f->have_cg_opt = 1; return 1;
    case M_POSTACT: f->postact = 1; f->have_cg_opt = 1; return 1;
    default: return 0;
    }
}

int qg_cli_model_flags_finish(const char *cmd, qg_cli_model_flags *f)
{
    f->quant = (f->have_w || f->have_a) && !f->pg;
    if (f->pg && !f->have_pb) {
        fprintf(stderr, "qgate %s: --pg needs --pb N (prediction bits, fewer than --abits)\n", cmd);
        return 0;
    }
    if (f->pg && f->qcfg.pred_bits >= f->qcfg.abits) {
        fprintf(stderr, "qgate %s: --pb %d must be smaller than --abits %d (the MSB part of a "
                "%d-bit activation)\n", cmd, f->qcfg.pred_bits, f->qcfg.abits, f->qcfg.abits);
        return 0;
    }
    if (!f->pg && f->have_pb) {
        fprintf(stderr, "qgate %s: --pb only applies with --pg\n", cmd);
        return 0;
    }
    if (!f->pg && !f->cg && f->qcfg.spbp) {
        fprintf(stderr, "qgate %s: --spbp only applies with --pg or --cg\n", cmd);
        return 0;
    }
    if (f->cg && f->pg) {
        fprintf(stderr, "qgate %s: --cg and --pg are different gating methods; pick one\n",
                cmd);
        return 0;
    }
    if (f->cg && (f->have_w || f->have_a || f->pact)) {
        fprintf(stderr, "qgate %s: --cg trains the full-precision ResNet with ReLUs; -w, -a "
                "and --pact do not apply\n", cmd);
        return 0;
    }
    if (!f->cg && f->have_cg_opt) {
        fprintf(stderr, "qgate %s: --pt, --gi, --alpha, --group, --shuffle and --postact only "
                "apply with --cg\n", cmd);
        return 0;
    }
    if (f->cg) {
        f->quant = 0;
        /* The reference recipe: CE + 1e-4*sum (delta - g)^2 (docs/methods.md §4.5). */
        if (!f->have_sigma)
            f->qcfg.sigma = QG_CG_LOSS_COEF;
    }
    return 1;
}
