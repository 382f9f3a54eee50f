/* src/cli/cmd_train.c: `qgate train` and `qgate eval`. */
#include "config.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qgate.h"
#include "cli/cli.h"
#include "train/trainer.h"

static volatile sig_atomic_t g_stop;

static void on_sigint(int sig)
{
    (void)sig;
    g_stop = 1;
    /* A second Ctrl-C kills at once. */
    signal(SIGINT, SIG_DFL);
}

static void train_usage(FILE *f)
{
    fprintf(f,
"usage: qgate train [options]\n"
"\n"
"Trains a CNN on the device and evaluates it on the test split after every\n"
"epoch. Defaults: ResNet-20 on Fashion-MNIST (Debian's dataset-fashion-mnist),\n"
"SGD momentum 0.9, lr 0.1, weight decay 1e-4, cosine schedule, batch 128.\n"
"\n"
"model and data:\n"
"  --model NAME          resnet20 | resnet32 | resnet44 | resnet56 | resnet110\n"
"  --shortcut A|B        residual shortcut: zero-pad (A, default) or 1x1 conv (B)\n"
"  --data NAME           fashion-mnist (default) | mnist | cifar10 | cifar100\n"
"  --data-dir DIR        where the dataset files are (default: the Debian package's)\n"
"  --limit-train N       use only the first N training images\n"
"  --limit-test N        use only the first N test images\n"
"  --crop-pad N          random crop after zero padding by N pixels (default 2 for\n"
"                        28x28 data, 4 for CIFAR; 0 disables)\n"
"  --no-flip             disable random horizontal flips\n"
"optimisation:\n"
"  --epochs N            number of epochs (default 10)\n"
"  --batch N             training batch size (default 128)\n"
"  --eval-batch N        evaluation batch size (default 128)\n"
"  --optimizer sgd|adam  (default sgd)\n"
"  --lr X                base learning rate (default 0.1; use ~1e-3 with adam)\n"
"  --momentum X          SGD momentum (default 0.9)\n"
"  --nesterov            Nesterov momentum\n"
"  --wd X                weight decay (default 1e-4)\n"
"  --no-wd-bn            no weight decay on batch-norm parameters and biases\n"
"  --schedule KIND       cosine (default) | multistep | poly | const\n"
"  --milestones E1,E2    multistep epochs (default: 50%%,75%% of --epochs)\n"
"  --gamma X             multistep factor (default 0.1)\n"
"  --end-lr X            final lr of cosine/poly (default 0)\n"
"  --power X             poly power (default 1 = linear)\n"
"  --clip-grad X         clip the global gradient norm to X\n"
"  --seed N              initialisation, shuffling and augmentation seed (default 1)\n"
"quantization and precision gating (spec: PG, Fan et al.):\n"
"  -w, --wbits N         weight bits of the block convs (2..16; default 8)\n"
"  -a, --abits N         activation bits of the block convs (2..16; default 8)\n"
"                        (-w/-a alone train the quantized ResNet without gating)\n"
"  --pact                PACT clipping (learned alpha, one per block) instead of ReLU\n"
"  --pg                  precision gating: each block's conv1 is a PGConv2d\n"
"  --pb, --pred-bits N   prediction (MSB) bits, 1 <= N < --abits\n"
"  --gtar X              gating target for the thresholds (default 0; the PG\n"
"                        script uses 1, the CG scripts 1.0 with --pt 4 and 0.6\n"
"                        with --postact --pt 2)\n"
"  --sg, --sigma X       gating loss coefficient: X*||delta-g|| with --pg (default\n"
"                        0.001), X*sum (delta-g)^2 with --cg (default 1e-4, the\n"
"                        factor the CG reference hard-codes)\n"
"  --spbp                sparse back-prop: gate gradients only where updated\n"
"                        (--pg and --cg)\n"
"channel gating (spec: CG, Hua et al.; full-precision ResNet with ReLUs):\n"
"  --cg                  each block's conv1 is a CGConv2d: a base path over 1/N of\n"
"                        the input channels decides per output whether the rest\n"
"                        is computed. Implies the reference's weight decay: only\n"
"                        on conv and linear weights (not BN, biases, thresholds)\n"
"  --pt N                partitions: the base path sees 1/N of the channels; N in\n"
"                        2, 4, 8, 16 (must divide 16, 32, 64; default 4)\n"
"  --group               block-diagonal base path (a group conv; the scripts use\n"
"                        it); default: the first C/N input channels everywhere\n"
"  --shuffle             channel shuffle (N groups) before both paths\n"
"  --gi X                initial threshold (default 0.0)\n"
"  --alpha X             slope of the gate's sigmoid surrogate gradient (default 2.0)\n"
"  --postact             post-activated blocks: both convs gated, no ReLU after the\n"
"                        add (the scripts: --pt 2 --gtar 0.6 --lr 0.08 --wd 3e-4)\n"
"  reference recipes (DG:scripts/train_cg*.sh), both with --group --spbp:\n"
"    --cg --pt 4 --gtar 1\n"
"    --cg --postact --pt 2 --gtar 0.6 --lr 0.08 --wd 3e-4\n"
"output:\n"
"  --metrics FILE        append one JSON line per epoch (epoch, train_loss,\n"
"                        train_acc, test_loss, test_acc, img_per_s, lr, ...)\n"
"  --checkpoint FILE     write a safetensors checkpoint after every epoch (atomic)\n"
"  --resume FILE         continue from a checkpoint (weights, optimizer, schedule)\n"
"  --progress / --no-progress   force the progress line on or off (default: on a TTY)\n"
"  --device N|NAME       OpenCL device (default $QGATE_DEVICE, else 0)\n"
"  --verbose             log kernel builds\n"
"\n"
"Ctrl-C finishes the current batch, writes a checkpoint and exits with status 130.\n");
}

