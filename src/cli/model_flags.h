/* src/cli/model_flags.h: the method flags (quantization, PACT, precision
 * and channel gating, and whatever src/method/methods.def registers),
 * shared by `qgate train`, `qgate eval` and `qgate bench train`. The
 * option table, the parser and the help text are generated from the
 * methods' option tables (src/method/method.h), so a new method's flags
 * appear in every command without edits here; validation is the method
 * configuration's own (qg__method_cfg_finish).
 *
 * Use: append qg_cli_model_options() to the command's getopt_long table
 * (qg_cli_options_join) and QG_CLI_MODEL_SHORTOPTS to its short options,
 * hand every option the command does not handle itself to
 * qg_cli_model_flag, then call qg_cli_model_flags_finish. Messages go to
 * stderr, prefixed "qgate CMD:". */
#ifndef QG_CLI_MODEL_FLAGS_H
#define QG_CLI_MODEL_FLAGS_H

#include <getopt.h>
#include <stdio.h>
#include <stddef.h>

#include "method/method.h"

typedef struct qg_cli_model_flags {
    qg_method_cfg mc;           /* the one method configuration */
} qg_cli_model_flags;

/* Short options of the method flags (from the options' short_flag). */
#define QG_CLI_MODEL_SHORTOPTS "w:a:"

/* Room a command's option table leaves for the method options (their
 * entries and terminator; model_flags.c checks it holds them). */
#define QG_CLI_MODEL_NOPTIONS 64

/* getopt_long entries of the flags, terminated by a zero entry. */
const struct option *qg_cli_model_options(void);

/* The methods' help: one block per method, its options with their
 * defaults, and its recipes. */
void qg_cli_model_help(FILE *f);

void qg_cli_model_flags_init(qg_cli_model_flags *f);

/* out = the command's options `cmd` followed by the method options and a
 * terminator; returns 0 (out untouched) when `cap` entries are too few. */
int qg_cli_options_join(struct option *out, size_t cap, const struct option *cmd);

/* Handles one getopt_long result: 1 = a method flag, stored; 0 = not a
 * method flag; -1 = a method flag with an invalid value (message printed). */
int qg_cli_model_flag(const char *cmd, int opt, const char *arg, qg_cli_model_flags *f);

/* Validates the combination and completes derived values (PG turns
 * quantization on); returns 0 after printing why when invalid. */
int qg_cli_model_flags_finish(const char *cmd, qg_cli_model_flags *f);

/* Strict number parsing for flags: the whole string must be a number in
 * the range; otherwise a message naming the flag is printed and 0 is
 * returned. */
int qg_cli_parse_long(const char *cmd, const char *flag, const char *v, long lo, long hi,
                      long *out);
int qg_cli_parse_float(const char *cmd, const char *flag, const char *v, double lo, double hi,
                       float *out);

#endif
