/* src/core/rng.h: seeded random numbers for initialisation (splitmix64). */
#ifndef QG_CORE_RNG_H
#define QG_CORE_RNG_H

#include <stdint.h>

typedef struct qg_rng {
    uint64_t s;
} qg_rng;

static inline uint64_t qg__rng_u64(qg_rng *r)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Uniform in [0, 1). */
static inline double qg__rng_uniform(qg_rng *r)
{
    return (double)(qg__rng_u64(r) >> 11) * (1.0 / 9007199254740992.0);
}

/* Standard normal (Box-Muller). */
double qg__rng_normal(qg_rng *r);

#endif
