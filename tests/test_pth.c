/* tests/test_pth.c: src/interop (pickle subset, .pth containers, name
 * mapping, conversion) on fixtures that tests/tools/gen_pth_fixtures.py
 * made with PyTorch 1.13 (tests/data/pth): both containers; float32,
 * float16, float64 and int64 tensors; a transposed view and a slice
 * sharing one storage; an nn.Parameter; a checkpoint dict with the
 * 'module.' prefix, a nested dict, scalars and a 0-dim tensor as
 * metadata; pickles naming os.system or a model class, refused; every
 * truncation and thousands of byte corruptions of the fixtures, each a
 * clean error; and a ResNet-32 (option B, PSG's names, CIFAR-100) whose
 * converted logits must equal PyTorch's within 1e-4. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <jansson.h>

#include "support/support.h"
#include "interop/convert.h"
#include "interop/pickle.h"
#include "interop/pth.h"
#include "train/checkpoint.h"

TestSuite(pth, .timeout = 240);

static const char *fixture(const char *name)
{
    static char paths[4][1024];
    static int k;
    char *path = paths[k++ % 4];
    const char *dir = getenv("QG_TEST_DATA") ? getenv("QG_TEST_DATA") : "tests/data";
    snprintf(path, sizeof paths[0], "%s/pth/%s", dir, name);
    return path;
}

static unsigned char *slurp(const char *name, size_t *len)
{
    FILE *f = fopen(fixture(name), "rb");
    cr_assert_not_null(f, "cannot open %s", fixture(name));
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    rewind(f);
    unsigned char *b = malloc(*len + 1);
    cr_assert_eq(fread(b, 1, *len, f), *len);
    fclose(f);
    return b;
}

static const qg_pth_tensor *tensor(const qg_pth *p, const char *name)
{
    for (size_t i = 0; i < p->ntensors; i++)
        if (strcmp(p->tensors[i].name, name) == 0)
            return &p->tensors[i];
    cr_assert_fail("tensor '%s' missing", name);
    return NULL;
}

/* Every tensor of tiny_*.pth equals what PyTorch saved (dtype, shape,
 * values in C order, including the strided views). */
static void check_tiny(const char *file, qg_pth_format fmt)
{
    qg_pth *p;
    cr_assert_eq(qg__pth_read(fixture(file), &p), QG_OK, "%s", qg_last_error());
    cr_expect_eq(p->format, fmt);
    cr_expect_str_eq(p->state_key, "");
    json_error_t je;
    char path[1024];
    snprintf(path, sizeof path, "%s", fixture("tiny_expected.json"));
    json_t *want = json_load_file(path, 0, &je);
    cr_assert_not_null(want, "%s: %s", path, je.text);
    cr_expect_eq(p->ntensors, json_object_size(want));
    const char *name;
    json_t *w;
    json_object_foreach(want, name, w) {
        const qg_pth_tensor *t = tensor(p, name);
        cr_expect_str_eq(qg__pk_dtype_name(t->dtype),
                         json_string_value(json_object_get(w, "dtype")), "%s", name);
        json_t *shape = json_object_get(w, "shape"), *vals = json_object_get(w, "values");
        cr_assert_eq((size_t)t->ndim, json_array_size(shape), "%s", name);
        for (int d = 0; d < t->ndim; d++)
            cr_expect_eq(t->shape[d], json_integer_value(json_array_get(shape, (size_t)d)));
        cr_assert_eq(t->numel, json_array_size(vals), "%s", name);
        float *f = malloc(t->numel * sizeof *f);
        qg__pth_to_f32(t, f);
        for (size_t i = 0; i < t->numel; i++)
            cr_expect_eq(f[i], (float)json_real_value(json_array_get(vals, i)),
                         "%s[%zu]: %g vs %g", name, i, f[i],
                         json_real_value(json_array_get(vals, i)));
        free(f);
    }
    /* the int64 beyond 32 bits arrives whole */
    int64_t big;
    memcpy(&big, (const char *)tensor(p, "d.long")->data + 16, 8);
    cr_expect_eq(big, (int64_t)1 << 40);
    json_decref(want);
    qg__pth_free(p);
}

