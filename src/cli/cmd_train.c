/* src/cli/cmd_train.c: `qgate train` and `qgate eval`. */
#include "config.h"

#include <getopt.h>
#include <math.h>
#include <pthread.h>
#include <unistd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qgate.h"
#include "cli/cli.h"
#include "cli/model_flags.h"
#include "qgate/train.h"
#include "train/optim.h"
#include "method/params.h"
#include <jansson.h>

static volatile sig_atomic_t g_stop;

/* Ctrl-C is taken by a thread of its own in sigwait, with SIGINT blocked
 * in every other thread (the device runtime's included, which inherit the
 * mask): LLVM, which PoCL runs in-process to build kernels, installs its
 * own SIGINT handler that deletes its temporary files, so a Ctrl-C that
 * arrived during a kernel build failed the build instead of stopping the
 * run cleanly. */
static void on_sigint(int sig)
{
    (void)sig;
    g_stop = 1;
    signal(SIGINT, SIG_DFL);
}

typedef struct sigint_guard {
    sigset_t set;
    pthread_t thread;
    int running;
} sigint_guard;

static void *sigint_waiter(void *arg)
{
    sigint_guard *g = arg;
    for (;;) {
        int sig;
        if (sigwait(&g->set, &sig) != 0)
            continue;
        if (g_stop) /* a second Ctrl-C ends the process at once */
            _exit(130);
        g_stop = 1;
    }
    return NULL;
}

static void sigint_guard_start(sigint_guard *g)
{
    sigemptyset(&g->set);
    sigaddset(&g->set, SIGINT);
    g->running = pthread_sigmask(SIG_BLOCK, &g->set, NULL) == 0 &&
                 pthread_create(&g->thread, NULL, sigint_waiter, g) == 0;
    if (!g->running) { /* no thread: a plain handler, as good as it gets */
        pthread_sigmask(SIG_UNBLOCK, &g->set, NULL);
        signal(SIGINT, on_sigint);
    }
}

static void sigint_guard_stop(sigint_guard *g)
{
    if (g->running) {
        pthread_cancel(g->thread);
        pthread_join(g->thread, NULL);
    }
    pthread_sigmask(SIG_UNBLOCK, &g->set, NULL);
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
"                        (CIFAR ResNets) | resnet18 | shufflenet_v2_x0_5\n"
"                        (torchvision's, any input size; use with --data folder)\n"
"                        | vgg16_bn (PSG-pytorch's VGG16 with batch norm and a\n"
"                        dropout classifier, 32x32 inputs; 28x28 ones are\n"
"                        zero-padded to 32x32; vgg16_bn_divN: widths / N)\n"
"  --shortcut A|B        residual shortcut: zero-pad (A, default) or 1x1 conv (B)\n"
"  --data NAME           fashion-mnist (default) | mnist | cifar10 | cifar100 |\n"
"                        folder (JPEG class folders DIR/train/<class>/*.jpg and\n"
"                        DIR/val/<class>/*.jpg; see qgate export-images)\n"
"  --data-dir DIR        where the dataset files are (default: the Debian package's)\n"
"  --workers N           threads preparing batches (default 1)\n"
"  --input-size N        folder data: network input side (default 224)\n"
"  --resize N            folder data: evaluation resizes the shorter side to N\n"
"                        before the centre crop (default input-size*256/224)\n"
"  --crop-scale X        folder data: training crops cover a random share of the\n"
"                        image area in [X, 1] (RandomResizedCrop's scale; default\n"
"                        0.08, torchvision's; small images such as 28x28 garments\n"
"                        train faster with about 0.5)\n"
"  --normalize KIND      imagenet | dataset | none: the ImageNet mean/std (the\n"
"                        default of folder data), the dataset's own (the default\n"
"                        of IDX and CIFAR data; the reference uses imagenet on\n"
"                        CIFAR-10) or none (pixels in [0, 1]); kept in the checkpoint\n"
"  --limit-train N       use only the first N training images\n"
"  --limit-test N        use only the first N test images\n"
"  --crop-pad N          random crop after zero padding by N pixels (default 2 for\n"
"                        28x28 data, 4 for CIFAR; 0 disables)\n"
"  --no-flip             disable random horizontal flips\n"
"optimisation:\n"
"  --epochs N            number of epochs (default 10)\n"
"  --batch N             training batch size (default 128)\n"
"  --eval-batch N        evaluation batch size (default 128)\n"
"  --keep-last           train on the last, partial batch of each epoch too (the\n"
"                        reference's 391 steps per CIFAR-10 epoch; default: drop it)\n"
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
"methods (each flag turns a method on; its options follow it):\n");
    qg_cli_model_help(f);
    fprintf(f,
"output:\n"
"  --metrics FILE        append one JSON line per epoch (epoch, train_loss,\n"
"                        train_acc, test_loss, test_acc, img_per_s, lr, ...)\n"
"  --checkpoint FILE     write a safetensors checkpoint after every epoch (atomic)\n"
"  --resume FILE         continue from a checkpoint (weights, optimizer, schedule)\n"
"  --init FILE           start from another run's weights only (e.g. a float model\n"
"                        for --psgd): fresh optimizer; tensors a method adds keep\n"
"                        their initial values\n"
"  --start-epoch N       with --init: begin the schedule at epoch N (default 0)\n"
"  --kbits NAME=B,...    --proqha: start single quantizers at B bits (1..16, 32);\n"
"                        NAME as 'qgate inspect' lists it, or a prefix and '*'\n"
"                        (layer1.*=4,layer1.0.act1=6: later items win)\n"
"  --progress / --no-progress   force the progress line on or off (default: on a TTY)\n"
"  --device N|NAME       OpenCL device (default $QGATE_DEVICE, else 0)\n"
"  --verbose             log kernel builds\n"
"  --dense-gates         gated layers (CG, PG) compute the work their gates turn off\n"
"                        and mask it, as the references do, instead of skipping it\n"
"                        (same results; for speed comparisons; not saved)\n"
"several devices (mpirun -np N qgate train ..., docs/distributed.md):\n"
"  each process trains on --batch images of every step (effective batch N x\n"
"  --batch; --lr is not scaled) and the gradients are averaged; each takes\n"
"  --device A,B,.. entry (its local rank, cycled) or, without --device, local\n"
"  rank modulo the node's devices. Rank 0 writes --metrics and --checkpoint.\n"
"  --sync-bn             batch norm over the global batch (default: per process)\n"
"\n"
"Ctrl-C finishes the current batch, writes a checkpoint and exits with status 130.\n");
}

