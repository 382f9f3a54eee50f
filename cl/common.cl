/* cl/common.cl: definitions shared by every program (sent to
 * clCreateProgramWithSource as the first string).
 *
 * Conventions: every tensor argument is a (global pointer, int element
 * offset) pair, because device memory has no pointer arithmetic across
 * API calls; tensors are contiguous NCHW float32 unless a kernel says
 * otherwise. Global sizes are rounded up to the work-group size, so every
 * kernel guards its index against the true element count. */
#define QG_T(type, name) __global type *name##_base, int name##_off
#define QG_P(name) (name##_base + name##_off)

static inline float qg_sign(float v)
{
    return v > 0.0f ? 1.0f : (v < 0.0f ? -1.0f : 0.0f);
}

/* v rounded to L levels of scale sc (spec §1.1), in qg_quant_apply's order
 * of operations, so that a conv that quantizes its input while preparing
 * it gets the very floats the separate pass would have stored. */
static inline float qg_quant_level(float v, float sc, float L)
{
    float a = fmin(fmax(fabs(v) / sc, 0.0f), 1.0f);
    return rint(a * L) / L * sc * qg_sign(v);
}
