/* tests/test_device.c: device listing and selection, error reporting. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support/support.h"
#include "cl/ctx.h"

TestSuite(device, .fini = qg_test_ctx_free);

Test(device, lists_at_least_one_device_with_capabilities)
{
    qg_device_info *d;
    size_t n;
    QG_EXPECT_OK(qg_devices_list(&d, &n));
    cr_assert_gt(n, 0, "no OpenCL device found");
    cr_expect_gt(strlen(d[0].name), 0);
    cr_expect_gt(d[0].compute_units, 0);
    cr_expect_gt(d[0].max_work_group, 0);
    cr_expect_gt(d[0].local_mem, 0);
    cr_expect_neq(strchr(d[0].key, '|'), NULL, "key '%s' lacks name|driver", d[0].key);
    free(d);
}

Test(device, selects_by_index_and_substring)
{
    qg_device_info *d;
    size_t n;
    QG_EXPECT_OK(qg_devices_list(&d, &n));
    char sub[8];
    snprintf(sub, sizeof sub, "%.5s", d[0].name);
    qg_ctx *ctx;
    qg_ctx_opts o = {.device = "0", .cache_dir = ""};
    QG_EXPECT_OK(qg_ctx_new(&o, &ctx));
    cr_expect_str_eq(qg_ctx_device(ctx)->name, d[0].name);
    qg_ctx_free(ctx);
    o.device = sub;
    QG_EXPECT_OK(qg_ctx_new(&o, &ctx));
    cr_expect_str_eq(qg_ctx_device(ctx)->name, d[0].name);
    qg_ctx_free(ctx);
    free(d);
}

Test(device, out_of_range_index_lists_devices)
{
    qg_ctx *ctx = (qg_ctx *)1;
    qg_ctx_opts o = {.device = "999"};
    cr_assert_eq(qg_ctx_new(&o, &ctx), QG_ERR_NO_DEVICE);
    cr_expect_null(ctx, "out-parameter must be NULL on failure");
    const char *e = qg_last_error();
    cr_expect_neq(strstr(e, "'999'"), NULL, "message does not name the request: %s", e);
    cr_expect_neq(strstr(e, "[0]"), NULL, "message does not list devices: %s", e);
}

Test(device, unknown_name_is_rejected)
{
    qg_ctx *ctx;
    qg_ctx_opts o = {.device = "no-such-accelerator-xyz"};
    cr_assert_eq(qg_ctx_new(&o, &ctx), QG_ERR_NO_DEVICE);
    cr_expect_neq(strstr(qg_last_error(), "no-such-accelerator-xyz"), NULL);
}

Test(device, env_var_selects_device)
{
    setenv("QGATE_DEVICE", "12345", 1);
    qg_ctx *ctx;
    cr_expect_eq(qg_ctx_new(NULL, &ctx), QG_ERR_NO_DEVICE);
    setenv("QGATE_DEVICE", "0", 1);
    QG_EXPECT_OK(qg_ctx_new(NULL, &ctx));
    qg_ctx_free(ctx);
    unsetenv("QGATE_DEVICE");
}

Test(device, status_and_cl_error_names)
{
    cr_expect_str_eq(qg_status_str(QG_ERR_BUILD), "QG_ERR_BUILD");
    cr_expect_str_eq(qg_cl_error_name(-54), "CL_INVALID_WORK_GROUP_SIZE");
    cr_expect_str_eq(qg_cl_error_name(-11), "CL_BUILD_PROGRAM_FAILURE");
    cr_expect_str_eq(qg_cl_error_name(12345), "CL_UNKNOWN_ERROR");
}

Test(device, tensor_views_and_transfers)
{
    qg_ctx *ctx = qg_test_ctx();
    int64_t shape[2] = {3, 5};
    float h[15], back[15];
    for (int i = 0; i < 15; i++)
        h[i] = (float)i;
    qg_tensor *t = qg_test_tensor(ctx, 2, shape, h);
    qg_tensor *v;
    int64_t vs[1] = {5};
    QG_EXPECT_OK(qg_tensor_view(t, 5, 1, vs, &v));
    QG_EXPECT_OK(qg_tensor_read(v, back, 5 * sizeof(float)));
    for (int i = 0; i < 5; i++)
        cr_expect_eq(back[i], (float)(5 + i));
    int64_t too_big[1] = {11};
    qg_tensor *bad = (qg_tensor *)1;
    cr_expect_eq(qg_tensor_view(t, 5, 1, too_big, &bad), QG_ERR_SHAPE);
    cr_expect_null(bad);
    cr_expect_eq(qg_tensor_read(t, back, 4), QG_ERR_SHAPE, "short read must be refused");
    qg_tensor_free(v);
    qg_tensor_free(t);
}
