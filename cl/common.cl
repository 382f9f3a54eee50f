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

/* The integer code of |v| by scale sc and L = 2^bits - 1 levels (docs/methods.md
 * §2.2): rint(clamp(|v|/sc, 0, 1) * L). Every kernel that rounds to bits
 * goes through it (or quant.cl's vector twin), so they agree bit for bit. */
static inline float qg_code(float v, float sc, float L)
{
    return rint(fmin(fmax(fabs(v) / sc, 0.0f), 1.0f) * L);
}
