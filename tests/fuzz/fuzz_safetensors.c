/* tests/fuzz/fuzz_safetensors.c: libFuzzer target for the safetensors
 * reader (src/model/safetensors.c) on arbitrary bytes. A parse either
 * fails with no file returned, or every tensor it returns lies inside
 * the data it copied and is found again by name. Seeds: corpus/safetensors. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "qgate.h"
#include "model/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    qg_st_file *f = (qg_st_file *)&f;
    if (qg__safetensors_read_memory("fuzz.safetensors", data, size, &f) != QG_OK) {
        if (f)
            abort(); /* no half-built result on failure */
        return 0;
    }
    volatile unsigned sum = 0;
    for (size_t i = 0; i < qg__safetensors_count(f); i++) {
        const qg_st_tensor *t = qg__safetensors_at(f, i);
        size_t bytes = qg_dtype_size(t->dtype);
        for (int d = 0; d < t->ndim; d++)
            bytes *= (size_t)t->shape[d];
        if (bytes > size)
            abort(); /* a tensor larger than the input */
        const unsigned char *p = t->data;
        for (size_t b = 0; b < bytes; b++) /* ASan checks every byte is ours */
            sum += p[b];
        if (qg__safetensors_get(f, t->name) != t)
            abort();
    }
    (void)qg__safetensors_meta(f, "format");
    qg__safetensors_free(f);
    return 0;
}