Test(pth, legacy_stream_tensors_equal_pytorch)
{
    check_tiny("tiny_legacy.pth", QG_PTH_LEGACY);
}

Test(pth, zip_container_tensors_equal_pytorch)
{
    check_tiny("tiny_zip.pth", QG_PTH_ZIP);
}

static void check_nested(const char *file)
{
    qg_pth *p;
    cr_assert_eq(qg__pth_read(fixture(file), &p), QG_OK, "%s", qg_last_error());
    cr_expect_str_eq(p->state_key, "state_dict");
    cr_expect_eq(p->ntensors, 5);
    const qg_pth_tensor *x = tensor(p, "module.extra.x");
    float f[2];
    qg__pth_to_f32(x, f);
    cr_expect(f[0] == 1.0f && f[1] == 2.0f);
    cr_expect_eq(tensor(p, "module.conv1.weight")->shape[3], 3);
    const struct {
        const char *k, *v;
    } want[] = {{"epoch", "7"}, {"acc", "91.5"}, {"best_acc", "92.25"}, {"arch", "tiny"},
                {"Nbit_dict", "{\"module.conv1\": [8, 0]}"}};
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
        const qg_pth_meta *m = qg__pth_meta_get(p, want[i].k);
        cr_assert_not_null(m, "metadata '%s' missing", want[i].k);
        cr_expect_str_eq(m->value, want[i].v, "%s", want[i].k);
    }
    cr_expect_null(qg__pth_meta_get(p, "optimizer"));
    cr_expect_neq(strstr(p->skipped, "optimizer"), NULL, "%s", p->skipped);
    qg__pth_free(p);
}

Test(pth, checkpoint_dict_with_prefix_and_metadata_legacy)
{
    check_nested("nested_legacy.pth");
}

Test(pth, checkpoint_dict_with_prefix_and_metadata_zip)
{
    check_nested("nested_zip.pth");
}

static void expect_refused(const char *file, const char *needle)
{
    qg_pth *p = (qg_pth *)1;
    cr_assert_eq(qg__pth_read(fixture(file), &p), QG_ERR_FORMAT, "%s was accepted", file);
    cr_expect_null(p);
    cr_expect_neq(strstr(qg_last_error(), needle), NULL, "%s", qg_last_error());
    cr_expect_neq(strstr(qg_last_error(), file), NULL, "file not named: %s", qg_last_error());
}

Test(pth, code_in_the_pickle_is_refused_by_name)
{
    expect_refused("evil_legacy.pth", "refusing global 'os.system'");
    expect_refused("evil_zip.pth", "refusing global 'os.system'");
    expect_refused("model_legacy.pth", "refusing global 'torch.nn.modules.linear.Linear'");
}

