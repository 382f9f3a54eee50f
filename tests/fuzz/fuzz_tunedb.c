/* tests/fuzz/fuzz_tunedb.c: libFuzzer target for the tuning database
 * loader (src/cl/tunedb.c). The bytes become the user database of a
 * context that has no OpenCL objects (lookups only read its device
 * description); every kernel program is then looked up. Whatever an
 * entry holds, a lookup either finds nothing or returns values that
 * pass the program's own check. Seeds: corpus/tunedb (device "fuzz"). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cl/ctx.h"
#include "cl/tunedb.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char g_db[256];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    /* No shipped databases: only the fuzzed file is read. */
    setenv("QGATE_DATA_DIR", "/nonexistent-qgate-fuzz", 1);
    const char *tmp = getenv("TMPDIR");
    snprintf(g_db, sizeof g_db, "%s/qgate-fuzz-tunedb-%ld.json", tmp && *tmp ? tmp : "/tmp",
             (long)getpid());
    return 0;
}

static void check(qg_ctx *ctx, const qg_program_desc *d)
{
    long v[QG_MAX_TUNABLES];
    char why[256];
    if (qg__tunedb_lookup(ctx, d->id, "c16_k16_h32_w32_s1", v) && d->valid &&
        !d->valid(ctx, v, why, sizeof why))
        abort(); /* an entry the registry refuses got through */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    FILE *f = fopen(g_db, "wb");
    if (!f)
        abort();
    if (size && fwrite(data, 1, size, f) != size)
        abort();
    fclose(f);
    qg_ctx *ctx = calloc(1, sizeof *ctx);
    if (!ctx)
        abort();
    snprintf(ctx->info.key, sizeof ctx->info.key, "fuzz");
    ctx->info.type = QG_DEVICE_TYPE_CPU;
    ctx->info.max_work_group = 4096;
    ctx->info.local_mem = 32768;
    snprintf(ctx->tune_db, sizeof ctx->tune_db, "%s", g_db);
    for (size_t i = 0; i < qg__program_count(); i++)
        check(ctx, qg__program_at(i));
    (void)qg__tunedb_warnings(ctx);
    qg__tunedb_free(ctx);
    free(ctx);
    unlink(g_db);
    return 0;
}
