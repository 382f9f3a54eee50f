/* tests/fuzz/fuzz_jpeg.c: libFuzzer target for the JPEG reader
 * (src/data/jpeg.c, instrumented; TurboJPEG itself is not) on arbitrary
 * bytes: open, and for images up to 2^16 pixels render the whole image and
 * a crop into small outputs (DCT scaling and the resampler's bounds). A
 * failure must leave an error text; the handle is reused across inputs,
 * as a loader thread reuses it. Seeds: corpus/jpeg (tests/data/jpeg). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "qgate.h"
#include "data/jpeg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static qg_jpeg *j;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!j && qg__jpeg_new(&j) != QG_OK)
        abort();
    int w = 0, h = 0;
    if (qg__jpeg_open_mem(j, data, size, "fuzz.jpg", &w, &h) != QG_OK) {
        if (!qg_last_error()[0])
            abort();
        return 0;
    }
    if (w < 1 || h < 1)
        abort();
    if ((uint64_t)w * (uint64_t)h > (1u << 16))
        return 0;
    static float out[3 * 16 * 16];
    const float scale[3] = {1, 1, 1}, bias[3] = {0, 0, 0};
    qg_jpeg_region whole = {0, 0, w / 16.0, h / 16.0, 0, 0, w, h};
    int den = 0;
    if (qg__jpeg_render(j, &whole, 16, 16, 0, scale, bias, out, &den) == QG_OK)
        for (int i = 0; i < 3 * 16 * 16; i++)
            if (!(out[i] >= -0.5f && out[i] <= 255.5f))
                abort(); /* a value outside the pixel range */
    int cw = w > 2 ? w / 2 : w, ch = h > 2 ? h / 2 : h;
    qg_jpeg_region crop = {w - cw, 0, cw / 7.0, ch / 5.0, w - cw, 0, w, ch};
    (void)qg__jpeg_render(j, &crop, 7, 5, 1, scale, bias, out, NULL);
    return 0;
}
