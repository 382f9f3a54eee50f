/* src/cli/cmd_tune.c: `qgate tune`. */
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qgate.h"
#include "cli/cli.h"
#include "cl/ctx.h"
#include "cl/tunedb.h"
#include "tune/shapes_file.h"
#include "tune/tuner.h"

static void usage(FILE *f)
{
    fprintf(f,
"usage: qgate tune [options]\n"
"\n"
"Finds the fastest correct parameters of every tunable kernel program on this\n"
"device and stores them in the user tuning database, which every later run\n"
"on the same device and driver uses. Each candidate is built, checked against\n"
"the C reference and timed with profiling events (1 warm-up, min of --runs);\n"
"a candidate that fails to build, run or verify is skipped with a note. The\n"
"three fastest and the default are then re-timed interleaved (2*runs+1 runs\n"
"each) and the lowest median wins, so a lucky minimum on a busy machine does\n"
"not. CLBlast's Xgemm is tuned through CLBlastOverrideParameters against its\n"
"built-in parameters. Compare the result with qgate bench kernels.\n"
"\n"
"With --shapes FILE, the direct 3x3 convolution (conv_direct) is tuned once\n"
"per shape the file lists, and each winner is stored under that shape's class\n"
"(c<C>k<K>h<H>w<W>s<stride>, g<G> after it for G groups; the batch is not part\n"
"of it). At run time a conv uses its class's entry, else the program's \"*\"\n"
"entry, else the defaults. Then, per ungrouped shape, gated layers' skipping\n"
"is weighed against that dense conv: the output-masked conv (conv_masked) is\n"
"timed with 0 to 100 percent of its outputs on, and the share up to which it is no\n"
"slower is stored as its PAY; a gated layer of that class then skips only\n"
"while it computes at most that share, and not at all at PAY 0 (--kernel\n"
"conv_masked: only this part). Other programs have no per-shape cases and\n"
"are not tuned in this mode.\n"
"FILE is JSON, every field but \"groups\" required, 3x3 kernels with padding 1:\n"
"  {\"schema\": 1, \"conv\": [{\"n\": 128, \"c\": 16, \"k\": 16, \"h\": 32, \"w\": 32,\n"
"                            \"stride\": 1}, ...]}\n"
"(n images of c x h x w into k channels, stride 1 or 2, ungrouped unless an\n"
"optional \"groups\": G divides c and k; example: bench/shapes/resnet20.json).\n"
"\n"
"  --kernel NAME         tune one program only (quant, pool, clblast_xgemm, ...;\n"
"                        a wrong name lists them)\n"
"  --shapes model|FILE   model: every program on ResNet-20 shapes, stored for\n"
"                        all shapes, then conv_masked's PAY per gated ResNet-20\n"
"                        shape on 28x28 and 32x32 inputs (default); FILE:\n"
"                        conv_direct and conv_masked's PAY per shape class of\n"
"                        the file's convolutions (see above)\n"
"  --budget SECONDS      search time per program, or per shape with --shapes\n"
"                        FILE (default 60; 0 = none),\n"
"                        checked between candidates (on PoCL a CLBlast\n"
"                        candidate alone compiles for ~15 s)\n"
"  --strategy S          exhaustive (default) | random | anneal\n"
"  --runs N              timed runs per candidate (default 5)\n"
"  --tune-db FILE        user database (default $QGATE_TUNE_DB, else\n"
"                        $XDG_CACHE_HOME/qgate/tuning.json)\n"
"  --dry-run             do not write the database\n"
"  --device N|NAME       OpenCL device\n");
}

int qg_cli_tune(int argc, char **argv)
{
    static const struct option opts[] = {
        {"kernel", 1, 0, 'k'}, {"shapes", 1, 0, 's'}, {"budget", 1, 0, 'b'},
        {"strategy", 1, 0, 'S'}, {"runs", 1, 0, 'r'}, {"tune-db", 1, 0, 't'},
        {"dry-run", 0, 0, 'n'}, {"device", 1, 0, 'd'}, {"verbose", 0, 0, 'v'},
        {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    qg_tune_opts o = {.budget_s = 60, .runs = 5, .strategy = QG_TUNE_EXHAUSTIVE};
    qg_ctx_opts co = {.profiling = 1};
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'k': o.kernel = optarg; break;
        case 's':
            /* "model" and "resnet20" name the built-in cases; anything
             * else is a shapes file. */
            o.shapes_file = strcmp(optarg, "model") != 0 && strcmp(optarg, "resnet20") != 0
                                ? optarg : NULL;
            break;
        case 'b': o.budget_s = atof(optarg); break;
        case 'S':
            if (strcmp(optarg, "exhaustive") == 0) o.strategy = QG_TUNE_EXHAUSTIVE;
            else if (strcmp(optarg, "random") == 0) o.strategy = QG_TUNE_RANDOM;
            else if (strcmp(optarg, "anneal") == 0) o.strategy = QG_TUNE_ANNEAL;
            else {
                fprintf(stderr, "qgate tune: --strategy must be exhaustive, random or anneal\n");
                return 2;
            }
            break;
        case 'r': o.runs = atoi(optarg); break;
        case 't': co.tune_db = optarg; break;
        case 'n': o.dry_run = 1; break;
        case 'd': co.device = optarg; break;
        case 'v': co.verbose = 1; break;
        case 'h': usage(stdout); return 0;
        default:
            fprintf(stderr, "qgate tune: unknown option '%s' (see qgate tune --help)\n",
                    argv[optind - 1]);
            return 2;
        }
    }
    if (o.runs < 1 || o.budget_s < 0) {
        fprintf(stderr, "qgate tune: --runs must be >= 1 and --budget >= 0\n");
        return 2;
    }
    if (o.shapes_file) {
        /* A bad file is reported before any device work. */
        qg_tune_shapes sh;
        if (qg__tune_shapes_load(NULL, o.shapes_file, &sh) != QG_OK) {
            fprintf(stderr, "qgate tune: --shapes: %s\n", qg_last_error());
            return 2;
        }
        qg__tune_shapes_free(&sh);
    }
    qg_ctx *ctx;
    if (qg_ctx_new(&co, &ctx) != QG_OK) {
        fprintf(stderr, "qgate tune: %s\n", qg_last_error());
        return 1;
    }
    const qg_device_info *d = qg_ctx_device(ctx);
    printf("tuning for device [%d] %s (driver %s), database %s\n", d->index, d->name, d->driver,
           o.dry_run ? "(dry run)" : qg__tunedb_user_path(ctx));
    const char *w = qg__tunedb_warnings(ctx);
    if (w[0])
        fprintf(stderr, "qgate tune: warning: %s\n", w);
    o.log = stdout;
    qg_status st = qg__tune_run(ctx, &o);
    if (st != QG_OK)
        fprintf(stderr, "qgate tune: %s\n", qg_ctx_last_error(ctx));
    qg_ctx_free(ctx);
    return st == QG_OK ? 0 : 1;
}
