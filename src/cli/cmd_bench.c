/* src/cli/cmd_bench.c: `qgate bench train` and `qgate bench kernels`. */
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qgate.h"
#include "cli/cli.h"
#include "cli/model_flags.h"
#include "train/bench.h"
#include "tune/tuner.h"

static void usage(FILE *f)
{
    fprintf(f,
"usage: qgate bench train [options]\n"
"       qgate bench kernels [options]\n"
"\n"
"train: times training steps (forward, loss, backward, SGD) of a model on\n"
"synthetic data after warm-up and prints min/median ms per step, peak device\n"
"memory and a final line 'img/s: X'. With --eval it times inference instead.\n"
"kernels: times every tunable kernel program on ResNet-20 shapes with its\n"
"default and its tuned parameters (see qgate bench kernels --help).\n"
"\n"
"train options:\n"
"  --model NAME      resnet20 (default) | resnet32 | resnet56 ... | resnet18 |\n"
"                    shufflenet_v2_x0_5 (torchvision's; e.g. --input 3x224x224) |\n"
"                    vgg16_bn (PSG-pytorch's, 32x32 inputs)\n"
"  --shortcut A|B    residual shortcut (default A)\n"
"  --batch N         batch size (default 128)\n"
"  --input CxHxW     input shape (default 3x32x32)\n"
"  --classes N       classes (default 10)\n"
"  --warmup N        untimed steps first (default 3)\n"
"  --steps N         timed steps (default 10)\n"
"  --eval            time inference (forward + loss) only\n"
"  --profile         per-node-type times (synchronises after every node)\n"
"  --dense-gates     gated layers (CG, PG) compute the work their gates turn off\n"
"                    and mask it (the references' way) instead of skipping it\n"
"  --compare-dense   alternate steps with skipping and with dense gating in one\n"
"                    run: img/s of both, and per gated layer its density, FLOP\n"
"                    reduction, ms per step dense and gated (per-node profile),\n"
"                    the time saved and its share of the theoretical saving\n"
"  --init FILE       start from a checkpoint's weights (gates as trained; the\n"
"                    input is still synthetic, so densities differ from real data)\n"
"  --device N|NAME   OpenCL device\n"
"  --verbose         log kernel builds\n"
"methods:\n");
    qg_cli_model_help(f);
}

static void kernels_usage(FILE *f)
{
    fprintf(f,
"usage: qgate bench kernels [options]\n"
"\n"
"Times each tune case (the kernels of one program on ResNet-20 training\n"
"shapes, as `qgate tune` runs them) twice: with the program's default\n"
"parameters (CLBlast: its built-in ones) and with the tuned ones the tuning\n"
"databases hold for this device. Both are checked against the C reference\n"
"first. One line per case and parameter set: device key (name|driver),\n"
"kernel, shape, default|tuned, min and median ms, GB/s or GFLOP/s at the min,\n"
"the speed-up of the medians, and the parameter values. Default and tuned\n"
"runs alternate, so other load on the machine affects both alike.\n"
"Exit status 1 if a parameter set fails to build, run or verify.\n"
"\n"
"  --kernel NAME     one program only (quant, pool, clblast_xgemm, ...)\n"
"  --runs N          timed runs per parameter set (default 20)\n"
"  --tune-db FILE    user database (default $QGATE_TUNE_DB, else\n"
"                    $XDG_CACHE_HOME/qgate/tuning.json)\n"
"  --device N|NAME   OpenCL device\n"
"  --verbose         log kernel builds\n");
}

