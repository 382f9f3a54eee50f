/* src/cli/cmd_bench.c: `qgate bench train`. */
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qgate.h"
#include "cli/cli.h"
#include "train/bench.h"

static void usage(FILE *f)
{
    fprintf(f,
"usage: qgate bench train [options]\n"
"\n"
"Times training steps (forward, loss, backward, SGD) of a model on synthetic\n"
"data after warm-up and prints min/median ms per step, peak device memory\n"
"and a final line 'img/s: X'. With --eval it times inference instead.\n"
"\n"
"  --model NAME      resnet20 (default) | resnet32 | resnet56 ...\n"
"  --shortcut A|B    residual shortcut (default A)\n"
"  --batch N         batch size (default 128)\n"
"  --input CxHxW     input shape (default 3x32x32)\n"
"  --classes N       classes (default 10)\n"
"  --warmup N        untimed steps first (default 3)\n"
"  --steps N         timed steps (default 10)\n"
"  --eval            time inference (forward + loss) only\n"
"  --profile         per-node-type times (synchronises after every node)\n"
"  --device N|NAME   OpenCL device\n");
}

int qg_cli_bench(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "train") != 0) {
        if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
            usage(stdout);
            return 0;
        }
        fprintf(stderr, "qgate bench: expected 'train' (see qgate bench --help)\n");
        return 2;
    }
    qg_bench_cfg c = {.model = "resnet20", .shortcut = 'A', .in_c = 3, .in_h = 32, .in_w = 32,
                      .classes = 10, .batch = 128, .warmup = 3, .steps = 10};
    static const struct option opts[] = {
        {"model", 1, 0, 'm'}, {"shortcut", 1, 0, 's'}, {"batch", 1, 0, 'b'},
        {"input", 1, 0, 'i'}, {"classes", 1, 0, 'k'}, {"warmup", 1, 0, 'w'},
        {"steps", 1, 0, 'n'}, {"eval", 0, 0, 'e'}, {"device", 1, 0, 'd'},
        {"verbose", 0, 0, 'v'}, {"profile", 0, 0, 'p'}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    int o;
    optind = 1;
    opterr = 0;
    argc--;
    argv++;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'm': c.model = optarg; break;
        case 's': c.shortcut = optarg[0]; break;
        case 'b': c.batch = atoi(optarg); break;
        case 'i':
            if (sscanf(optarg, "%dx%dx%d", &c.in_c, &c.in_h, &c.in_w) != 3) {
                fprintf(stderr, "qgate bench: --input expects CxHxW, got '%s'\n", optarg);
                return 2;
            }
            break;
        case 'k': c.classes = atoi(optarg); break;
        case 'w': c.warmup = atoi(optarg); break;
        case 'n': c.steps = atoi(optarg); break;
        case 'e': c.eval = 1; break;
        case 'd': c.device = optarg; break;
        case 'v': c.verbose = 1; break;
        case 'p': c.profile = 1; break;
        case 'h': usage(stdout); return 0;
        default:
            fprintf(stderr, "qgate bench: unknown option '%s'\n", argv[optind - 1]);
            return 2;
        }
    }
    if (c.batch < 1 || c.steps < 1 || c.warmup < 0 || c.classes < 2 || c.in_c < 1) {
        fprintf(stderr, "qgate bench: --batch, --steps, --classes and --input must be positive\n");
        return 2;
    }
    qg_bench_result r;
    qg_status st = qg__bench_train(&c, &r);
    if (st != QG_OK) {
        fprintf(stderr, "qgate bench: %s\n", qg_last_error());
        return 1;
    }
    printf("model %s, input %dx%dx%d, batch %d, %s: %.1f MMAC/image forward\n", c.model, c.in_c,
           c.in_h, c.in_w, c.batch, c.eval ? "inference" : "training", r.macs_per_image / 1e6);
    printf("ms/step: min %.2f median %.2f\n", r.ms_per_step_min, r.ms_per_step_median);
    printf("device memory: %.1f MiB (activations, gradients, workspace, parameters, optimizer)\n",
           r.device_bytes / 1048576.0);
    printf("img/s: %.1f\n", r.img_per_s);
    return 0;
}