/* Hand-made streams: each a clean FORMAT error naming the problem. */
Test(pth, hostile_pickles)
{
    static const struct {
        const char *bytes;
        size_t len;
        const char *needle;
    } cases[] = {
        /* NEWOBJ is never needed by a state dict */
        {"\x80\x02\x81.", 4, "NEWOBJ"},
        /* memo index far beyond the limit */
        {"\x80\x02N\x72\xff\xff\xff\x7f.", 9, "memo index"},
        /* BINGET of an index never stored */
        {"\x80\x02h\x05.", 5, "never stored"},
        /* string length beyond the data */
        {"\x80\x02X\xff\xff\xff\x00ab.", 10, "past the end"},
        /* stack underflow */
        {"\x80\x02t.", 4, "MARK"},
        {"\x80\x02s.", 4, "underflow"},
        /* STACK_GLOBAL names a function through strings */
        {"\x80\x04\x8c\x02os\x8c\x06system\x93.", 15, "refusing global 'os.system'"},
        /* REDUCE of something not callable */
        {"\x80\x02K\x01)R.", 6, "not a callable"},
        /* no STOP */
        {"\x80\x02K\x01", 4, "before STOP"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        qg_pickle *pk = qg__pickle_new(NULL);
        size_t pos = 0;
        qg_pk_value *v = NULL;
        qg_status st = qg__pickle_load(pk, (const unsigned char *)cases[i].bytes, cases[i].len,
                                       &pos, "case", 1, &v);
        cr_expect_eq(st, QG_ERR_FORMAT, "case %zu accepted", i);
        cr_expect_neq(strstr(qg_last_error(), cases[i].needle), NULL, "case %zu: %s", i,
                      qg_last_error());
        qg__pickle_free(pk);
    }
    /* a list that contains itself loads (no recursion happens) */
    const char *self = "\x80\x02]q\x00h\x00\x61.";
    qg_pickle *pk = qg__pickle_new(NULL);
    size_t pos = 0;
    qg_pk_value *v;
    cr_assert_eq(qg__pickle_load(pk, (const unsigned char *)self, 9, &pos, "self", 0, &v), QG_OK,
                 "%s", qg_last_error());
    cr_expect(v->type == QG_PK_LIST && v->u.seq.n == 1 && v->u.seq.items[0] == v);
    qg__pickle_free(pk);
    /* a memory cap is honoured: a 1 KiB budget cannot hold 300 strings */
    unsigned char big[2000];
    size_t n = 0;
    big[n++] = 0x80;
    big[n++] = 2;
    big[n++] = ']';
    big[n++] = '(';
    for (int i = 0; i < 300; i++) {
        big[n++] = 'U';
        big[n++] = 1;
        big[n++] = 'x';
    }
    big[n++] = 'e';
    big[n++] = '.';
    qg_pk_limits lim = {.max_bytes = 1024};
    pk = qg__pickle_new(&lim);
    pos = 0;
    cr_expect_eq(qg__pickle_load(pk, big, n, &pos, "big", 0, &v), QG_ERR_FORMAT);
    cr_expect_neq(strstr(qg_last_error(), "MiB"), NULL, "%s", qg_last_error());
    qg__pickle_free(pk);
}

/* Truncation at every offset fails cleanly; corrupting any byte gives a
 * clean error or a file that still reads (a changed value). Criterion
 * would report a crash or a hang of this loop. */
static void fuzz(const char *file)
{
    size_t len;
    unsigned char *orig = slurp(file, &len);
    unsigned char *buf = malloc(len);
    size_t fails = 0, oks = 0;
    for (size_t cut = 0; cut < len; cut++) {
        qg_pth *p = NULL;
        memcpy(buf, orig, cut);
        qg_status st = qg__pth_read_mem(buf, cut, file, &p);
        cr_expect_eq(st, QG_ERR_FORMAT, "%s cut at %zu: status %d", file, cut, st);
        cr_expect(qg_last_error()[0] != 0);
        qg__pth_free(p);
    }
    static const unsigned char pokes[] = {0x00, 0xff, 0x80, 0x7f, 'X'};
    for (size_t at = 0; at < len; at++)
        for (size_t k = 0; k < sizeof pokes; k++) {
            memcpy(buf, orig, len);
            if (buf[at] == pokes[k])
                continue;
            buf[at] = pokes[k];
            qg_pth *p = NULL;
            qg_status st = qg__pth_read_mem(buf, len, file, &p);
            cr_expect(st == QG_OK || st == QG_ERR_FORMAT, "%s byte %zu = 0x%02x: status %d",
                      file, at, pokes[k], st);
            if (st == QG_OK) {
                cr_expect_not_null(p);
                oks++;
            } else {
                cr_expect(qg_last_error()[0] != 0);
                fails++;
            }
            qg__pth_free(p);
        }
    cr_expect_gt(fails, 0);
    free(buf);
    free(orig);
}

Test(pth, fuzz_legacy)
{
    fuzz("tiny_legacy.pth");
    fuzz("nested_legacy.pth");
}

Test(pth, fuzz_zip)
{
    fuzz("tiny_zip.pth");
    fuzz("nested_zip.pth");
}

Test(pth, name_mapping)
{
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"module.conv1.weight", "conv1.weight"},
        {"module.module.fc.bias", "linear.bias"},
        {"fc.weight", "linear.weight"},
        {"layer2.0.downsample.0.weight", "layer2.0.shortcut.0.weight"},
        {"module.layer3.0.downsample.1.running_var", "layer3.0.shortcut.1.running_var"},
        {"layer1.0.relu.upper_bound", "layer1.0.relu.upper_bound"},
        {"linear.weight", "linear.weight"},
        {"layer1.0.fc.weight", "layer1.0.fc.weight"},   /* only the top-level fc */
    };
    char out[256];
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        cr_expect_eq(qg__convert_map_name(cases[i].in, out, sizeof out), 1);
        cr_expect_str_eq(out, cases[i].out);
    }
    cr_expect_eq(qg__convert_map_name("module.bn1.num_batches_tracked", out, sizeof out), 0);
    cr_expect_eq(qg__convert_map_name("layer1.0.conv1.scale_value", out, sizeof out), 0);
    cr_expect_eq(qg__convert_map_name("fc.wscale_value", out, sizeof out), 0);
}

