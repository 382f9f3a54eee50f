/* tests/tools/dist_cmp.c: a tool, not a test (tests/test_dist.sh holds
 * the assertions on its exit status): compares the float tensors of two
 * qgate checkpoints, 2 processes at batch B against 1 at 2B. For each
 * tensor: max |a - b| / max |b|; prints the worst and exits 0 when it is
 * at most TOL (with --differ: when it is above, the check that the
 * comparison can fail). --l2: the test is on |a - b| / |b| of the
 * optimizer state instead (after one SGD step: the momentum buffers hold
 * the gradients plus weight decay; the quantized models, see
 * tests/test_dist.sh). usage: dist_cmp A B TOL [--differ] [--l2] */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/safetensors.h"

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: dist_cmp A B TOL [--differ] [--l2]\n");
        return 2;
    }
    int differ = 0, l2 = 0;
    for (int i = 4; i < argc; i++) {
        differ |= strcmp(argv[i], "--differ") == 0;
        l2 |= strcmp(argv[i], "--l2") == 0;
    }
    double dd = 0, bb = 0; /* --l2: sums of squares over the optimizer state */
    double tol = atof(argv[3]), worst = 0, wp = 0; /* wp: without running statistics */
    const char *worst_name = "-", *wp_name = "-";
    qg_st_file *a = NULL, *b = NULL;
    if (qg__safetensors_read(argv[1], &a) != QG_OK || qg__safetensors_read(argv[2], &b) != QG_OK) {
        fprintf(stderr, "dist_cmp: %s\n", qg_last_error());
        return 2;
    }
    size_t compared = 0;
    for (size_t i = 0; i < qg__safetensors_count(a); i++) {
        const qg_st_tensor *x = qg__safetensors_at(a, i);
        if (x->dtype != QG_DTYPE_F32)
            continue;
        const qg_st_tensor *y = qg__safetensors_get(b, x->name);
        size_t n = 1;
        for (int d = 0; d < x->ndim; d++)
            n *= (size_t)x->shape[d];
        size_t m = 1;
        for (int d = 0; y && d < y->ndim; d++)
            m *= (size_t)y->shape[d];
        if (!y || y->dtype != QG_DTYPE_F32 || m != n) {
            fprintf(stderr, "dist_cmp: '%s' missing or shaped differently in %s\n", x->name,
                    argv[2]);
            return 2;
        }
        const float *p = x->data, *q = y->data;
        double dmax = 0, ymax = 0;
        int run = strncmp(x->name, "optimizer.", 10) != 0; /* --l2: the gradients */
        for (size_t k = 0; k < n; k++) {
            double e = (double)p[k] - q[k];
            dmax = fmax(dmax, fabs(e));
            ymax = fmax(ymax, fabs((double)q[k]));
            if (!run) {
                dd += e * e;
                bb += (double)q[k] * q[k];
            }
        }
        double rel = ymax > 0 ? dmax / ymax : dmax;
        if (rel > worst || !(rel == rel)) {
            worst = rel;
            worst_name = x->name;
        }
        if (!strstr(x->name, "running_") && (rel > wp || !(rel == rel))) {
            wp = rel;
            wp_name = x->name;
        }
        compared++;
    }
    double rl2 = bb > 0 ? sqrt(dd / bb) : sqrt(dd);
    printf("dist_cmp: %zu tensors, worst max|a-b|/max|b| = %.3g ('%s'; without running "
           "statistics %.3g, '%s'); |a-b|/|b| of the optimizer state %.3g; "
           "tolerance %g on the %s%s\n", compared, worst, worst_name, wp, wp_name, rl2, tol,
           l2 ? "latter" : "former", differ ? " (expected above)" : "");
    if (l2)
        worst = rl2;
    qg__safetensors_free(a);
    qg__safetensors_free(b);
    int ok = compared > 0 && (differ ? worst > tol : worst <= tol);
    return ok ? 0 : 1;
}
