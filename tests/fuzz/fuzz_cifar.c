/* tests/fuzz/fuzz_cifar.c: libFuzzer target for the CIFAR reader
 * (src/data/cifar.c). Input: one byte choosing CIFAR-10 (even) or
 * CIFAR-100 (odd), then the file. Seeds: corpus/cifar. */
#include <stdint.h>
#include <stdlib.h>

#include "qgate.h"
#include "data/dataset.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int c100 = data[0] & 1;
    qg_dataset *ds = (qg_dataset *)&ds;
    if (qg__dataset_load_cifar_memory("fuzz.bin", data + 1, size - 1, c100, &ds) != QG_OK) {
        if (ds)
            abort();
        return 0;
    }
    for (size_t i = 0; i < qg__dataset_count(ds); i++) {
        int l = qg__dataset_label(ds, i);
        if (l < 0 || l >= (c100 ? 100 : 10))
            abort();
    }
    qg__dataset_free(ds);
    return 0;
}