Test(pth, convert_maps_names_and_metadata)
{
    qg_pth *p;
    qg_conv_result *r;
    cr_assert_eq(qg__pth_read(fixture("nested_zip.pth"), &p), QG_OK, "%s", qg_last_error());
    qg_convert_opts o = {.source = "nested_zip.pth"};
    cr_assert_eq(qg__convert_pth(p, &o, &r), QG_OK, "%s", qg_last_error());
    const char *names[] = {"conv1.weight", "layer1.0.shortcut.0.weight", "linear.weight",
                           "linear.bias", "extra.x"};
    cr_expect_eq(r->n, 5);
    for (size_t i = 0; i < 5; i++)
        cr_expect_str_eq(r->tensors[i].name, names[i]);
    cr_expect_eq(r->renamed, 5);
    /* 1 input channel, 3 classes, layer1.0 only, a shortcut conv */
    cr_expect_str_eq(qg__convert_meta(r, "arch"), "resnet8");
    cr_expect_str_eq(qg__convert_meta(r, "shortcut"), "B");
    cr_expect_str_eq(qg__convert_meta(r, "in_channels"), "1");
    cr_expect_str_eq(qg__convert_meta(r, "in_height"), "28");
    cr_expect_str_eq(qg__convert_meta(r, "classes"), "3");
    cr_expect_str_eq(qg__convert_meta(r, "epoch"), "7");
    cr_expect_str_eq(qg__convert_meta(r, "pth.best_acc"), "92.25");
    cr_expect_str_eq(qg__convert_meta(r, "converted_from"), "pytorch-zip");
    cr_expect_str_eq(qg__convert_meta(r, "source_file"), "nested_zip.pth");
    cr_expect_null(qg__convert_meta(r, "dataset"));   /* 3 classes: unknown */
    const float *b = r->tensors[3].data;
    cr_expect(b[0] == 0.5f && b[1] == -0.5f && b[2] == 1.0f);
    qg__convert_free(r);
    /* options win over inference; a bad --meta is named */
    const char *bad[] = {"novalue"};
    qg_convert_opts o2 = {.arch = "resnet20", .shortcut = 'A', .extra_meta = bad, .nextra = 1};
    cr_expect_eq(qg__convert_pth(p, &o2, &r), QG_ERR_INVALID_ARG);
    cr_expect_neq(strstr(qg_last_error(), "novalue"), NULL, "%s", qg_last_error());
    qg__pth_free(p);
}

/* The done-when case: a ResNet-32-B state dict saved by torch 1.13 in the
 * legacy stream converts, builds, loads and gives PyTorch's logits. */