enum {
    O_MODEL = 256, O_SHORTCUT, O_DATA, O_DATA_DIR, O_LIMIT_TRAIN, O_LIMIT_TEST, O_CROP, O_NOFLIP,
    O_EPOCHS, O_BATCH, O_EVAL_BATCH, O_OPT, O_LR, O_MOM, O_NEST, O_WD, O_NOWDBN, O_SCHED,
    O_MILE, O_GAMMA, O_ENDLR, O_POWER, O_CLIP, O_SEED, O_METRICS, O_CKPT, O_RESUME, O_PROG,
    O_NOPROG, O_DEVICE, O_VERBOSE, O_HELP, O_CHECKPOINT_EVAL, O_PACT, O_PG, O_PB, O_GTAR,
    O_SIGMA, O_SPBP, O_CG, O_PT, O_GI, O_ALPHA, O_GROUP, O_SHUFFLE, O_POSTACT
};

static const struct option train_opts[] = {
    {"model", 1, 0, O_MODEL}, {"shortcut", 1, 0, O_SHORTCUT}, {"data", 1, 0, O_DATA},
    {"data-dir", 1, 0, O_DATA_DIR}, {"limit-train", 1, 0, O_LIMIT_TRAIN},
    {"limit-test", 1, 0, O_LIMIT_TEST}, {"crop-pad", 1, 0, O_CROP}, {"no-flip", 0, 0, O_NOFLIP},
    {"epochs", 1, 0, O_EPOCHS}, {"batch", 1, 0, O_BATCH}, {"eval-batch", 1, 0, O_EVAL_BATCH},
    {"optimizer", 1, 0, O_OPT}, {"lr", 1, 0, O_LR}, {"momentum", 1, 0, O_MOM},
    {"nesterov", 0, 0, O_NEST}, {"wd", 1, 0, O_WD}, {"no-wd-bn", 0, 0, O_NOWDBN},
    {"schedule", 1, 0, O_SCHED}, {"milestones", 1, 0, O_MILE}, {"gamma", 1, 0, O_GAMMA},
    {"end-lr", 1, 0, O_ENDLR}, {"power", 1, 0, O_POWER}, {"clip-grad", 1, 0, O_CLIP},
    {"seed", 1, 0, O_SEED}, {"metrics", 1, 0, O_METRICS}, {"checkpoint", 1, 0, O_CKPT},
    {"resume", 1, 0, O_RESUME}, {"progress", 0, 0, O_PROG}, {"no-progress", 0, 0, O_NOPROG},
    {"device", 1, 0, O_DEVICE}, {"verbose", 0, 0, O_VERBOSE}, {"help", 0, 0, O_HELP},
    {"wbits", 1, 0, 'w'}, {"abits", 1, 0, 'a'}, {"pact", 0, 0, O_PACT}, {"pg", 0, 0, O_PG},
    {"pb", 1, 0, O_PB}, {"pred-bits", 1, 0, O_PB}, {"gtar", 1, 0, O_GTAR},
    {"sg", 1, 0, O_SIGMA}, {"sigma", 1, 0, O_SIGMA}, {"spbp", 0, 0, O_SPBP},
    {"cg", 0, 0, O_CG}, {"pt", 1, 0, O_PT}, {"partitions", 1, 0, O_PT}, {"gi", 1, 0, O_GI},
    {"alpha", 1, 0, O_ALPHA}, {"group", 0, 0, O_GROUP}, {"shuffle", 0, 0, O_SHUFFLE},
    {"postact", 0, 0, O_POSTACT},
    {0, 0, 0, 0}};

