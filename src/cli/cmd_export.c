/* src/cli/cmd_export.c: `qgate export-images`, an in-memory dataset
 * written as JPEG class folders (src/data/export.c) for --data folder;
 * `qgate export-model`, a checkpoint without its optimizer state. */
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qgate.h"
#include "cli/cli.h"
#include "cli/model_flags.h"
#include "data/dataset.h"
#include "model/safetensors.h"

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

static void model_usage(FILE *f)
{
    fprintf(f,
"usage: qgate export-model CHECKPOINT OUT.safetensors\n"
"\n"
"Writes the model of a qgate checkpoint without its optimizer state (the\n"
"optimizer.* tensors): every remaining tensor is one of the PyTorch model's\n"
"state dict, batch norms' num_batches_tracked included, so the file loads\n"
"with load_state_dict(strict=True) into the reference's model definition.\n"
"The metadata (architecture, methods, normalisation) is kept, so qgate eval\n"
"reads the file too. OUT is written atomically.\n");
}

int qg_cli_export_model(int argc, char **argv)
{
    const char *cmd = "export-model";
    if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        model_usage(stdout);
        return 0;
    }
    if (argc != 3 || argv[1][0] == '-' || argv[2][0] == '-') {
        fprintf(stderr, "qgate %s: expected CHECKPOINT OUT.safetensors\n", cmd);
        model_usage(stderr);
        return 2;
    }
    qg_st_file *f = NULL;
    qg_status st = qg__safetensors_read(argv[1], &f);
    if (st != QG_OK) {
        fprintf(stderr, "qgate %s: %s\n", cmd, qg_last_error());
        return 1;
    }
    size_t n = qg__safetensors_count(f), kept = 0, nmeta;
    const qg_st_meta *meta = qg__safetensors_meta_all(f, &nmeta);
    qg_st_tensor *ts = calloc(n ? n : 1, sizeof *ts);
    if (!ts) {
        qg__safetensors_free(f);
        fprintf(stderr, "qgate %s: out of memory\n", cmd);
        return 1;
    }
    for (size_t i = 0; i < n; i++) {
        const qg_st_tensor *t = qg__safetensors_at(f, i);
        if (strncmp(t->name, "optimizer.", 10) != 0)
            ts[kept++] = *t;
    }
    if (!qg__safetensors_meta(f, "arch"))
        fprintf(stderr, "qgate %s: warning: '%s' has no qgate 'arch' metadata; copying its "
                "tensors anyway\n", cmd, argv[1]);
    st = qg__safetensors_write(argv[2], ts, kept, meta, nmeta);
    free(ts);
    qg__safetensors_free(f);
    if (st != QG_OK) {
        fprintf(stderr, "qgate %s: %s\n", cmd, qg_last_error());
        return 1;
    }
    printf("%s: %zu tensors (%zu optimizer tensors left out)\n", argv[2], kept, n - kept);
    return 0;
}
