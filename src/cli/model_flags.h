/* src/cli/model_flags.h: the method flags that choose a model variant
 * (quantization, PACT, precision gating), shared by `qgate train`,
 * `qgate eval` and `qgate bench train`: one option table, one parser, one
 * set of checks and one help text, so the commands cannot drift apart.
 *
 * Use: append qg_cli_model_options to the command's getopt_long table
 * (qg_cli_options_join) and QG_CLI_MODEL_SHORTOPTS to its short options,
 * hand every option the command does not handle itself to
 * qg_cli_model_flag, then call qg_cli_model_flags_finish. A new method
 * (channel gating, ...) adds its fields, options, cases and checks here
 * and every command gets it. Messages go to stderr, prefixed "qgate CMD:". */
#ifndef QG_CLI_MODEL_FLAGS_H
#define QG_CLI_MODEL_FLAGS_H

#include <getopt.h>
#include <stddef.h>

#include "model/nodes_cg.h"
#include "model/nodes_quant.h"

typedef struct qg_cli_model_flags {
    int quant, pg, pact;        /* the variant, as in qg_train_cfg */
    qg_pg_cfg qcfg;             /* bits, prediction bits, gating target, sigma, spbp */
    int cg, postact;            /* channel gating, post-activated blocks */
    qg_cg_cfg cgcfg;            /* partitions, group, shuffle, ginit, alpha */
    int have_w, have_a, have_pb; /* given on the command line */
    int have_sigma, have_cg_opt;
} qg_cli_model_flags;

#define QG_CLI_MODEL_SHORTOPTS "w:a:"

#define QG_CLI_MODEL_HELP                                                                   \
    "quantization and precision gating (Zhang et al.; docs/methods.md §2, §5):\n"           \
    "  -w, --wbits N         weight bits of the block convs (2..16; default 8)\n"           \
    "  -a, --abits N         activation bits of the block convs (2..16; default 8)\n"       \
    "                        (-w/-a alone train the quantized ResNet without gating)\n"     \
    "  --pact                PACT clipping (learned alpha, one per block) instead of ReLU\n" \
    "  --pg                  precision gating: each block's conv1 is a PGConv2d\n"          \
    "  --pb, --pred-bits N   prediction (MSB) bits, 1 <= N < --abits\n"                     \
    "  --gtar X              gating target for the thresholds (default 0; the PG\n"         \
    "                        script uses 1, the CG scripts 1.0 with --pt 4 and 0.6\n"     \
    "                        with --postact --pt 2)\n"                                     \
    "  --sg, --sigma X       gating loss coefficient: X*||delta-g|| with --pg (default\n"  \
    "                        0.001), X*sum (delta-g)^2 with --cg (default 1e-4, the\n"     \
    "                        factor the CG reference hard-codes)\n"                        \
    "  --spbp                sparse back-prop: gate gradients only where updated\n"        \
    "                        (--pg and --cg)\n"                                            \
    "channel gating (Hua et al.; docs/methods.md §4; full-precision ResNet with ReLUs):\n" \
    "  --cg                  each block's conv1 is a CGConv2d: a base path over 1/N of\n"  \
    "                        the input channels decides per output whether the rest\n"    \
    "                        is computed. Implies the reference's weight decay: only\n"   \
    "                        on conv and linear weights (not BN, biases, thresholds)\n"   \
    "  --pt N                partitions: the base path sees 1/N of the channels; N in\n"  \
    "                        2, 4, 8, 16 (must divide 16, 32, 64; default 4)\n"          \
    "  --group               block-diagonal base path (a group conv; the scripts use\n"   \
    "                        it); default: the first C/N input channels everywhere\n"     \
    "  --shuffle             channel shuffle (N groups) before both paths\n"               \
    "  --gi X                initial threshold (default 0.0)\n"                           \
    "  --alpha X             slope of the gate's sigmoid surrogate gradient (default 2.0)\n" \
    "  --postact             post-activated blocks: both convs gated, no ReLU after the\n" \
    "                        add (the scripts: --pt 2 --gtar 0.6 --lr 0.08 --wd 3e-4)\n"  \
    "  reference recipes (dnn-gating scripts/train_cg*.sh), both with --group --spbp:\n"  \
    "    --cg --pt 4 --gtar 1\n"                                                          \
    "    --cg --postact --pt 2 --gtar 0.6 --lr 0.08 --wd 3e-4\n"

/* Room a command's option table leaves for qg_cli_model_options (its
 * entries and terminator; model_flags.c checks it holds them). */
#define QG_CLI_MODEL_NOPTIONS 32

/* getopt_long entries of the flags, terminated by a zero entry. */
extern const struct option qg_cli_model_options[];

/* The defaults of qg__train_cfg_defaults (full precision; 8/8 bits and 4
 * prediction bits once quantization or PG is asked for). */
void qg_cli_model_flags_init(qg_cli_model_flags *f);

/* out = the command's options `cmd` followed by qg_cli_model_options and
 * a terminator; returns 0 (out untouched) when `cap` entries are too few. */
int qg_cli_options_join(struct option *out, size_t cap, const struct option *cmd);

/* Handles one getopt_long result: 1 = a model flag, stored; 0 = not a
 * model flag; -1 = a model flag with an invalid value (message printed). */
int qg_cli_model_flag(const char *cmd, int opt, const char *arg, qg_cli_model_flags *f);

/* Checks between flags (--pg needs --pb < --abits, --pb only with --pg,
 * --spbp with --pg or --cg, --cg excludes -w/-a/--pact/--pg, the CG
 * options need --cg) and sets f->quant (and, with --cg, the CG loss
 * factor unless --sg was given); returns 0 after printing why when the
 * combination is invalid. */
int qg_cli_model_flags_finish(const char *cmd, qg_cli_model_flags *f);

/* Copies the method fields (quant, pg, pact, qcfg, cg, postact, cgcfg)
 * from src to dst, any two structs that name them alike: the flags, the
 * training configuration, the bench configuration. */
#define QG_CLI_COPY_METHOD(dst, src)                                                      \
    do {                                                                                \
        (dst).quant = (src).quant;                                                      \
        (dst).pg = (src).pg;                                                            \
        (dst).pact = (src).pact;                                                        \
        (dst).qcfg = (src).qcfg;                                                        \
        (dst).cg = (src).cg;                                                            \
        (dst).postact = (src).postact;                                                  \
        (dst).cgcfg = (src).cgcfg;                                                      \
    } while (0)

/* Strict number parsing for flags: the whole string must be a number in
 * the range; otherwise a message naming the flag is printed and 0 is
 * returned. */
int qg_cli_parse_long(const char *cmd, const char *flag, const char *v, long lo, long hi,
                      long *out);
int qg_cli_parse_float(const char *cmd, const char *flag, const char *v, double lo, double hi,
                       float *out);

#endif
