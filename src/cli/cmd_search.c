/* src/cli/cmd_search.c: `qgate search`, ProQHA's progressive mixed-
 * precision search (src/train/search.c; docs/methods.md §8.4). */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qgate.h"
#include "cli/cli.h"
#include "train/search.h"

static volatile sig_atomic_t g_stop;

static void on_sigint(int sig)
{
    (void)sig;
    g_stop = 1;
    signal(SIGINT, SIG_DFL);
}

static void usage(FILE *f)
{
    fprintf(f,
"usage: qgate search --init CKPT --checkpoint FILE [options]\n\n"
"ProQHA's search: starting from a --proqha checkpoint (qgate train --proqha -w 8\n"
"-a 8), each step samples candidates that lower the bits of a random share of\n"
"the quantizers, scores each with one Adam step on a fixed batch (the smallest\n"
"score wins), fine-tunes the winner with Adam and a cosine schedule, tests it and\n"
"writes FILE with .stepN before its extension; FILE itself gets the last step.\n"
"It stops after --steps or once the weight-memory cost is within --budget.\n\n"
"search:\n"
"  --init CKPT           the starting model (trained with --proqha)\n"
"  --checkpoint FILE     where the steps' checkpoints go (required)\n"
"  --metrics FILE        append JSON lines: the quantizer names, then one line per\n"
"                        candidate and per step (step, kbits, score, cost,\n"
"                        cost_bitops, test_acc)\n"
"  --steps S             at most S steps (default 25)\n"
"  --lambda L            candidates per step (default 500)\n"
"  --interval I          bits a picked quantizer loses, not below 2 (default 1)\n"
"  --ratio R             share of the quantizers picked per candidate (default 0.5)\n"
"  --lower all|weights   which quantizers candidates may lower: all (default, as\n"
"                        the reference) or weights only, activations keeping\n"
"                        their bits (the budget counts weight memory only)\n"
"  --search-epochs E     fine-tuning epochs per step (default 30)\n"
"  --budget COST         stop once cost <= COST (W5 uniform: 0.15625, W3: 0.09375;\n"
"                        default 0: run all steps)\n"
"  --cand-test N         test images for each candidate's accuracy (default 1000;\n"
"                        0: none)\n"
"  --lr X                Adam learning rate of scoring and fine-tuning (default 1e-3)\n"
"  --clip X              gradient-norm clipping (default 5; 0: off)\n"
"data and run:\n"
"  --data NAME           as qgate train (default fashion-mnist); --data-dir DIR\n"
"  --limit-train N       fine-tune on the first N training images\n"
"  --limit-test N        test the fine-tuned steps on the first N test images\n"
"  --batch N             scoring and fine-tuning batch (default 128)\n"
"  --seed N              candidate sampling and data order (default 1)\n"
"  --device X            OpenCL device index or name substring\n");
}

enum { O_INIT = 256, O_CKPT, O_METRICS, O_STEPS, O_LAMBDA, O_INTERVAL, O_RATIO, O_EPOCHS,
       O_BUDGET, O_CAND, O_LR, O_CLIP, O_DATA, O_DATADIR, O_LTRAIN, O_LTEST, O_BATCH, O_SEED,
       O_DEVICE, O_LOWER, O_HELP };

static int num(const char *flag, const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= lo && v <= hi)) {
        fprintf(stderr, "qgate search: %s '%s': expected a number in [%g, %g]\n", flag, s, lo,
                hi);
        return 0;
    }
    *out = v;
    return 1;
}

static void on_log(void *user, const char *line)
{
    (void)user;
    printf("%s\n", line);
    fflush(stdout);
}

