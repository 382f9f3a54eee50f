/* src/cli/cmd_devices.c: `qgate devices` and `qgate selfcheck`. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "qgate.h"
#include "cli/cli.h"

const char *qg_cli_device_arg(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--device") == 0 && i + 1 < argc)
            return argv[i + 1];
        if (strncmp(argv[i], "--device=", 9) == 0)
            return argv[i] + 9;
    }
    return NULL;
}

int qg_cli_devices(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            printf("usage: qgate devices\n\nLists every OpenCL device with its type, vendor, "
                   "driver, compute units,\nlocal memory, fp16 support, max work-group size "
                   "and cache key.\nSelect one elsewhere with --device N|SUBSTRING or "
                   "QGATE_DEVICE.\n");
            return 0;
        }
        fprintf(stderr, "qgate devices: unknown option '%s'\n", argv[i]);
        return 2;
    }
    if (qg_devices_print(stdout) != QG_OK) {
        fprintf(stderr, "qgate devices: %s\n", qg_last_error());
        return 1;
    }
    return 0;
}

int qg_cli_selfcheck(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            printf("usage: qgate selfcheck [--device N|SUBSTRING] [--verbose]\n\n"
                   "Builds every kernel program with its default parameters and compares a\n"
                   "few kernels and a CLBlast GEMM with the C references.\n");
            return 0;
        }
        if (strcmp(argv[i], "--device") == 0)
            i++;
        else if (strncmp(argv[i], "--device=", 9) != 0 && strcmp(argv[i], "--verbose") != 0) {
            fprintf(stderr, "qgate selfcheck: unknown option '%s'\n", argv[i]);
            return 2;
        }
    }
    qg_ctx_opts opts = {.device = qg_cli_device_arg(argc, argv)};
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--verbose") == 0)
            opts.verbose = 1;
    qg_ctx *ctx;
    if (qg_ctx_new(&opts, &ctx) != QG_OK) {
        fprintf(stderr, "qgate selfcheck: %s\n", qg_last_error());
        return 1;
    }
    const qg_device_info *d = qg_ctx_device(ctx);
    printf("device [%d] %s (%s, driver %s)\n", d->index, d->name, d->platform, d->driver);
    qg_status st = qg_ctx_selfcheck(ctx, stdout);
    qg_build_stats bs;
    qg_ctx_build_stats(ctx, &bs);
    printf("programs: %u built from source, %u loaded from cache, %.2f s\n", bs.programs_built,
           bs.programs_loaded, bs.build_seconds);
    if (st != QG_OK)
        fprintf(stderr, "qgate selfcheck: %s\n", qg_ctx_last_error(ctx));
    else
        printf("selfcheck passed\n");
    qg_ctx_free(ctx);
    return st == QG_OK ? 0 : 1;
}
