/* src/core/rng.c: normal deviates for weight initialisation. */
#include "config.h"

#include <math.h>

#include "core/rng.h"

double qg__rng_normal(qg_rng *r)
{
    double u1 = qg__rng_uniform(r), u2 = qg__rng_uniform(r);
    if (u1 < 1e-300)
        u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}
