/* tests/fuzz/fuzz_shapes.c: libFuzzer target for the shapes file of
 * `qgate tune --shapes` (src/tune/shapes_file.c). A failed load leaves
 * the result empty; a good one holds only shapes the conv layer takes.
 * Seeds: corpus/shapes. */
#include <stdint.h>
#include <stdlib.h>

#include "qgate.h"
#include "tune/shapes_file.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    qg_tune_shapes s;
    if (qg__tune_shapes_load_memory(NULL, "fuzz.json", data, size, &s) != QG_OK) {
        if (s.conv || s.nconv)
            abort();
        return 0;
    }
    for (size_t i = 0; i < s.nconv; i++)
        if (s.conv[i].n < 1 || (s.conv[i].stride != 1 && s.conv[i].stride != 2) ||
            !s.conv_class[i][0])
            abort();
    qg__tune_shapes_free(&s);
    return 0;
}
