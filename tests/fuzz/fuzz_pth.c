/* tests/fuzz/fuzz_pth.c: libFuzzer target for the PyTorch checkpoint
 * reader (src/interop/pth.c and its pickle machine src/interop/pickle.c,
 * both instrumented) on arbitrary bytes, as a legacy stream or a zip. A
 * read either fails with an error text and no result, or every tensor it
 * returns holds numel elements of its dtype (ASan checks each byte) and
 * converts to float. Seeds: corpus/pth (tests/data/pth's small files). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "qgate.h"
#include "interop/pth.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    qg_pth *p = (qg_pth *)&p;
    (void)qg__pth_sniff(data, size);
    if (qg__pth_read_mem(data, size, "fuzz.pth", &p) != QG_OK) {
        if (p || !qg_last_error()[0])
            abort(); /* a failure returns nothing and says why */
        return 0;
    }
    volatile unsigned sum = 0;
    for (size_t i = 0; i < p->ntensors; i++) {
        const qg_pth_tensor *t = &p->tensors[i];
        size_t n = 1;
        for (int d = 0; d < t->ndim; d++)
            n *= (size_t)t->shape[d];
        if (n != t->numel || !t->name)
            abort();
        size_t bytes = t->numel * qg__pk_dtype_size(t->dtype);
        const unsigned char *b = t->data;
        for (size_t k = 0; k < bytes; k++)
            sum += b[k];
        if (t->numel <= 4096) {
            float *f = malloc((t->numel ? t->numel : 1) * sizeof *f);
            if (f)
                qg__pth_to_f32(t, f);
            free(f);
        }
    }
    for (size_t i = 0; i < p->nmeta; i++)
        if (!p->meta[i].key || !p->meta[i].value || qg__pth_meta_get(p, p->meta[i].key) == NULL)
            abort();
    qg__pth_free(p);
    return 0;
}
