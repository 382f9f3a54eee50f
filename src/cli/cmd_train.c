/* src/cli/cmd_train.c: `qgate train` and `qgate eval`. */
#include "config.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qgate.h"
#include "cli/cli.h"
#include "cli/model_flags.h"
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
"  --data NAME           fashion-mnist (default) | mnist | cifar10 | cifar100 |\n"
"                        folder (JPEG class folders DIR/train/<class>/*.jpg and\n"
"                        DIR/val/<class>/*.jpg; see qgate export-images)\n"
"  --data-dir DIR        where the dataset files are (default: the Debian package's)\n"
"  --workers N           threads preparing batches (default 1)\n"
"  --input-size N        folder data: network input side (default 224)\n"
"  --resize N            folder data: evaluation resizes the shorter side to N\n"
"                        before the centre crop (default input-size*256/224)\n"
"  --normalize KIND      folder data: imagenet (default) | dataset | none\n"
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
QG_CLI_MODEL_HELP
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
    O_NOPROG, O_DEVICE, O_VERBOSE, O_HELP, O_CHECKPOINT_EVAL, O_WORKERS, O_INPUT_SIZE,
    O_RESIZE, O_NORMALIZE
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
    {"workers", 1, 0, O_WORKERS}, {"input-size", 1, 0, O_INPUT_SIZE},
    {"resize", 1, 0, O_RESIZE}, {"normalize", 1, 0, O_NORMALIZE},
    {0, 0, 0, 0}};

/* Short local names for the shared strict number parsers. */
#define parse_long qg_cli_parse_long
#define parse_float qg_cli_parse_float

/* Parses the shared options; returns -1 to continue, else an exit code. */
static int parse(const char *cmd, int argc, char **argv, qg_train_cfg *c, const char **ckpt,
                 void (*usage)(FILE *))
{
    int o, have_mile = 0, r;
    long v;
    struct option opts[sizeof train_opts / sizeof *train_opts + QG_CLI_MODEL_NOPTIONS];
    qg_cli_model_flags mf;
    if (!qg_cli_options_join(opts, sizeof opts / sizeof *opts, train_opts))
        return 2;
    qg_cli_model_flags_init(&mf);
    mf.qcfg = c->qcfg;
    optind = 1;
    opterr = 0;
    while ((o = getopt_long(argc, argv, ":" QG_CLI_MODEL_SHORTOPTS, opts, NULL)) != -1) {
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
        case O_WORKERS:
            if (!parse_long(cmd, "workers", optarg, 1, 64, &v)) return 2;
            c->dopts.workers = (int)v;
            break;
        case O_INPUT_SIZE:
            if (!parse_long(cmd, "input-size", optarg, 8, 4096, &v)) return 2;
            c->dopts.input_size = (int)v;
            break;
        case O_RESIZE:
            if (!parse_long(cmd, "resize", optarg, 8, 8192, &v)) return 2;
            c->dopts.resize = (int)v;
            break;
        case O_NORMALIZE:
            if (strcmp(optarg, "imagenet") && strcmp(optarg, "dataset") && strcmp(optarg, "none")) {
                fprintf(stderr, "qgate %s: --normalize must be imagenet, dataset or none, got "
                        "'%s'\n", cmd, optarg);
                return 2;
            }
            c->dopts.normalize = optarg;
            break;
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
        case ':':
            fprintf(stderr, "qgate %s: option '%s' needs a value\n", cmd, argv[optind - 1]);
            return 2;
        default:
            if ((r = qg_cli_model_flag(cmd, o, optarg, &mf)) != 0) {
                if (r < 0)
                    return 2;
                break;
            }
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
    if (!qg_cli_model_flags_finish(cmd, &mf))
        return 2;
    QG_CLI_COPY_METHOD(*c, mf);
    /* The CG reference decays only parameters with >= 2 dims whose name
     * lacks "threshold": conv and linear weights (DG:cg-cifar10.py). */
    if (c->cg)
        c->optim.decay_kinds = 1u << QG_PARAM_WEIGHT;
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
"  --workers N, --input-size N, --resize N, --normalize KIND\n"
"                        folder data, as for qgate train\n"
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