enum {
    O_MODEL = 256, O_SHORTCUT, O_DATA, O_DATA_DIR, O_LIMIT_TRAIN, O_LIMIT_TEST, O_CROP, O_NOFLIP,
    O_EPOCHS, O_BATCH, O_EVAL_BATCH, O_OPT, O_LR, O_MOM, O_NEST, O_WD, O_NOWDBN, O_SCHED,
    O_MILE, O_GAMMA, O_ENDLR, O_POWER, O_CLIP, O_SEED, O_METRICS, O_CKPT, O_RESUME, O_PROG,
    O_NOPROG, O_DEVICE, O_VERBOSE, O_HELP, O_CHECKPOINT_EVAL, O_WORKERS, O_INPUT_SIZE, O_CROP_SCALE,
    O_RESIZE, O_NORMALIZE, O_INIT, O_START_EPOCH, O_KBITS, O_SYNC_BN, O_KEEP_LAST, O_JSON, O_ABITS,
    O_ACT_CLIP, O_DENSE_GATES
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
    {"resize", 1, 0, O_RESIZE}, {"crop-scale", 1, 0, O_CROP_SCALE}, {"normalize", 1, 0, O_NORMALIZE},
    {"init", 1, 0, O_INIT}, {"start-epoch", 1, 0, O_START_EPOCH},
    {"kbits", 1, 0, O_KBITS},
    {"sync-bn", 0, 0, O_SYNC_BN}, {"keep-last", 0, 0, O_KEEP_LAST},
    {"json", 0, 0, O_JSON}, {"dense-gates", 0, 0, O_DENSE_GATES},
    {0, 0, 0, 0}};

/* qgate eval's own options, ahead of the method flags: -a/--abits is the
 * low-precision pass's activation bits there, not quantized training's. */
static const struct option eval_opts[] = {
    {"abits", 1, 0, O_ABITS}, {"act-clip", 1, 0, O_ACT_CLIP}, {0, 0, 0, 0}};

/* qgate eval --json */
static int g_json;
/* qgate eval --act-clip given */
static int g_act_clip;

/* Short local names for the shared strict number parsers. */
#define parse_long qg_cli_parse_long
#define parse_float qg_cli_parse_float

