/* bench/bench_jpeg.c: throughput of the JPEG class-folder pipeline
 * (src/data/folder.c + jpeg.c through the threaded loader): decode,
 * RandomResizedCrop + flip (or resize + centre crop with --eval), resize
 * to the input size and normalise, in images per second. Compare with
 * bench/torchvision_loader.py on the same folder and thread count (made
 * by bench/make_photo_folder.sh); bench/compare_jpeg.sh alternates them.
 *
 * usage: bench_jpeg DIR [--workers N] [--batch N] [--epochs N]
 *                       [--input-size N] [--eval]
 * DIR holds train/<class>/<file>.jpg (and val/ with --eval). One warm-up
 * epoch (page cache) is not timed. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "qgate.h"
#include "data/dataset.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv)
{
    if (argc < 2 || argv[1][0] == '-') {
        fprintf(stderr, "usage: bench_jpeg DIR [--workers N] [--batch N] [--epochs N] "
                "[--input-size N] [--eval]\n");
        return 2;
    }
    const char *dir = argv[1];
    int workers = 2, batch = 32, epochs = 3, size = 224, eval = 0;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--eval") == 0)
            eval = 1;
        else if (i + 1 < argc && strcmp(argv[i], "--workers") == 0)
            workers = atoi(argv[++i]);
        else if (i + 1 < argc && strcmp(argv[i], "--batch") == 0)
            batch = atoi(argv[++i]);
        else if (i + 1 < argc && strcmp(argv[i], "--epochs") == 0)
            epochs = atoi(argv[++i]);
        else if (i + 1 < argc && strcmp(argv[i], "--input-size") == 0)
            size = atoi(argv[++i]);
        else {
            fprintf(stderr, "bench_jpeg: unknown option '%s'\n", argv[i]);
            return 2;
        }
    }
    qg_data_opts dopt = {.input_size = size};
    qg_dataset *ds = NULL;
    qg_loader *ld = NULL;
    if (qg__dataset_load_opts("folder", dir, !eval, &dopt, &ds) != QG_OK) {
        fprintf(stderr, "bench_jpeg: %s\n", qg_last_error());
        return 1;
    }
    qg_loader_opts o = {.batch = batch, .shuffle = !eval, .flip = !eval, .seed = 1,
                        .workers = workers};
    if (qg__loader_new(ds, &o, &ld) != QG_OK) {
        fprintf(stderr, "bench_jpeg: %s\n", qg_last_error());
        qg__dataset_free(ds);
        return 1;
    }
    double t0 = 0, sum = 0;
    size_t images = 0;
    for (int e = 0; e <= epochs; e++) {
        if (e == 1)
            t0 = now_s();
        qg__loader_start_epoch(ld, e);
        const float *img;
        const int32_t *lab;
        int n;
        while (qg__loader_next(ld, &img, &lab, &n)) {
            sum += img[0];   /* touch the batch */
            if (e > 0)
                images += (size_t)n;
        }
    }
    double dt = now_s() - t0;
    printf("qgate %s: %zu images of %dx%d in %.2f s = %.1f img/s (%d workers, batch %d, "
           "%zu bad files)%s\n", eval ? "eval" : "train", images, size, size, dt,
           (double)images / dt, workers, batch, qg__dataset_bad_files(ds), sum == 1e30 ? "!" : "");
    qg__loader_free(ld);
    qg__dataset_free(ds);
    return 0;
}