static int parse_long(const char *cmd, const char *flag, const char *v, long lo, long hi,
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

static int parse_float(const char *cmd, const char *flag, const char *v, double lo, double hi,
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

/* Parses the shared options; returns -1 to continue, else an exit code. */
static int parse(const char *cmd, int argc, char **argv, qg_train_cfg *c, const char **ckpt,
                 void (*usage)(FILE *))
{
    int o, have_mile = 0, have_w = 0, have_a = 0, have_pb = 0, have_sigma = 0;
    int have_cg_opt = 0; /* --pt, --gi, --alpha, --group, --shuffle, --postact */
    long v;
    optind = 1;
    opterr = 0;
    while ((o = getopt_long(argc, argv, ":w:a:", train_opts, NULL)) != -1) {
        const char *name = optind > 0 && optind <= argc ? argv[optind - 1] : "";
        (void)name;
        switch (o) {
        case O_HELP: usage(stdout); return 0;
        case O_MODEL: c->model = optarg; break;
        case O_SHORTCUT:
            if ((optarg[0] != 'A' && optarg[0] != 'B') || optarg[1]) {
                fprintf(stderr, "qgate %s: --shortcut must be A or B, got '%s'\n", cmd, optarg);
                return 2;
            }
            c->shortcut = optarg[0];
            break;
        case O_DATA: c->data = optarg; break;
        case O_DATA_DIR: c->data_dir = optarg; break;
        case O_LIMIT_TRAIN:
            if (!parse_long(cmd, "limit-train", optarg, 1, 1L << 40, &v)) return 2;
            c->limit_train = (size_t)v;
            break;
        case O_LIMIT_TEST:
            if (!parse_long(cmd, "limit-test", optarg, 1, 1L << 40, &v)) return 2;
            c->limit_test = (size_t)v;
            break;
        case O_CROP:
            if (!parse_long(cmd, "crop-pad", optarg, 0, 64, &v)) return 2;
            c->crop_pad = (int)v;
            break;
        case O_NOFLIP: c->flip = 0; break;
        case O_EPOCHS:
            if (!parse_long(cmd, "epochs", optarg, 1, 100000, &v)) return 2;
            c->epochs = (int)v;
            break;
        case O_BATCH:
            if (!parse_long(cmd, "batch", optarg, 1, 65536, &v)) return 2;
            c->batch = (int)v;
            break;
        case O_EVAL_BATCH:
            if (!parse_long(cmd, "eval-batch", optarg, 1, 65536, &v)) return 2;
            c->eval_batch = (int)v;
            break;
        case O_OPT:
            if (strcmp(optarg, "sgd") == 0)
                c->optim.kind = QG_OPTIM_SGD;
            else if (strcmp(optarg, "adam") == 0)
                c->optim.kind = QG_OPTIM_ADAM;
            else {
                fprintf(stderr, "qgate %s: --optimizer must be sgd or adam, got '%s'\n", cmd,
                        optarg);
                return 2;
            }
            break;
        case O_LR: if (!parse_float(cmd, "lr", optarg, 0, 100, &c->optim.lr)) return 2; break;
        case O_MOM:
            if (!parse_float(cmd, "momentum", optarg, 0, 1, &c->optim.momentum)) return 2;
            break;
        case O_NEST: c->optim.nesterov = 1; break;
        case O_WD:
            if (!parse_float(cmd, "wd", optarg, 0, 1, &c->optim.weight_decay)) return 2;
            break;
        case O_NOWDBN: c->optim.decay_kinds = 1u << QG_PARAM_WEIGHT; break;
        case O_SCHED:
            if (strcmp(optarg, "cosine") == 0) c->sched.kind = QG_SCHED_COSINE;
            else if (strcmp(optarg, "multistep") == 0) c->sched.kind = QG_SCHED_MULTISTEP;
            else if (strcmp(optarg, "poly") == 0 || strcmp(optarg, "linear") == 0)
                c->sched.kind = QG_SCHED_POLY;
            else if (strcmp(optarg, "const") == 0) c->sched.kind = QG_SCHED_CONST;
            else {
                fprintf(stderr, "qgate %s: --schedule must be cosine, multistep, poly or "
                        "const, got '%s'\n", cmd, optarg);
                return 2;
            }
            break;
        case O_MILE:
            if (!qg__schedule_parse_milestones(&c->sched, optarg)) {
                fprintf(stderr, "qgate %s: --milestones expects epochs like 100,150, got '%s'\n",
                        cmd, optarg);
                return 2;
            }
            have_mile = 1;
            break;
        case O_GAMMA:
            if (!parse_float(cmd, "gamma", optarg, 0, 1, &c->sched.gamma)) return 2;
            break;
        case O_ENDLR:
            if (!parse_float(cmd, "end-lr", optarg, 0, 100, &c->sched.end_lr)) return 2;
            break;
        case O_POWER:
            if (!parse_float(cmd, "power", optarg, 0.01, 100, &c->sched.power)) return 2;
            break;
        case O_CLIP:
            if (!parse_float(cmd, "clip-grad", optarg, 0, 1e9, &c->optim.clip_norm)) return 2;
            break;
        case O_SEED:
            if (!parse_long(cmd, "seed", optarg, 0, 0x7fffffffffffffffL, &v)) return 2;
            c->seed = (uint64_t)v;
            break;
        case O_METRICS: c->metrics_path = optarg; break;
        case O_CKPT: c->checkpoint_path = optarg; break;
        case O_RESUME: c->resume_path = optarg; break;
        case O_PROG: c->progress = 1; break;
        case O_NOPROG: c->progress = 0; break;
        case O_DEVICE: c->device = optarg; break;
        case O_VERBOSE: c->verbose = 1; break;
        case 'w':
            if (!parse_long(cmd, "wbits", optarg, 2, 16, &v)) return 2;
            c->qcfg.wbits = (int)v;
            have_w = 1;
            break;
        case 'a':
            if (!parse_long(cmd, "abits", optarg, 2, 16, &v)) return 2;
            c->qcfg.abits = (int)v;
            have_a = 1;
            break;
        case O_PACT: c->pact = 1; break;
        case O_PG: c->pg = 1; break;
        case O_PB:
            if (!parse_long(cmd, "pb", optarg, 1, 15, &v)) return 2;
            c->qcfg.pred_bits = (int)v;
            have_pb = 1;
            break;
        case O_GTAR:
            if (!parse_float(cmd, "gtar", optarg, -100, 100, &c->qcfg.gtar)) return 2;
            break;
        case O_SIGMA:
            if (!parse_float(cmd, "sg", optarg, 0, 100, &c->qcfg.sigma)) return 2;
            have_sigma = 1;
            break;
        case O_SPBP: c->qcfg.spbp = 1; break;
        case O_CG: c->cg = 1; break;
        case O_PT:
            if (!parse_long(cmd, "pt", optarg, 1, 64, &v)) return 2;
            if (v < 2 || 16 % v) {
                fprintf(stderr, "qgate %s: --pt %ld must divide the channel counts of the "
                        "gated convs (16, 32, 64) and be at least 2: use 2, 4, 8 or 16\n",
                        cmd, v);
                return 2;
            }
            c->cgcfg.partitions = (int)v;
            have_cg_opt = 1;
            break;
        case O_GI:
            if (!parse_float(cmd, "gi", optarg, -100, 100, &c->cgcfg.ginit)) return 2;
            have_cg_opt = 1;
            break;
        case O_ALPHA:
            if (!parse_float(cmd, "alpha", optarg, 1e-6, 1000, &c->cgcfg.alpha)) return 2;
            have_cg_opt = 1;
            break;
        case O_GROUP: c->cgcfg.group = 1; have_cg_opt = 1; break;
        case O_SHUFFLE: c->cgcfg.shuffle = 1; have_cg_opt = 1; break;
        case O_POSTACT: c->postact = 1; have_cg_opt = 1; break;
        case ':':
            fprintf(stderr, "qgate %s: option '%s' needs a value\n", cmd, argv[optind - 1]);
            return 2;
        default:
            fprintf(stderr, "qgate %s: unknown option '%s' (see qgate %s --help)\n", cmd,
                    argv[optind - 1], cmd);
            return 2;
        }
    }
    if (optind < argc) {
        if (ckpt && optind == argc - 1) {
            *ckpt = argv[optind];
        } else {
            fprintf(stderr, "qgate %s: unexpected argument '%s'\n", cmd, argv[optind]);
            return 2;
        }
    }
    c->quant = (have_w || have_a) && !c->pg;
    if (c->pg && !have_pb) {
        fprintf(stderr, "qgate %s: --pg needs --pb N (prediction bits, fewer than --abits)\n", cmd);
        return 2;
    }
    if (c->pg && c->qcfg.pred_bits >= c->qcfg.abits) {
        fprintf(stderr, "qgate %s: --pb %d must be smaller than --abits %d (the MSB part of a "
                "%d-bit activation)\n", cmd, c->qcfg.pred_bits, c->qcfg.abits, c->qcfg.abits);
        return 2;
    }
    if (!c->pg && have_pb) {
        fprintf(stderr, "qgate %s: --pb only applies with --pg\n", cmd);
        return 2;
    }
    if (!c->pg && !c->cg && c->qcfg.spbp) {
        fprintf(stderr, "qgate %s: --spbp only applies with --pg or --cg\n", cmd);
        return 2;
    }
    if (c->cg && c->pg) {
        fprintf(stderr, "qgate %s: --cg and --pg are different gating methods; pick one\n",
                cmd);
        return 2;
    }
    if (c->cg && (have_w || have_a || c->pact)) {
        fprintf(stderr, "qgate %s: --cg trains the full-precision ResNet with ReLUs; -w, -a "
                "and --pact do not apply\n", cmd);
        return 2;
    }
    if (!c->cg && have_cg_opt) {
        fprintf(stderr, "qgate %s: --pt, --gi, --alpha, --group, --shuffle and --postact only "
                "apply with --cg\n", cmd);
        return 2;
    }
    if (c->cg) {
        c->quant = 0;
        /* The reference recipe: CE + 1e-4*sum (delta - g)^2, and weight decay only on
         * parameters with >= 2 dims whose name lacks "threshold" (conv and linear
         * weights; DG:cg-cifar10.py add_weight_decay). */
        if (!have_sigma)
            c->qcfg.sigma = QG_CG_LOSS_COEF;
        c->optim.decay_kinds = 1u << QG_PARAM_WEIGHT;
    }
    if (!have_mile && c->sched.kind == QG_SCHED_MULTISTEP) {
        c->sched.nmilestones = 2;
        c->sched.milestones[0] = c->epochs / 2;
        c->sched.milestones[1] = c->epochs * 3 / 4;
    }
    return -1;
}

int qg_cli_train(int argc, char **argv)
{
    qg_train_cfg c;
    qg__train_cfg_defaults(&c);
    int rc = parse("train", argc, argv, &c, NULL, train_usage);
    if (rc >= 0)
        return rc;
    c.stop = &g_stop;
    signal(SIGINT, on_sigint);
    qg_status st = qg__train_run(&c);
    signal(SIGINT, SIG_DFL);
    if (st == QG_ERR_INTERRUPTED)
        return 130;
    if (st != QG_OK) {
        fprintf(stderr, "qgate train: %s\n", qg_last_error());
        return 1;
    }
    return 0;
}

static void eval_usage(FILE *f)
{
    fprintf(f,
"usage: qgate eval [options] CHECKPOINT\n"
"\n"
"Rebuilds the model recorded in a qgate safetensors checkpoint, loads its\n"
"weights and reports loss and accuracy on the test split of its dataset.\n"
"\n"
"  --data NAME           dataset (default: the one recorded in the checkpoint)\n"
"  --data-dir DIR        where the dataset files are\n"
"  --limit-test N        use only the first N test images\n"
"  --eval-batch N        batch size (default 128)\n"
"  --device N|NAME       OpenCL device (default $QGATE_DEVICE, else 0)\n");
}

int qg_cli_eval(int argc, char **argv)
{
    qg_train_cfg c;
    qg__train_cfg_defaults(&c);
    c.data = NULL;
    const char *ckpt = NULL;
    int rc = parse("eval", argc, argv, &c, &ckpt, eval_usage);
    if (rc >= 0)
        return rc;
    if (!ckpt) {
        fprintf(stderr, "qgate eval: missing CHECKPOINT argument (see qgate eval --help)\n");
        return 2;
    }
    qg_status st = qg__eval_run(&c, ckpt, NULL);
    if (st != QG_OK) {
        fprintf(stderr, "qgate eval: %s\n", qg_last_error());
        return 1;
    }
    return 0;
}