/* Parses the shared options; returns -1 to continue, else an exit code. */
static int parse(const char *cmd, int argc, char **argv, qg_train_cfg *c, const char **ckpt,
                 void (*usage)(FILE *), qg_cli_model_flags *mfp, int *progress)
{
    int o, have_mile = 0, r;
    long v;
    struct option opts[sizeof train_opts / sizeof *train_opts + QG_CLI_MODEL_NOPTIONS + 2];
    struct option cmdo[sizeof train_opts / sizeof *train_opts + 2];
    qg_cli_model_flags *mf = mfp;
    int is_eval = strcmp(cmd, "eval") == 0;
    size_t nc = 0;
    for (size_t i = 0; is_eval && eval_opts[i].name; i++)
        cmdo[nc++] = eval_opts[i];
    memcpy(cmdo + nc, train_opts, sizeof train_opts);
    if (!qg_cli_options_join(opts, sizeof opts / sizeof *opts, cmdo))
        return 2;
    qg_cli_model_flags_init(mf);
    /* At evaluation the method flags describe the low-precision
     * evaluation: -w/--wbits and --first-last-quant are PSGD's grid. */
    if (strcmp(cmd, "eval") == 0)
        qg_method_cfg_enable(&mf->mc, "psgd", 1);
    optind = 1;
    opterr = 0;
    while ((o = getopt_long(argc, argv, ":" QG_CLI_MODEL_SHORTOPTS, opts, NULL)) != -1) {
        const char *name = optind > 0 && optind <= argc ? argv[optind - 1] : "";
        (void)name;
        if (is_eval && o == 'a')
            o = O_ABITS;
        switch (o) {
        case O_ABITS:
            if (!parse_long(cmd, "abits", optarg, 2, 16, &v)) return 2;
            c->eval_abits = (int)v;
            break;
        case O_ACT_CLIP:
            if (!parse_float(cmd, "act-clip", optarg, 1e-3, 1e3, &c->eval_act_clip)) return 2;
            g_act_clip = 1;
            break;
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
            c->workers = (int)v;
            break;
        case O_INPUT_SIZE:
            if (!parse_long(cmd, "input-size", optarg, 8, 4096, &v)) return 2;
            c->input_size = (int)v;
            break;
        case O_CROP_SCALE: {
            char *end;
            double x = strtod(optarg, &end);
            if (*optarg == '\0' || *end || !(x > 0.0 && x <= 1.0)) {
                fprintf(stderr, "qgate %s: --crop-scale must be a number in (0, 1], got "
                        "'%s'\n", cmd, optarg);
                return 2;
            }
            c->crop_scale = x;
            break;
        }
        case O_RESIZE:
            if (!parse_long(cmd, "resize", optarg, 8, 8192, &v)) return 2;
            c->resize = (int)v;
            break;
        case O_NORMALIZE:
            if (strcmp(optarg, "imagenet") && strcmp(optarg, "dataset") && strcmp(optarg, "none")) {
                fprintf(stderr, "qgate %s: --normalize must be imagenet, dataset or none, got "
                        "'%s'\n", cmd, optarg);
                return 2;
            }
            c->normalize = optarg;
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
        case O_KEEP_LAST: c->keep_last = 1; break;
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
        case O_NOWDBN:
            /* as the help says: all but batch norm and biases (thresholds
             * and PACT alpha keep it, as PG-TF's recipe decays them) */
            c->optim.decay_kinds = QG_DECAY_ALL & ~(QG_DECAY_BN | QG_DECAY_BIAS);
            break;
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
        case O_INIT: c->init_path = optarg; break;
        case O_KBITS: c->kbits = optarg; break;
        case O_START_EPOCH:
            if (!parse_long(cmd, "start-epoch", optarg, 0, 100000, &v)) return 2;
            c->start_epoch = (int)v;
            break;
        case O_PROG: *progress = 1; break;
        case O_NOPROG: *progress = 0; break;
        case O_DEVICE: c->device = optarg; break;
        case O_SYNC_BN: c->sync_bn = 1; break;
        case O_VERBOSE: c->verbose = 1; break;
        case O_DENSE_GATES: c->dense_gates = 1; break;
        case O_JSON:
            if (strcmp(cmd, "eval") != 0) {
                fprintf(stderr, "qgate %s: --json is an option of qgate eval\n", cmd);
                return 2;
            }
            g_json = 1;
            break;
        case ':':
            fprintf(stderr, "qgate %s: option '%s' needs a value\n", cmd, argv[optind - 1]);
            return 2;
        default:
            if ((r = qg_cli_model_flag(cmd, o, optarg, mf)) != 0) {
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
    if (!qg_cli_model_flags_finish(cmd, mf))
        return 2;
    c->methods = &mf->mc;
    if (!have_mile && c->sched.kind == QG_SCHED_MULTISTEP) {
        c->sched.nmilestones = 2;
        c->sched.milestones[0] = c->epochs / 2;
        c->sched.milestones[1] = c->epochs * 3 / 4;
    }
    return -1;
}

/* What `qgate train` shows: the trainer's events as a progress line on a
 * terminal (or when forced) and one line per epoch, on stderr. */
typedef struct show {
    int progress;
    int midline;            /* a progress line is open */
    const char *aux;        /* what the methods' loss term is: "gating loss", or
                               BSQ's "bit-plane regulariser" */
} show;

static void fmt_eta(double s, char *buf, size_t cap)
{
    if (!(s >= 0) || s > 1e7)
        snprintf(buf, cap, "?");
    else if (s >= 3600)
        snprintf(buf, cap, "%dh%02dm", (int)(s / 3600), (int)fmod(s / 60, 60));
    else
        snprintf(buf, cap, "%dm%02ds", (int)(s / 60), (int)fmod(s, 60));
}

static double metric(const qg_train_event *ev, const char *key, int *have)
{
    for (size_t i = 0; i < ev->nmetrics; i++)
        if (!ev->metrics[i].layer && strcmp(ev->metrics[i].key, key) == 0) {
            *have = 1;
            return ev->metrics[i].value;
        }
    *have = 0;
    return 0;
}

static void on_event(const qg_train_event *ev, void *user)
{
    show *s = user;
    if (s->midline && ev->kind != QG_TRAIN_EV_PROGRESS) {
        fputc('\n', stderr);
        s->midline = 0;
    }
    switch (ev->kind) {
    case QG_TRAIN_EV_INFO:
        fprintf(stderr, "qgate: %s\n", ev->text);
        break;
    case QG_TRAIN_EV_PROGRESS: {
        if (!s->progress)
            break;
        char eta[32];
        fmt_eta(ev->eta_s, eta, sizeof eta);
        char gl[48] = "";
        if (ev->gating)
            snprintf(gl, sizeof gl, " (%.4f w/ %s)", ev->train_loss + ev->train_gating_loss,
                     strcmp(s->aux, "gating loss") ? "regulariser" : "gating");
        fprintf(stderr, "\repoch %d/%d [%ld/%ld] loss %.4f%s acc %.2f%%%s%s lr %.4g %.0f img/s "
                "ETA %s   ", ev->epoch, ev->epochs, ev->batch, ev->batches, ev->train_loss, gl,
                100 * ev->train_acc, ev->text[0] ? " " : "", ev->text, ev->lr, ev->img_per_s,
                eta);
        s->midline = 1;
        break;
    }
    case QG_TRAIN_EV_EPOCH: {
        char extra[128] = "";
        int have_sp, have_fr;
        double sp = metric(ev, "sparsity", &have_sp), fr = metric(ev, "flop_reduction", &have_fr);
        if (have_sp)
            snprintf(extra, sizeof extra, ", update-phase sparsity %.1f%%", 100 * sp);
        if (have_fr)
            snprintf(extra + strlen(extra), sizeof extra - strlen(extra),
                     ", FLOP reduction %.2fx", fr);
        int have_cp, have_ab;
        double cp = metric(ev, "compression", &have_cp), ab = metric(ev, "avg_bits", &have_ab);
        if (have_cp && have_ab)
            snprintf(extra + strlen(extra), sizeof extra - strlen(extra),
                     ", compression %.2fx (%.2f bits)", cp, ab);
        int have_fp;
        double fp = metric(ev, "fp_percent", &have_fp);
        if (have_fp)
            snprintf(extra + strlen(extra), sizeof extra - strlen(extra),
                     ", full precision %.1f%%", fp);
        int have_lp;
        double lp = metric(ev, "test_acc_lp", &have_lp);
        if (have_lp)
            snprintf(extra + strlen(extra), sizeof extra - strlen(extra),
                     ", low-precision acc %.2f%%", 100 * lp);
        char gl[80] = "";
        if (ev->gating)
            snprintf(gl, sizeof gl, " (%.4f with the %s)", ev->train_loss + ev->train_gating_loss,
                     s->aux);
        fprintf(stderr, "epoch %d/%d: train loss %.4f%s acc %.2f%%, test loss %.4f acc %.2f%%%s, "
                "%.0f img/s, %.1f s\n", ev->epoch, ev->epochs, ev->train_loss, gl,
                100 * ev->train_acc, ev->test_loss, 100 * ev->test_acc, extra, ev->img_per_s,
                ev->epoch_seconds);
        break;
    }
    }
}

int qg_cli_train(int argc, char **argv)
{
    qg_train_cfg c;
    qg_cli_model_flags mf;
    show sh = {.progress = -1, .aux = "gating loss"};
    qg_train_cfg_defaults(&c);
    int rc = parse("train", argc, argv, &c, NULL, train_usage, &mf, &sh.progress);
    if (rc >= 0)
        return rc;
    if (sh.progress < 0)
        sh.progress = isatty(2);
    if (c.methods && qg_method_cfg_enabled(c.methods, "bsq"))
        sh.aux = "bit-plane regulariser";
    c.callback = on_event;
    c.user = &sh;
    c.stop = &g_stop;
    sigint_guard guard;
    sigint_guard_start(&guard);
    qg_status st = qg_train_run(&c);
    sigint_guard_stop(&guard);
    if (sh.midline)
        fputc('\n', stderr);
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
"  --workers N, --input-size N, --resize N\n"
"                        folder data, as for qgate train\n"
"  --normalize KIND      imagenet | dataset | none (default: the checkpoint's)\n"
"  --limit-test N        use only the first N test images\n"
"  --eval-batch N        batch size (default 128)\n"
"  --device N|NAME       OpenCL device (default $QGATE_DEVICE, else 0)\n"
"  --kbits NAME=B,...    a --proqha checkpoint with single quantizers at other bits\n"
"                        (as for train; the checkpoint is not changed)\n"
"  -w, --wbits N         also evaluate with the weights on an N-bit PSGD grid\n"
"                        (symmetric, codes -(2^(N-1)-1)..2^(N-1)-1, plain rounding):\n"
"                        post-training quantization of a float checkpoint. A PSGD\n"
"                        checkpoint is evaluated on its own grid without it\n"
"  --first-last-quant    with -w: the stem conv and the classifier too (8 bits\n"
"                        when N < 4); the body's convs and shortcuts always\n"
"  -a, --abits B         the low-precision pass also quantizes activations, as\n"
"                        PSG-pytorch's eval.py --act_quant 1 --act_clipping 1:\n"
"                        each ReLU after a batch norm outputs B-bit unsigned\n"
"                        codes over [0, clip], clip = max over channels of\n"
"                        beta + N*gamma of that batch norm (other activations\n"
"                        stay float); needs -w or a PSGD checkpoint\n"
"  --act-clip N          with --abits: the clip multiple N (default 6)\n"
"  --dense-gates         gated layers compute their skipped work densely and mask\n"
"                        it (the references' way; same results, for comparison)\n"
"  --json                one JSON object: loss and accuracy (both precisions),\n"
"                        the methods' metrics (PSGD: per-layer distance of the\n"
"                        weights to their grid and a histogram of positions)\n");
}

/* The gating layers' update-phase sparsity (as the references print it)
 * and, where the gating skips compute, the FLOP reduction. */
static void print_eval_metrics(const qg_eval_result *r)
{
    for (size_t i = 0; i < r->nmetrics; i++) {
        const qg_metric *x = &r->metrics[i];
        if (!x->layer || strcmp(x->key, "sparsity_layers") != 0)
            continue;
        printf("  %-22s update-phase sparsity %5.1f%%", x->layer, 100 * x->value);
        for (size_t j = 0; j < r->nmetrics; j++)
            if (r->metrics[j].layer && strcmp(r->metrics[j].key, "flop_reduction_layers") == 0 &&
                strcmp(r->metrics[j].layer, x->layer) == 0)
                printf("  FLOP reduction %5.2fx", r->metrics[j].value);
        for (size_t j = 0; j < r->nmetrics; j++)
            if (r->metrics[j].layer && strcmp(r->metrics[j].key, "tiles_computed_layers") == 0 &&
                strcmp(r->metrics[j].layer, x->layer) == 0)
                printf("  tiles computed %5.1f%%", 100 * r->metrics[j].value);
        putchar('\n');
    }
    double sp = 0, fr = 0, dense = 0, eff = 0, fp = 0;
    int have_sp = 0, have_fr = 0, have_fp = 0;
    for (size_t i = 0; i < r->nmetrics; i++) {
        const qg_metric *x = &r->metrics[i];
        if (x->layer)
            continue;
        if (strcmp(x->key, "sparsity") == 0)
            sp = x->value, have_sp = 1;
        else if (strcmp(x->key, "flop_reduction") == 0)
            fr = x->value, have_fr = 1;
        else if (strcmp(x->key, "fp_percent") == 0)
            fp = x->value, have_fp = 1;
        else if (strcmp(x->key, "macs_dense") == 0)
            dense = x->value;
        else if (strcmp(x->key, "macs_effective") == 0)
            eff = x->value;
    }
    /* BSQ: each layer's precision and the non-zero share of its bit planes */
    for (size_t i = 0; i < r->nmetrics; i++) {
        const qg_metric *x = &r->metrics[i];
        if (!x->layer || strcmp(x->key, "bits_weight") != 0)
            continue;
        printf("  %-22s %2d bits, non-zero %%:", x->layer, (int)x->value);
        for (int b = 0; b < (int)x->value; b++) {
            char key[32];
            snprintf(key, sizeof key, "nonzero_weight_b%d", b);
            for (size_t j = 0; j < r->nmetrics; j++)
                if (r->metrics[j].layer && strcmp(r->metrics[j].key, key) == 0 &&
                    strcmp(r->metrics[j].layer, x->layer) == 0)
                    printf(" %6.2f", 100 * r->metrics[j].value);
        }
        putchar('\n');
    }
    for (size_t i = 0; i < r->nmetrics; i++)
        if (!r->metrics[i].layer && strcmp(r->metrics[i].key, "compression") == 0)
            printf("Compression rate (32 bits / average bits of the quantized layers): %.2fx\n",
                   r->metrics[i].value);
    for (size_t i = 0; i < r->nmetrics; i++)
        if (!r->metrics[i].layer && strcmp(r->metrics[i].key, "avg_bits") == 0)
            printf("Average bits per quantized value (sign not counted): %.3f\n",
                   r->metrics[i].value);
    if (have_sp)
        printf("Sparsity of the update phase: %.1f %%\n", 100 * sp);
    if (have_fp)
        printf("Percent of full-precision outputs: %.1f %%\n", fp);
    if (have_fr)
        printf("FLOP reduction of the model: %.2fx (%.1f of %.1f MFLOPs per image)\n", fr,
               2e-6 * eff, 2e-6 * dense);
}

/* qgate eval --json: the result and the methods' metrics as one object;
 * per-layer metrics are objects keyed by layer. */
static void print_eval_json(const char *ckpt, const qg_eval_result *r)
{
    json_t *o = json_object();
    json_object_set_new(o, "checkpoint", json_string(ckpt));
    json_object_set_new(o, "arch", json_string(r->arch));
    json_object_set_new(o, "epoch", json_string(r->epoch));
    json_object_set_new(o, "images", json_integer((json_int_t)r->images));
    json_object_set_new(o, "test_loss", json_real(r->loss));
    json_object_set_new(o, "test_acc", json_real(r->acc));
    json_object_set_new(o, "img_per_s", json_real(r->img_per_s));
    if (r->lowp) {
        json_object_set_new(o, "wbits", json_integer(r->lowp_bits));
        if (r->lowp_abits) {
            json_object_set_new(o, "abits", json_integer(r->lowp_abits));
            json_object_set_new(o, "act_clip", json_real(r->act_clip));
        }
        json_object_set_new(o, "test_loss_lp", json_real(r->loss_lp));
        json_object_set_new(o, "test_acc_lp", json_real(r->acc_lp));
    }
    for (size_t i = 0; i < r->nmetrics; i++) {
        const qg_metric *x = &r->metrics[i];
        if (!x->layer) {
            if (!json_object_get(o, x->key))
                json_object_set_new(o, x->key, json_real(x->value));
            continue;
        }
        json_t *l = json_object_get(o, x->key);
        if (!l) {
            l = json_object();
            json_object_set_new(o, x->key, l);
        }
        json_object_set_new(l, x->layer, json_real(x->value));
    }
    char *txt = json_dumps(o, JSON_PRESERVE_ORDER | JSON_COMPACT);
    if (txt)
        puts(txt);
    free(txt);
    json_decref(o);
}

/* Per-quantizer bit widths and the costs (ProQHA: docs/methods.md §8.5). */
static void print_eval_bits(const qg_eval_result *r)
{
    int any = 0;
    for (size_t i = 0; i < r->nmetrics; i++) {
        const qg_metric *x = &r->metrics[i];
        int w = x->layer && strcmp(x->key, "wbits_layers") == 0;
        if (!w && !(x->layer && strcmp(x->key, "abits_layers") == 0))
            continue;
        if (!any++)
            printf("  %-22s %s\n", "quantizer", "bits");
        printf("  %-22s %s %2d\n", x->layer, w ? "W" : "A", (int)x->value);
    }
    for (size_t i = 0; i < r->nmetrics; i++) {
        const qg_metric *x = &r->metrics[i];
        if (!x->layer && strcmp(x->key, "cost") == 0)
            printf("Cost (weight memory vs float32, sum k_w|W| / 32 sum|W|): %.6f\n", x->value);
        else if (!x->layer && strcmp(x->key, "cost_bitops") == 0)
            printf("Cost (bit operations vs 32x32, sum k_w k_a MACs / 1024 sum MACs): %.6f\n",
                   x->value);
    }
}

int qg_cli_eval(int argc, char **argv)
{
    qg_train_cfg c;
    qg_cli_model_flags mf;
    int progress = 0;
    qg_train_cfg_defaults(&c);
    c.data = NULL;
    const char *ckpt = NULL;
    int rc = parse("eval", argc, argv, &c, &ckpt, eval_usage, &mf, &progress);
    if (rc >= 0)
        return rc;
    if (!ckpt) {
        fprintf(stderr, "qgate eval: missing CHECKPOINT argument (see qgate eval --help)\n");
        return 2;
    }
    if (qg__method_given(&mf.mc, QG_METHOD_PSGD, "wbits")) {
        const qg_psgd_params *p = qg__method_params(&mf.mc, QG_METHOD_PSGD);
        c.eval_wbits = p->wbits;
        c.eval_first_last = p->first_last_quant;
    } else if (qg__method_given(&mf.mc, QG_METHOD_PSGD, "first_last_quant")) {
        fprintf(stderr, "qgate eval: --first-last-quant needs -w/--wbits N\n");
        return 2;
    }
    if (g_act_clip && !c.eval_abits) {
        fprintf(stderr, "qgate eval: --act-clip needs -a/--abits B\n");
        return 2;
    }
    qg_eval_result r;
    qg_status st = qg_eval_run(&c, ckpt, &r);
    if (st != QG_OK) {
        fprintf(stderr, "qgate eval: %s\n", qg_last_error());
        return 1;
    }
    if (g_json) {
        print_eval_json(ckpt, &r);
        qg_eval_result_free(&r);
        return 0;
    }
    printf("checkpoint %s (%s, epoch %s): test loss %.4f, test accuracy %.2f%% on %zu images\n",
           ckpt, r.arch, r.epoch, r.loss, 100 * r.acc, r.images);
    if (r.lowp) {
        /* the PSG reference's two lines */
        if (r.lowp_abits)
            printf("Low Precision (W%dA%d, activation clip %g):  Loss: %.3f | Acc: %.3f%% "
                   "(%.0f/%zu)\n", r.lowp_bits, r.lowp_abits, (double)r.act_clip, r.loss_lp,
                   100 * r.acc_lp, r.acc_lp * (double)r.images, r.images);
        else
            printf("Low Precision (W%d):  Loss: %.3f | Acc: %.3f%% (%.0f/%zu)\n", r.lowp_bits,
                   r.loss_lp, 100 * r.acc_lp, r.acc_lp * (double)r.images, r.images);
        printf("Full Precision:       Loss: %.3f | Acc: %.3f%% (%.0f/%zu)\n", r.loss,
               100 * r.acc, r.acc * (double)r.images, r.images);
        for (size_t i = 0; i < r.nmetrics; i++)
            if (!r.metrics[i].layer && strcmp(r.metrics[i].key, "grid_dist") == 0)
                printf("Mean distance of the weights to their grid: %.4f steps (0.25 for "
                       "weights spread evenly)\n", r.metrics[i].value);
    }
    print_eval_metrics(&r);
    print_eval_bits(&r);
    printf("img/s: %.1f\n", r.img_per_s);
    qg_eval_result_free(&r);
    return 0;
}
