/* tests/test_plot.c: src/plot (every plot kind, each output format, the
 * files valid and of the requested size), src/interop/ckview.c (layer
 * table, bit-plane densities) and the inspect / plot commands. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <jansson.h>

#include "support/support.h"
#include "interop/ckview.h"
#include "plot/plot.h"

static char g_dir[4096];

static void make_tmpdir(void)
{
    const char *base = getenv("TMPDIR");
    snprintf(g_dir, sizeof g_dir, "%s/qg_plot.XXXXXX", base && *base ? base : "/tmp");
    cr_assert_not_null(mkdtemp(g_dir));
}

static void remove_tmpdir(void)
{
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    if (g_dir[0] && system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", g_dir);
}

TestSuite(plot, .init = make_tmpdir, .fini = remove_tmpdir, .timeout = 120);

static const char *tmp(const char *name)
{
    static char bufs[32][4200];
    static int k;
    char *b = bufs[k++ % 32];
    snprintf(b, sizeof bufs[0], "%s/%s", g_dir, name);
    return b;
}

static const char *fixture(const char *name)
{
    static char b[1024];
    snprintf(b, sizeof b, "%s/pth/%s", getenv("QG_TEST_DATA") ? getenv("QG_TEST_DATA")
                                                            : "tests/data", name);
    return b;
}

static unsigned char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s was not written", path);
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    rewind(f);
    unsigned char *b = malloc(*len + 1);
    cr_assert_eq(fread(b, 1, *len, f), *len);
    b[*len] = 0;
    fclose(f);
    return b;
}

/* A valid file of the format its name says, w x h pixels or points. */
static void expect_image(const char *path, int w, int h)
{
    size_t len;
    unsigned char *b = slurp(path, &len);
    const char *ext = strrchr(path, '.');
    cr_assert_gt(len, 200, "%s: %zu bytes", path, len);
    if (strcmp(ext, ".png") == 0) {
        cr_expect_eq(memcmp(b, "\x89PNG\r\n\x1a\n", 8), 0, "%s: no PNG signature", path);
        cr_expect_eq(memcmp(b + 12, "IHDR", 4), 0);
        int pw = b[16] << 24 | b[17] << 16 | b[18] << 8 | b[19];
        int ph = b[20] << 24 | b[21] << 16 | b[22] << 8 | b[23];
        cr_expect(pw == w && ph == h, "%s is %dx%d, wanted %dx%d", path, pw, ph, w, h);
        cr_expect_eq(memcmp(b + len - 8, "IEND", 4), 0, "%s: no IEND", path);
    } else if (strcmp(ext, ".svg") == 0) {
        char want[96];
        snprintf(want, sizeof want, "width=\"%dpt\" height=\"%dpt\"", w, h);
        cr_expect_neq(strstr((char *)b, "<svg"), NULL, "%s", path);
        cr_expect_neq(strstr((char *)b, want), NULL, "%s lacks %s", path, want);
        cr_expect_neq(strstr((char *)b, "</svg>"), NULL, "%s is not closed", path);
    } else {
        char want[96];
        snprintf(want, sizeof want, "/MediaBox [ 0 0 %d %d ]", w, h);
        cr_expect_eq(memcmp(b, "%PDF-", 5), 0, "%s", path);
        cr_expect_neq(memmem(b, len, want, strlen(want)), NULL, "%s lacks %s", path, want);
        cr_expect_neq(memmem(b + len - 8, 8, "%%EOF", 5), NULL, "%s has no %%%%EOF", path);
    }
    free(b);
}

static void write_metrics(const char *path, double shift)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    for (int e = 1; e <= 5; e++)
        fprintf(f, "{\"epoch\": %d, \"train_loss\": %.3f, \"train_acc\": %.3f, \"test_loss\": "
                "%.3f, \"test_acc\": %.3f, \"lr\": %.4f, \"sparsity\": %.3f, \"train_sparsity\":"
                " %.3f, \"sparsity_layers\": {\"layer1.0.conv1\": 0.6, \"layer2.0.conv1\": 0.4}}\n",
                e, 1.5 / e + shift, 0.5 + 0.08 * e, 1.6 / e + shift, 0.48 + 0.08 * e,
                0.1 / e, 0.5 + 0.02 * e, 0.48 + 0.02 * e);
    fclose(f);
}

