/* src/tune/case_util.c: helpers shared by the tune-case tables (see
 * tune/cases.h): reference comparisons and seeded device inputs. */
#include "config.h"

#include <math.h>
#include <stdlib.h>

#include "core/error.h"
#include "core/rng.h"
#include "tune/cases.h"

double qg__tune_max_rel_err(const float *got, const float *ref, size_t n, double floor_)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)got[i] - ref[i]) / (floor_ + fabs(ref[i]));
        if (!(e <= m))
            m = isnan(e) ? INFINITY : e;
    }
    return m;
}

qg_status qg__tune_check_f32(qg_ctx *ctx, const qg_tensor *t, const float *ref, size_t n,
                             double floor_, double *err)
{
    float *g = malloc((n ? n : 1) * sizeof *g);
    if (!g)
        return qg__error(ctx, QG_ERR_NOMEM, "out of memory");
    qg_status st = qg_tensor_read(t, g, n * sizeof *g);
    if (st == QG_OK) {
        double e = qg__tune_max_rel_err(g, ref, n, floor_);
        if (!(e <= *err))
            *err = e;
    }
    free(g);
    return st;
}

qg_status qg__tune_check_i32(qg_ctx *ctx, const qg_tensor *t, const int32_t *ref, size_t n,
                             double *err)
{
    int32_t *g = malloc((n ? n : 1) * sizeof *g);
    if (!g)
        return qg__error(ctx, QG_ERR_NOMEM, "out of memory");
    qg_status st = qg_tensor_read(t, g, n * sizeof *g);
    for (size_t i = 0; st == QG_OK && i < n; i++)
        if (g[i] != ref[i]) {
            *err = INFINITY;
            break;
        }
    free(g);
    return st;
}

qg_status qg__tune_tensor(qg_ctx *ctx, int ndim, const int64_t *shape, const char *name,
                          uint64_t seed, float scale, float **host, qg_tensor **out)
{
    qg_status st = QG_OK;
    qg_tensor *t = NULL;
    float *h = NULL;
    *out = NULL;
    QG_TRY(qg_tensor_new(ctx, ndim, shape, QG_DTYPE_F32, name, &t));
    if (host) {
        size_t n = qg_tensor_numel(t);
        h = malloc((n ? n : 1) * sizeof *h);
        if (!h) {
            st = qg__error(ctx, QG_ERR_NOMEM, "out of memory for tensor '%s'", name);
            goto fail;
        }
        qg_rng r = {seed};
        for (size_t i = 0; i < n; i++)
            h[i] = (float)qg__rng_normal(&r) * scale;
        QG_TRY(qg_tensor_write(t, h, n * sizeof *h));
        *host = h;
    }
    *out = t;
    return QG_OK;
fail:
    free(h);
    qg_tensor_free(t);
    return st;
}
