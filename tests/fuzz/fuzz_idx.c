/* tests/fuzz/fuzz_idx.c: libFuzzer target for the IDX reader
 * (src/data/idx.c), raw and gzip. Input: a 4-byte little-endian split
 * point s, then the images file (s bytes, modulo what is there), then
 * the labels file. A load either fails with no dataset returned, or
 * every label is in range. Seeds: corpus/idx. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "qgate.h"
#include "data/dataset.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 4)
        return 0;
    size_t s = (size_t)data[0] | (size_t)data[1] << 8 | (size_t)data[2] << 16 |
               (size_t)data[3] << 24;
    data += 4;
    size -= 4;
    s %= size + 1;
    qg_dataset *ds = (qg_dataset *)&ds;
    if (qg__dataset_load_idx_memory("fuzz-images", data, s, "fuzz-labels", data + s, size - s,
                                    &ds) != QG_OK) {
        if (ds)
            abort();
        return 0;
    }
    size_t n = qg__dataset_count(ds);
    volatile unsigned sum = 0;
    for (size_t i = 0; i < n; i++) {
        int l = qg__dataset_label(ds, i);
        if (l < 0 || l >= qg__dataset_classes(ds))
            abort();
        sum += qg__dataset_image(ds, i)[0];
    }
    qg__dataset_free(ds);
    return 0;
}