static int bench_kernels(int argc, char **argv)
{
    static const struct option opts[] = {
        {"kernel", 1, 0, 'k'}, {"runs", 1, 0, 'r'}, {"tune-db", 1, 0, 't'},
        {"device", 1, 0, 'd'}, {"verbose", 0, 0, 'v'}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    qg_bench_kernels_opts o = {.runs = 20, .out = stdout};
    qg_ctx_opts co = {.profiling = 1};
    long v;
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
        switch (c) {
        case 'k': o.kernel = optarg; break;
        case 'r':
            if (!qg_cli_parse_long("bench kernels", "runs", optarg, 1, 100000, &v))
                return 2;
            o.runs = (int)v;
            break;
        case 't': co.tune_db = optarg; break;
        case 'd': co.device = optarg; break;
        case 'v': co.verbose = 1; break;
        case 'h': kernels_usage(stdout); return 0;
        case ':':
            fprintf(stderr, "qgate bench kernels: option '%s' needs a value\n",
                    argv[optind - 1]);
            return 2;
        default:
            fprintf(stderr, "qgate bench kernels: unknown option '%s' (see qgate bench "
                    "kernels --help)\n", argv[optind - 1]);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "qgate bench kernels: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    qg_ctx *ctx;
    if (qg_ctx_new(&co, &ctx) != QG_OK) {
        fprintf(stderr, "qgate bench kernels: %s\n", qg_last_error());
        return 1;
    }
    int failures = 0;
    qg_status st = qg__bench_kernels(ctx, &o, &failures);
    if (st != QG_OK)
        fprintf(stderr, "qgate bench kernels: %s\n", qg_ctx_last_error(ctx));
    else if (failures)
        fprintf(stderr, "qgate bench kernels: %d parameter set(s) failed (see the FAILED "
                "lines)\n", failures);
    qg_ctx_free(ctx);
    return st != QG_OK || failures ? 1 : 0;
}

static int bench_train(int argc, char **argv)
{
    qg_bench_cfg c = {.model = "resnet20", .shortcut = 'A', .in_c = 3, .in_h = 32, .in_w = 32,
                      .classes = 10, .batch = 128, .warmup = 3, .steps = 10};
    static const struct option own[] = {
        {"model", 1, 0, 'm'}, {"shortcut", 1, 0, 's'}, {"batch", 1, 0, 'b'},
        {"input", 1, 0, 'i'}, {"classes", 1, 0, 'k'}, {"warmup", 1, 0, 'W'},
        {"steps", 1, 0, 'n'}, {"eval", 0, 0, 'e'}, {"device", 1, 0, 'd'},
        {"verbose", 0, 0, 'v'}, {"profile", 0, 0, 'p'}, {"help", 0, 0, 'h'},
        {"dense-gates", 0, 0, 'G'}, {"compare-dense", 0, 0, 'C'}, {"init", 1, 0, 'I'},
        {0, 0, 0, 0}};
    struct option opts[sizeof own / sizeof *own + QG_CLI_MODEL_NOPTIONS];
    qg_cli_model_flags mf;
    const char *cmd = "bench train";
    long v;
    int o, r;
    if (!qg_cli_options_join(opts, sizeof opts / sizeof *opts, own))
        return 2;
    qg_cli_model_flags_init(&mf);
    optind = 1;
    opterr = 0;
    while ((o = getopt_long(argc, argv, ":" QG_CLI_MODEL_SHORTOPTS, opts, NULL)) != -1) {
        switch (o) {
        case 'm': c.model = optarg; break;
        case 's':
            if ((optarg[0] != 'A' && optarg[0] != 'B') || optarg[1]) {
                fprintf(stderr, "qgate bench: --shortcut must be A or B, got '%s'\n", optarg);
                return 2;
            }
            c.shortcut = optarg[0];
            break;
        case 'b':
            if (!qg_cli_parse_long(cmd, "batch", optarg, 1, 65536, &v)) return 2;
            c.batch = (int)v;
            break;
        case 'i':
            if (sscanf(optarg, "%dx%dx%d", &c.in_c, &c.in_h, &c.in_w) != 3 || c.in_c < 1 ||
                c.in_h < 1 || c.in_w < 1) {
                fprintf(stderr, "qgate bench: --input expects CxHxW, got '%s'\n", optarg);
                return 2;
            }
            break;
        case 'k':
            if (!qg_cli_parse_long(cmd, "classes", optarg, 2, 100000, &v)) return 2;
            c.classes = (int)v;
            break;
        case 'W':
            if (!qg_cli_parse_long(cmd, "warmup", optarg, 0, 100000, &v)) return 2;
            c.warmup = (int)v;
            break;
        case 'n':
            if (!qg_cli_parse_long(cmd, "steps", optarg, 1, 100000, &v)) return 2;
            c.steps = (int)v;
            break;
        case 'e': c.eval = 1; break;
        case 'd': c.device = optarg; break;
        case 'v': c.verbose = 1; break;
        case 'p': c.profile = 1; break;
        case 'G': c.dense_gates = 1; break;
        case 'C': c.compare_dense = 1; break;
        case 'I': c.init = optarg; break;
        case 'h': usage(stdout); return 0;
        case ':':
            fprintf(stderr, "qgate bench: option '%s' needs a value\n", argv[optind - 1]);
            return 2;
        default:
            if ((r = qg_cli_model_flag(cmd, o, optarg, &mf)) != 0) {
                if (r < 0)
                    return 2;
                break;
            }
            fprintf(stderr, "qgate bench: unknown option '%s' (see qgate bench --help)\n",
                    argv[optind - 1]);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "qgate bench: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (!qg_cli_model_flags_finish(cmd, &mf))
        return 2;
    c.methods = &mf.mc;
    qg_bench_result res;
    qg_status st = qg__bench_train(&c, &res);
    if (st != QG_OK) {
        fprintf(stderr, "qgate bench: %s\n", qg_last_error());
        return 1;
    }
    char method[256];
    qg_method_cfg_describe(&mf.mc, method, sizeof method);
    printf("model %s (%s), input %dx%dx%d, batch %d, %s: %.1f MMAC/image forward\n", c.model,
           method, c.in_c, c.in_h, c.in_w, c.batch, c.eval ? "inference" : "training",
           res.macs_per_image / 1e6);
    printf("ms/step: min %.2f median %.2f\n", res.ms_per_step_min, res.ms_per_step_median);
    printf("device memory: %.1f MiB (peak of qgate's device buffers: activations, gradients, "
           "node buffers, workspace, parameters, optimizer)\n",
           res.device_bytes / 1048576.0);
    if (c.compare_dense) {
        printf("dense gating: ms/step median %.2f, img/s %.1f; skipping: %.2fx the img/s of "
               "dense gating (steps alternated)\n", res.ms_per_step_median_dense,
               res.img_per_s_dense, res.img_per_s / res.img_per_s_dense);
        printf("img/s dense: %.1f\n", res.img_per_s_dense);
    }
    printf("img/s: %.1f\n", res.img_per_s);
    return 0;
}

int qg_cli_bench(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "train") == 0)
        return bench_train(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "kernels") == 0)
        return bench_kernels(argc - 1, argv + 1);
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "qgate bench: expected 'train' or 'kernels' (see qgate bench --help)\n");
    return 2;
}