Test(plot, curves_in_three_formats)
{
    write_metrics(tmp("a.jsonl"), 0);
    write_metrics(tmp("b.jsonl"), 0.2);
    const char *files[] = {tmp("a.jsonl"), tmp("b.jsonl")};
    const char *labels[] = {"run A", NULL};
    const char *outs[] = {"c.png", "c.svg", "c.pdf"};
    for (int i = 0; i < 3; i++) {
        qg_plot_opts o = {.out = tmp(outs[i]), .width = 640, .height = 480};
        cr_assert_eq(qg__plot_curves(&o, files, labels, 2), QG_OK, "%s", qg_last_error());
        expect_image(tmp(outs[i]), 640, 480);
    }
    /* default size: 2 columns x 2 rows of panels */
    qg_plot_opts o = {.out = tmp("d.png")};
    cr_assert_eq(qg__plot_curves(&o, files, labels, 1), QG_OK, "%s", qg_last_error());
    expect_image(tmp("d.png"), 1200, 800);
}

Test(plot, curves_errors_name_the_file)
{
    qg_plot_opts o = {.out = tmp("x.png")};
    const char *missing[] = {tmp("none.jsonl")};
    cr_expect_eq(qg__plot_curves(&o, missing, NULL, 1), QG_ERR_IO);
    cr_expect_neq(strstr(qg_last_error(), "none.jsonl"), NULL, "%s", qg_last_error());
    qg_test_write_text(tmp("bad.jsonl"), "{\"epoch\": 1, \"test_acc\": 0.5}\nnot json\n");
    const char *bad[] = {tmp("bad.jsonl")};
    cr_expect_eq(qg__plot_curves(&o, bad, NULL, 1), QG_ERR_FORMAT);
    cr_expect_neq(strstr(qg_last_error(), "bad.jsonl:2"), NULL, "%s", qg_last_error());
    qg_test_write_text(tmp("empty.jsonl"), "{\"epoch\": 1, \"other\": 3}\n");
    const char *none[] = {tmp("empty.jsonl")};
    cr_expect_eq(qg__plot_curves(&o, none, NULL, 1), QG_ERR_FORMAT);
    write_metrics(tmp("a.jsonl"), 0);
    const char *ok[] = {tmp("a.jsonl")};
    qg_plot_opts gif = {.out = tmp("x.gif")};
    cr_expect_eq(qg__plot_curves(&gif, ok, NULL, 1), QG_ERR_INVALID_ARG);
    cr_expect_neq(strstr(qg_last_error(), ".png, .svg or .pdf"), NULL, "%s", qg_last_error());
}

