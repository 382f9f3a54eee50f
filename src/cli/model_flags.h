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

#include "model/nodes_quant.h"

typedef struct qg_cli_model_flags {
    int quant, pg, pact;        /* the variant, as in qg_train_cfg */
    qg_pg_cfg qcfg;             /* bits, prediction bits, gating target, sigma, spbp */
    int have_w, have_a, have_pb; /* given on the command line */
} qg_cli_model_flags;

#define QG_CLI_MODEL_SHORTOPTS "w:a:"

#define QG_CLI_MODEL_HELP                                                                   \
    "quantization and precision gating (spec: PG, Fan et al.):\n"                           \
    "  -w, --wbits N         weight bits of the block convs (2..16; default 8)\n"           \
    "  -a, --abits N         activation bits of the block convs (2..16; default 8)\n"       \
    "                        (-w/-a alone train the quantized ResNet without gating)\n"     \
    "  --pact                PACT clipping (learned alpha, one per block) instead of ReLU\n" \
    "  --pg                  precision gating: each block's conv1 is a PGConv2d\n"          \
    "  --pb, --pred-bits N   prediction (MSB) bits, 1 <= N < --abits\n"                     \
    "  --gtar X              gating target for the thresholds (default 0)\n"                \
    "  --sg, --sigma X       gating loss coefficient (default 0.001)\n"                     \
    "  --spbp                sparse back-prop: gate gradients only where updated\n"

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

/* Checks between flags (--pg needs --pb < --abits, --pb and --spbp only
 * with --pg) and sets f->quant; returns 0 after printing why when the
 * combination is invalid. */
int qg_cli_model_flags_finish(const char *cmd, qg_cli_model_flags *f);

/* Strict number parsing for flags: the whole string must be a number in
 * the range; otherwise a message naming the flag is printed and 0 is
 * returned. */
int qg_cli_parse_long(const char *cmd, const char *flag, const char *v, long lo, long hi,
                      long *out);
int qg_cli_parse_float(const char *cmd, const char *flag, const char *v, double lo, double hi,
                       float *out);

#endif
