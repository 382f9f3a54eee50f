/* src/cli/main.c: `qgate` entry point; dispatches to one file per
 * subcommand (cmd_*.c). */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "qgate.h"
#include "cli/cli.h"

typedef struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} command;

static const command commands[] = {
    {"train", qg_cli_train, "train a model (default: ResNet-20 on Fashion-MNIST)"},
    {"eval", qg_cli_eval, "evaluate a checkpoint on the test split"},
    {"search", qg_cli_search, "ProQHA mixed-precision search from a --proqha checkpoint"},
    {"tune", qg_cli_tune, "autotune kernel parameters for this device"},
    {"bench", qg_cli_bench, "time training steps (bench train) or kernels (bench kernels)"},
    {"convert", qg_cli_convert, "PyTorch .pth checkpoint -> safetensors (no pickled code runs)"},
    {"inspect", qg_cli_inspect, "architecture, method and per-layer table of a checkpoint"},
    {"plot", qg_cli_plot, "training curves, per-layer bars, weight histograms (PNG/SVG/PDF)"},
    {"export-images", qg_cli_export_images, "write a dataset as JPEG class folders"},
    {"export-model", qg_cli_export_model, "a checkpoint without optimizer state (for PyTorch)"},
    {"devices", qg_cli_devices, "list OpenCL devices and their capabilities"},
    {"selfcheck", qg_cli_selfcheck, "build all kernels and check them against C references"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: qgate [--help] [--version] <command> [options]\n\n"
               "Trains and evaluates gated and quantized CNNs on OpenCL devices.\n\n"
               "commands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        fprintf(f, "  %-13s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\nRun 'qgate <command> --help' for the options of a command.\n"
               "Environment: QGATE_DEVICE (device index or name substring), QGATE_CACHE_DIR\n"
               "(kernel binary cache), QGATE_KERNEL_DIR (load cl/*.cl from disk).\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0) {
        printf("qgate %s\n", qg_version());
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "qgate: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