Test(plot, layers_hist_bitplanes_from_a_pth)
{
    qg_ckview *ck;
    cr_assert_eq(qg__ckview_open(fixture("resnet32b_legacy.pth"), &ck), QG_OK, "%s",
                 qg_last_error());
    const qg_ck_layer *ls;
    size_t n = qg__ckview_layers(ck, &ls);
    /* stem + 30 block convs + 2 shortcut convs + linear */
    cr_assert_eq(n, 34);
    cr_expect_str_eq(ls[0].name, "conv1");
    cr_expect_str_eq(ls[n - 1].name, "linear");
    cr_expect_eq(ls[n - 1].params, 6400);
    cr_expect_eq(ls[0].bits, 32);
    cr_expect_str_eq(qg__ckview_meta(ck, "arch"), "resnet32");
    /* layers from a checkpoint and a JSON file together */
    qg_test_write_text(tmp("ev.json"), "{\"layers\": [{\"name\": \"layer1.0.conv1\", "
                       "\"sparsity\": 0.5, \"flop_reduction\": 1.7}, {\"name\": \"linear\", "
                       "\"wbits\": 8}]}");
    write_metrics(tmp("m.jsonl"), 0);
    const char *outs[] = {"l.png", "l.svg", "l.pdf"};
    for (int i = 0; i < 3; i++) {
        qg_plot_opts o = {.out = tmp(outs[i]), .width = 900, .height = 700};
        cr_assert_eq(qg__plot_layers(&o, ck, tmp("m.jsonl"), tmp("ev.json")), QG_OK, "%s",
                     qg_last_error());
        expect_image(tmp(outs[i]), 900, 700);
    }
    qg_plot_opts h = {.out = tmp("h.png"), .width = 800, .height = 600};
    cr_assert_eq(qg__plot_hist(&h, ck, "layer3", 40, 4), QG_OK, "%s", qg_last_error());
    expect_image(tmp("h.png"), 800, 600);
    qg_plot_opts hs = {.out = tmp("h.svg"), .width = 500, .height = 400};
    cr_expect_eq(qg__plot_hist(&hs, ck, "nothing-matches", 40, 0), QG_ERR_INVALID_ARG);
    cr_assert_eq(qg__plot_hist(&hs, ck, NULL, 40, 0), QG_OK, "%s", qg_last_error());
    expect_image(tmp("h.svg"), 500, 400);
    /* a float checkpoint has no bit planes unless asked for N-bit codes */
    qg_plot_opts b = {.out = tmp("b.pdf"), .width = 700, .height = 900};
    cr_expect_eq(qg__plot_bitplanes(&b, ck, 0), QG_ERR_INVALID_ARG);
    cr_expect_neq(strstr(qg_last_error(), "--bits"), NULL, "%s", qg_last_error());
    cr_assert_eq(qg__plot_bitplanes(&b, ck, 6), QG_OK, "%s", qg_last_error());
    expect_image(tmp("b.pdf"), 700, 900);
    qg_plot_opts bad = {.out = tmp("l2.png")};
    cr_expect_eq(qg__plot_layers(&bad, NULL, NULL, fixture("tiny_expected.json")),
                 QG_ERR_FORMAT);
    qg__ckview_free(ck);
}

/* qgate's weight codes: |w| / (max|w| + 1e-7) * (2^b - 1), half to even. */
Test(plot, bitplane_density)
{
    const float w[4] = {1.0f, 0.5f, -0.25f, 0.0f};
    double d[QG_CK_MAX_BITS];
    /* codes at 2 bits: 3 (11), 1 (1.4999998 -> 01), 1 (0.75 -> 01), 0 */
    qg__ck_bitplanes(w, 4, 2, d);
    cr_expect_eq(d[0], 0.25);
    cr_expect_eq(d[1], 0.75);
    /* at 3 bits: 7 (111), 3 (3.4999996 -> 011), 2 (1.75 -> 010), 0 */
    qg__ck_bitplanes(w, 4, 3, d);
    cr_expect_eq(d[0], 0.25);
    cr_expect_eq(d[1], 0.75);
    cr_expect_eq(d[2], 0.5);
}

/* BSQ's bit representation: precision from the planes, densities as BSQ
 * prints them (share of non-zero p - n per plane), weight = sum (p - n)
 * 2^(N-1-b) / (2^N - 1) * scale. */