Test(pth, resnet32b_logits_equal_pytorch, .timeout = 900)
{
    qg_ctx *ctx = qg_test_ctx();
    qg_pth *p;
    qg_conv_result *r;
    cr_assert_eq(qg__pth_read(fixture("resnet32b_legacy.pth"), &p), QG_OK, "%s",
                 qg_last_error());
    cr_expect_eq(p->format, QG_PTH_LEGACY);
    qg_convert_opts o = {0};
    cr_assert_eq(qg__convert_pth(p, &o, &r), QG_OK, "%s", qg_last_error());
    cr_expect_str_eq(qg__convert_meta(r, "arch"), "resnet32");
    cr_expect_str_eq(qg__convert_meta(r, "shortcut"), "B");
    cr_expect_str_eq(qg__convert_meta(r, "dataset"), "cifar100");
    cr_expect_str_eq(qg__convert_meta(r, "epoch"), "82");
    cr_expect_eq(r->dropped, 33);   /* the num_batches_tracked of 33 BNs */
    char path[4096];
    snprintf(path, sizeof path, "%s/qg_pth_r32.%d.safetensors",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", (int)getpid());
    cr_assert_eq(qg__convert_write(r, path), QG_OK, "%s", qg_last_error());
    qg_st_file *f;
    qg_model *m;
    cr_assert_eq(qg__safetensors_read(path, &f), QG_OK, "%s", qg_last_error());
    cr_assert_eq(qg__interop_model_from_meta(ctx, f, path, &m), QG_OK, "%s", qg_last_error());
    cr_assert_eq(qg__checkpoint_load(m, f, path, 0), QG_OK, "%s", qg_last_error());
    cr_expect_eq((size_t)m->nparams, r->n, "every converted tensor is a model parameter");
    double d, ref;
    cr_assert_eq(qg__convert_check_logits(m, fixture("resnet32b_check.safetensors"), &d, &ref),
                 QG_OK, "%s", qg_last_error());
    cr_expect_leq(d, 1e-4, "max |qgate - pytorch| = %g", d);
    cr_expect_gt(ref, 1.0, "the logits are not trivially small (%g)", ref);
    qg__model_free(m);
    qg__safetensors_free(f);
    remove(path);
    qg__convert_free(r);
    qg__pth_free(p);
}

static int run(const char *cmd, char *out, size_t cap)
{
    char full[2048];
    snprintf(full, sizeof full, "%s 2>&1", cmd);
    FILE *p = popen(full, "r");
    cr_assert_not_null(p, "cannot run %s", cmd);
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = 0;
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* The command line: a wrong --arch leaves tensors unused and fails, the
 * right one verifies and checks the logits; refusals exit 1 with the name. */
Test(pth, cli_convert, .timeout = 900)
{
    static char out[16384];
    char cmd[2048], dst[1024];
    snprintf(dst, sizeof dst, "%s/qg_pth_cli.%d.safetensors",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", (int)getpid());
    snprintf(cmd, sizeof cmd, "./qgate convert %s -o %s --arch resnet20",
             fixture("resnet32b_legacy.pth"), dst);
    cr_expect_eq(run(cmd, out, sizeof out), 1, "%s", out);
    cr_expect_neq(strstr(out, "not used by resnet20"), NULL, "%s", out);
    snprintf(cmd, sizeof cmd, "./qgate convert %s -o %s --check %s",
             fixture("resnet32b_legacy.pth"), dst, fixture("resnet32b_check.safetensors"));
    cr_expect_eq(run(cmd, out, sizeof out), 0, "%s", out);
    cr_expect_neq(strstr(out, "resnet32, shortcut B, input 3x32x32, 100 classes, epoch 82"),
                  NULL, "%s", out);
    cr_expect_neq(strstr(out, "check: logits"), NULL, "%s", out);
    snprintf(cmd, sizeof cmd, "./qgate convert %s -o %s", fixture("evil_zip.pth"), dst);
    cr_expect_eq(run(cmd, out, sizeof out), 1, "%s", out);
    cr_expect_neq(strstr(out, "os.system"), NULL, "%s", out);
    cr_expect_eq(run("./qgate convert --help", out, sizeof out), 0);
    cr_expect_neq(strstr(out, "No pickled code runs"), NULL, "%s", out);
    cr_expect_eq(run("./qgate convert", out, sizeof out), 2);
    remove(dst);
}