int qg_cli_search(int argc, char **argv)
{
    static const struct option opts[] = {
        {"init", 1, 0, O_INIT}, {"checkpoint", 1, 0, O_CKPT}, {"metrics", 1, 0, O_METRICS},
        {"steps", 1, 0, O_STEPS}, {"lambda", 1, 0, O_LAMBDA}, {"interval", 1, 0, O_INTERVAL},
        {"ratio", 1, 0, O_RATIO}, {"search-epochs", 1, 0, O_EPOCHS}, {"budget", 1, 0, O_BUDGET},
        {"cand-test", 1, 0, O_CAND}, {"lr", 1, 0, O_LR}, {"clip", 1, 0, O_CLIP},
        {"data", 1, 0, O_DATA}, {"data-dir", 1, 0, O_DATADIR},
        {"limit-train", 1, 0, O_LTRAIN}, {"limit-test", 1, 0, O_LTEST},
        {"batch", 1, 0, O_BATCH}, {"seed", 1, 0, O_SEED}, {"device", 1, 0, O_DEVICE},
        {"lower", 1, 0, O_LOWER}, {"help", 0, 0, O_HELP}, {0, 0, 0, 0}};
    qg_search_cfg c;
    qg__search_cfg_defaults(&c);
    double v;
    int o;
    opterr = 0;
    optind = 1;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        const char *flag = argv[optind - 1];
        switch (o) {
        case O_INIT: c.init_path = optarg; break;
        case O_CKPT: c.checkpoint_path = optarg; break;
        case O_METRICS: c.metrics_path = optarg; break;
        case O_DATA: c.train.data = optarg; break;
        case O_DATADIR: c.train.data_dir = optarg; break;
        case O_DEVICE: c.train.device = optarg; break;
        case O_HELP: usage(stdout); return 0;
        case O_LOWER:
            if (strcmp(optarg, "all") != 0 && strcmp(optarg, "weights") != 0) {
                fprintf(stderr, "qgate search: --lower '%s': expected all or weights\n",
                        optarg);
                return 2;
            }
            c.weights_only = strcmp(optarg, "weights") == 0;
            break;
        case O_STEPS: if (!num("--steps", optarg, 1, 1e6, &v)) return 2; c.steps = (int)v; break;
        case O_LAMBDA:
            if (!num("--lambda", optarg, 1, 1e6, &v)) return 2;
            c.lambda = (int)v;
            break;
        case O_INTERVAL:
            if (!num("--interval", optarg, 1, 30, &v)) return 2;
            c.interval = (int)v;
            break;
        case O_RATIO:
            if (!num("--ratio", optarg, 1e-6, 1, &v)) return 2;
            c.ratio = (float)v;
            break;
        case O_EPOCHS:
            if (!num("--search-epochs", optarg, 1, 1e5, &v)) return 2;
            c.train.epochs = (int)v;
            break;
        case O_BUDGET: if (!num("--budget", optarg, 0, 1, &v)) return 2; c.budget = v; break;
        case O_CAND:
            if (!num("--cand-test", optarg, 0, 1e9, &v)) return 2;
            c.cand_test = (size_t)v;
            break;
        case O_LR: if (!num("--lr", optarg, 1e-12, 10, &v)) return 2; c.train.optim.lr = (float)v; break;
        case O_CLIP:
            if (!num("--clip", optarg, 0, 1e9, &v)) return 2;
            c.train.optim.clip_norm = (float)v;
            break;
        case O_LTRAIN:
            if (!num("--limit-train", optarg, 0, 1e12, &v)) return 2;
            c.train.limit_train = (size_t)v;
            break;
        case O_LTEST:
            if (!num("--limit-test", optarg, 0, 1e12, &v)) return 2;
            c.train.limit_test = (size_t)v;
            break;
        case O_BATCH:
            if (!num("--batch", optarg, 1, 65536, &v)) return 2;
            c.train.batch = c.train.eval_batch = (int)v;
            break;
        case O_SEED: if (!num("--seed", optarg, 0, 1e18, &v)) return 2; c.train.seed = (uint64_t)v; break;
        default:
            fprintf(stderr, "qgate search: unknown or incomplete option '%s' (see qgate search "
                    "--help)\n", flag);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "qgate search: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (!c.init_path || !c.checkpoint_path) {
        fprintf(stderr, "qgate search: --init CKPT and --checkpoint FILE are required (see "
                "qgate search --help)\n");
        return 2;
    }
    c.log = on_log;
    c.train.stop = &g_stop;
    signal(SIGINT, on_sigint);
    qg_status st = qg__search_run(&c);
    signal(SIGINT, SIG_DFL);
    if (st != QG_OK) {
        fprintf(stderr, "qgate search: %s\n", qg_last_error());
        return st == QG_ERR_INTERRUPTED ? 130 : 1;
    }
    return 0;
}