Test(plot, bsq_planes)
{
    qg_ckview *ck;
    cr_assert_eq(qg__ckview_open(fixture("bsq_zip.pth"), &ck), QG_OK, "%s", qg_last_error());
    const qg_ck_layer *ls;
    cr_assert_eq(qg__ckview_layers(ck, &ls), 1);
    const qg_ck_layer *l = &ls[0];
    cr_expect_str_eq(l->name, "conv1");
    cr_expect(l->bsq && l->bits == 3 && l->nplanes == 3 && l->params == 18);
    cr_expect(l->ndim == 4 && l->shape[0] == 2 && l->shape[3] == 3);
    cr_expect_float_eq(l->density[0], 4.0 / 18, 1e-12);
    cr_expect_float_eq(l->density[1], 9.0 / 18, 1e-12);
    cr_expect_float_eq(l->density[2], 1.0, 1e-12);
    /* weight 0: 1 0 1 -> 5/7 * 0.7; weight 4: 0 -1 1 -> -1/7 * 0.7; weight 15: 1/7 * 0.7 */
    cr_expect_float_eq(l->w[0], 0.5f, 1e-6);
    cr_expect_float_eq(l->w[4], -0.1f, 1e-6);
    cr_expect_float_eq(l->w[15], 0.1f, 1e-6);
    cr_expect_str_eq(qg__ckview_meta(ck, "pth.Nbit_dict"), "{\"module.conv1\": [3, 0]}");
    qg_plot_opts o = {.out = tmp("bsq.png"), .width = 600, .height = 300};
    cr_assert_eq(qg__plot_bitplanes(&o, ck, 0), QG_OK, "%s", qg_last_error());
    expect_image(tmp("bsq.png"), 600, 300);
    qg__ckview_free(ck);
}

static int run(const char *cmd, char *out, size_t cap)
{
    char full[2048];
    snprintf(full, sizeof full, "%s 2>&1", cmd);
    FILE *p = popen(full, "r");
    cr_assert_not_null(p);
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = 0;
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

Test(plot, inspect_and_plot_commands)
{
    static char out[65536];
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "./qgate inspect %s", fixture("resnet32b_legacy.pth"));
    cr_assert_eq(run(cmd, out, sizeof out), 0, "%s", out);
    cr_expect_neq(strstr(out, "resnet32, shortcut B, input 3x32x32, 100 classes"), NULL, "%s",
                  out);
    cr_expect_neq(strstr(out, "epoch 82"), NULL, "%s", out);
    cr_expect_neq(strstr(out, "layer2.0.shortcut.0     "), NULL, "%s", out);
    cr_expect_neq(strstr(out, "best_acc = 0.6984"), NULL, "%s", out);
    snprintf(cmd, sizeof cmd, "./qgate inspect --json %s > %s", fixture("resnet32b_legacy.pth"),
             tmp("i.json"));
    cr_assert_eq(run(cmd, out, sizeof out), 0, "%s", out);
    json_t *j = json_load_file(tmp("i.json"), 0, NULL);
    cr_assert_not_null(j, "inspect --json is not JSON");
    cr_expect_eq(json_array_size(json_object_get(j, "layers")), 34);
    cr_expect_eq(json_integer_value(json_object_get(json_array_get(json_object_get(j, "layers"),
                                                                   33), "params")), 6400);
    json_decref(j);
    /* plot layers reads what inspect --json wrote */
    snprintf(cmd, sizeof cmd, "./qgate plot layers -o %s --json %s --size 700x500",
             tmp("fromjson.svg"), tmp("i.json"));
    cr_expect_eq(run(cmd, out, sizeof out), 0, "%s", out);
    expect_image(tmp("fromjson.svg"), 700, 500);
    write_metrics(tmp("m.jsonl"), 0);
    snprintf(cmd, sizeof cmd, "./qgate plot curves -o %s --metrics %s --label x",
             tmp("c.png"), tmp("m.jsonl"));
    cr_expect_eq(run(cmd, out, sizeof out), 0, "%s", out);
    expect_image(tmp("c.png"), 1200, 800);
    cr_expect_eq(run("./qgate plot nosuchkind -o x.png", out, sizeof out), 2);
    cr_expect_neq(strstr(out, "unknown kind 'nosuchkind'"), NULL, "%s", out);
    cr_expect_eq(run("./qgate plot hist -o x.png", out, sizeof out), 2);
    cr_expect_eq(run("./qgate plot --help", out, sizeof out), 0);
    cr_expect_neq(strstr(out, "bitplanes"), NULL, "%s", out);
    cr_expect_eq(run("./qgate inspect /nonexistent.safetensors", out, sizeof out), 1);
    cr_expect_neq(strstr(out, "/nonexistent.safetensors"), NULL, "%s", out);
}
