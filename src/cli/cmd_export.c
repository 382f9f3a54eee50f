/* src/cli/cmd_export.c: `qgate export-images`, an in-memory dataset
 * written as JPEG class folders (src/data/export.c) for --data folder. */
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "qgate.h"
#include "cli/cli.h"
#include "cli/model_flags.h"
#include "data/dataset.h"

static void usage(FILE *f)
{
    fprintf(f,
"usage: qgate export-images --out DIR [options]\n"
"\n"
"Writes a dataset as JPEG class folders, DIR/train/<class>/NNNNN.jpg and\n"
"DIR/val/<class>/NNNNN.jpg (val = the test split), which qgate train --data\n"
"folder --data-dir DIR and torchvision's ImageFolder read.\n"
"\n"
"  --data NAME       fashion-mnist (default) | mnist | cifar10 | cifar100\n"
"  --data-dir DIR    where the dataset files are (default: the Debian package's)\n"
"  --size N          side of the written images (default: the dataset's)\n"
"  --limit N         write only the first N images of each split\n"
"  --quality Q       JPEG quality 1..100 (default 90)\n");
}

static const char *const fashion[] = {"tshirt", "trouser", "pullover", "dress", "coat",
                                      "sandal", "shirt", "sneaker", "bag", "boot"};
static const char *const cifar10[] = {"airplane", "automobile", "bird", "cat", "deer",
                                      "dog", "frog", "horse", "ship", "truck"};

int qg_cli_export_images(int argc, char **argv)
{
    enum { O_DATA = 256, O_DIR, O_SIZE, O_LIMIT, O_QUALITY, O_OUT, O_HELP };
    static const struct option opts[] = {
        {"data", 1, 0, O_DATA}, {"data-dir", 1, 0, O_DIR}, {"size", 1, 0, O_SIZE},
        {"limit", 1, 0, O_LIMIT}, {"quality", 1, 0, O_QUALITY}, {"out", 1, 0, O_OUT},
        {"help", 0, 0, O_HELP}, {0, 0, 0, 0}};
    const char *cmd = "export-images", *data = "fashion-mnist", *dir = NULL, *out = NULL;
    long size = 0, limit = 0, quality = 90;
    int o;
    optind = 1;
    opterr = 0;
    while ((o = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
        switch (o) {
        case O_HELP: usage(stdout); return 0;
        case O_DATA: data = optarg; break;
        case O_DIR: dir = optarg; break;
        case O_OUT: out = optarg; break;
        case O_SIZE:
            if (!qg_cli_parse_long(cmd, "size", optarg, 1, 4096, &size)) return 2;
            break;
        case O_LIMIT:
            if (!qg_cli_parse_long(cmd, "limit", optarg, 1, 1L << 40, &limit)) return 2;
            break;
        case O_QUALITY:
            if (!qg_cli_parse_long(cmd, "quality", optarg, 1, 100, &quality)) return 2;
            break;
        case ':':
            fprintf(stderr, "qgate %s: %s needs a value\n", cmd, argv[optind - 1]);
            return 2;
        default:
            fprintf(stderr, "qgate %s: unknown option '%s'\n", cmd, argv[optind - 1]);
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc || !out) {
        fprintf(stderr, "qgate %s: %s\n", cmd, out ? "unexpected argument" : "--out DIR is "
                "required");
        return 2;
    }
    if (strcmp(data, "folder") == 0) {
        fprintf(stderr, "qgate %s: --data folder is already JPEG files\n", cmd);
        return 2;
    }
    const char *const *names = strcmp(data, "fashion-mnist") == 0 ? fashion
                               : strcmp(data, "cifar10") == 0     ? cifar10
                                                                  : NULL;
    for (int train = 1; train >= 0; train--) {
        qg_dataset *ds = NULL;
        size_t n = 0;
        qg_status st = qg__dataset_load(data, dir, train, &ds);
        if (st == QG_OK)
            st = qg__dataset_export_jpeg(ds, out, train ? "train" : "val", names,
                                         size ? (int)size : qg__dataset_width(ds),
                                         (int)quality, (size_t)limit, &n);
        qg__dataset_free(ds);
        if (st != QG_OK) {
            fprintf(stderr, "qgate %s: %s\n", cmd, qg_last_error());
            return 1;
        }
        printf("%s/%s: %zu images\n", out, train ? "train" : "val", n);
    }
    return 0;
}
