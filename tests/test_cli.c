/* tests/test_cli.c: the qgate command line as a user meets it: help
 * texts, device listing and selection errors, rejected flags. Runs the
 * built ./qgate (make check's working directory is the build tree). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "support/support.h"
#include "model/safetensors.h"

TestSuite(cli);

/* Runs a shell command; returns its exit status and its combined output.
 * In a --enable-sanitizers tree, LeakSanitizer's exit-time tracer now and
 * then crashes on its own ("Tracer caught signal 11 ... LeakSanitizer has
 * encountered a fatal error", a known intermittent LSan fault with many
 * threads, here PoCL's): that is no leak finding, but it replaces the
 * command's exit status, so the command runs again (at most twice more).
 * A real report ("Sanitizer:" below) still fails the test. */
static int run(const char *cmd, char *out, size_t cap)
{
    char full[1024];
    snprintf(full, sizeof full, "%s 2>&1", cmd);
    int st;
    for (int attempt = 0;; attempt++) {
        FILE *p = popen(full, "r");
        cr_assert_not_null(p, "cannot run %s", cmd);
        size_t n = fread(out, 1, cap - 1, p);
        out[n] = 0;
        st = pclose(p);
        if (attempt == 2 || !strstr(out, "LeakSanitizer has encountered a fatal error"))
            break;
        fprintf(stderr, "test_cli: LeakSanitizer's tracer failed in '%s'; running it again\n",
                cmd);
    }
    /* In a --enable-sanitizers tree a report does not always change the
     * exit status (a leak found at exit keeps an error path's 1). */
    cr_expect_null(strstr(out, "Sanitizer:"), "%s: sanitizer report:\n%s", cmd, out);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

Test(cli, help_and_version)
{
    static char out[16384];
    cr_expect_eq(run("./qgate --help", out, sizeof out), 0);
    cr_expect_neq(strstr(out, "train"), NULL, "%s", out);
    cr_expect_neq(strstr(out, "tune"), NULL, "%s", out);
    cr_expect_eq(run("./qgate --version", out, sizeof out), 0);
    cr_expect_neq(strstr(out, "qgate "), NULL, "%s", out);
    cr_expect_eq(run("./qgate train --help", out, sizeof out), 0);
    cr_expect_neq(strstr(out, "--pred-bits"), NULL);
    cr_expect_neq(strstr(out, "--checkpoint"), NULL);
    cr_expect_eq(run("./qgate no-such-command", out, sizeof out), 2);
    cr_expect_neq(strstr(out, "unknown command 'no-such-command'"), NULL, "%s", out);
}

Test(cli, devices_lists_capabilities)
{
    static char out[16384];
    cr_assert_eq(run("./qgate devices", out, sizeof out), 0, "%s", out);
    cr_expect_neq(strstr(out, "[0] "), NULL, "%s", out);
    cr_expect_neq(strstr(out, "compute units"), NULL, "%s", out);
    cr_expect_neq(strstr(out, "max work-group"), NULL, "%s", out);
}

Test(cli, wrong_device_prints_the_list)
{
    static char out[16384];
    cr_expect_eq(run("./qgate selfcheck --device 99", out, sizeof out), 1);
    cr_expect_neq(strstr(out, "no OpenCL device matches '99'"), NULL, "%s", out);
    cr_expect_neq(strstr(out, "[0] "), NULL, "list missing: %s", out);
    cr_expect_eq(run("QGATE_DEVICE=nonexistent-gpu ./qgate selfcheck", out, sizeof out), 1);
    cr_expect_neq(strstr(out, "nonexistent-gpu"), NULL, "%s", out);
}

Test(cli, nonsensical_method_flags_are_rejected)
{
    static char out[16384];
    cr_expect_eq(run("./qgate train --pg -a 3 --pb 3", out, sizeof out), 2);
    cr_expect_neq(strstr(out, "--pb 3 must be smaller than --abits 3"), NULL, "%s", out);
    cr_expect_eq(run("./qgate train --pg -a 3", out, sizeof out), 2);
    cr_expect_neq(strstr(out, "--pb"), NULL, "%s", out);
    cr_expect_eq(run("./qgate train -w 1", out, sizeof out), 2);
    cr_expect_neq(strstr(out, "--wbits expects an integer in 2..16"), NULL, "%s", out);
    cr_expect_eq(run("./qgate train -a 17", out, sizeof out), 2);
    cr_expect_eq(run("./qgate train --spbp", out, sizeof out), 2);
    cr_expect_neq(strstr(out, "only applies with --pg or --cg"), NULL, "%s", out);
    cr_expect_eq(run("./qgate train --pb 2", out, sizeof out), 2);
    cr_expect_neq(strstr(out, "--pb only applies with --pg"), NULL, "%s", out);
    cr_expect_eq(run("./qgate train --epochs zero", out, sizeof out), 2);
    cr_expect_neq(strstr(out, "--epochs expects an integer"), NULL, "%s", out);
    cr_expect_eq(run("./qgate train --bogus", out, sizeof out), 2);
    cr_expect_neq(strstr(out, "unknown option '--bogus'"), NULL, "%s", out);
}

Test(cli, nonsensical_channel_gating_flags_are_rejected)
{
    static char out[16384];
    cr_expect_eq(run("./qgate train --cg --pg --pb 2 -a 3", out, sizeof out), 2);
    cr_expect_neq(strstr(out, "--cg and --pg are different gating methods"), NULL, "%s", out);
    cr_expect_eq(run("./qgate train --cg -w 4", out, sizeof out), 2);
    cr_expect_neq(strstr(out, "-w, -a and --pact do not apply"), NULL, "%s", out);
    cr_expect_eq(run("./qgate train --cg --pact", out, sizeof out), 2);
    cr_expect_eq(run("./qgate train --cg --pt 3", out, sizeof out), 2);
    cr_expect_neq(strstr(out, "--pt 3 must divide the channel counts"), NULL, "%s", out);
    cr_expect_eq(run("./qgate train --cg --pt 1", out, sizeof out), 2);
    cr_expect_eq(run("./qgate train --cg --pt 32", out, sizeof out), 2);
    cr_expect_eq(run("./qgate train --cg --alpha 0", out, sizeof out), 2);
    cr_expect_neq(strstr(out, "--alpha expects a number"), NULL, "%s", out);
    const char *alone[] = {"--postact", "--group", "--shuffle", "--pt 4", "--gi 0.5",
                           "--alpha 2"};
    for (size_t i = 0; i < sizeof alone / sizeof *alone; i++) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "./qgate train %s", alone[i]);
        cr_expect_eq(run(cmd, out, sizeof out), 2, "%s", cmd);
        cr_expect_neq(strstr(out, "only applies with --cg"), NULL, "%s: %s", cmd, out);
    }
    cr_expect_eq(run("./qgate train --help", out, sizeof out), 0);
    cr_expect_neq(strstr(out, "channel gating"), NULL);
    cr_expect_neq(strstr(out, "--postact"), NULL);
}

/* --pg-style tf and the original tool's spellings (--a --t --g): a valid
 * line gets past parsing (it stops at the missing data, exit 1), the
 * invalid ones are refused with the flag named (exit 2). */
Test(cli, pg_tf_style_flags)
{
    static char out[16384];
    cr_expect_eq(run("./qgate train --pg --pg-style tf --a 6 --t 4 --g 0 --pact --data cifar10 "
                     "--data-dir /nonexistent-dir --epochs 1", out, sizeof out), 1, "%s", out);
    cr_expect_neq(strstr(out, "/nonexistent-dir"), NULL, "%s", out);
    cr_expect_eq(run("./qgate train --pg --pg-style tf --abits 6 --trunc-bits 4 --gtar 0 "
                     "--data cifar10 --data-dir /nonexistent-dir", out, sizeof out), 1, "%s",
                 out);
    cr_expect_eq(run("./qgate train --pg --pg-style keras --a 6 --t 4", out, sizeof out), 2);
    cr_expect_neq(strstr(out, "--pg-style expects one of pytorch|tf, got 'keras'"), NULL, "%s",
                  out);
    cr_expect_eq(run("./qgate train --pg --pg-style tf --a 6 --t 4 --spbp", out, sizeof out), 2);
    cr_expect_neq(strstr(out, "--spbp"), NULL, "%s", out);
    cr_expect_eq(run("./qgate train --pg --pg-style tf -w 4 --a 6 --t 4", out, sizeof out), 2);
    cr_expect_neq(strstr(out, "-w/--wbits"), NULL, "%s", out);
    cr_expect_eq(run("./qgate train --pg --pg-style tf --a 4 --t 4", out, sizeof out), 2);
    cr_expect_neq(strstr(out, "must be smaller than --abits 4"), NULL, "%s", out);
    cr_expect_eq(run("./qgate train --pg-style tf", out, sizeof out), 2);
    cr_expect_neq(strstr(out, "only applies with --pg"), NULL, "%s", out);
    cr_expect_eq(run("./qgate train --help", out, sizeof out), 0);
    cr_expect_neq(strstr(out, "--pg-style"), NULL, "%s", out);
    cr_expect_neq(strstr(out, "--trunc-bits"), NULL, "%s", out);
}

Test(cli, missing_dataset_names_the_flag)
{
    static char out[16384];
    cr_expect_eq(run("./qgate train --data cifar10 --data-dir /nonexistent-dir --epochs 1",
                     out, sizeof out), 1);
    cr_expect_neq(strstr(out, "/nonexistent-dir"), NULL, "%s", out);
    cr_expect_eq(run("./qgate eval /nonexistent.safetensors", out, sizeof out), 1);
    cr_expect_neq(strstr(out, "/nonexistent.safetensors"), NULL, "%s", out);
}

/* The README's main job writes into runs/, which a fresh clone lacks:
 * output folders are created; one that cannot be is named before any
 * training. */
Test(cli, output_folders_are_created_or_named, .timeout = 300)
{
    static char out[16384];
    char dir[] = "/tmp/qgate-cli-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "./qgate train --epochs 1 --limit-train 64 --limit-test 64 "
             "--batch 32 --metrics %s/a/b/m.jsonl --checkpoint %s/c/ck.safetensors", dir, dir);
    cr_expect_eq(run(cmd, out, sizeof out), 0, "%s", out);
    char path[256];
    snprintf(path, sizeof path, "%s/a/b/m.jsonl", dir);
    cr_expect_eq(access(path, R_OK), 0, "no metrics file: %s", out);
    snprintf(path, sizeof path, "%s/c/ck.safetensors", dir);
    cr_expect_eq(access(path, R_OK), 0, "no checkpoint: %s", out);
    cr_expect_eq(run("./qgate train --epochs 1 --limit-train 64 --batch 32 --metrics /proc/no/m.jsonl",
                     out, sizeof out), 1);
    cr_expect_neq(strstr(out, "/proc/no"), NULL, "%s", out);
    cr_expect_eq(strstr(out, "epoch 1/1"), NULL, "trained before failing: %s", out);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_expect_eq(system(cmd), 0);
}

Test(cli, ctrl_c_writes_a_checkpoint_and_exits_130)
{
    static char out[16384];
    char ckpt[512], cmd[1536];
    snprintf(ckpt, sizeof ckpt, "%s/qgate-cli-%ld.safetensors",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", (long)getpid());
    unlink(ckpt);
    /* SIGINT once training is under way (the first log line is printed
     * after the model is built); the exit status of the shell is qgate's. */
    snprintf(cmd, sizeof cmd,
             "./qgate train --model resnet8 --limit-train 512 --limit-test 64 --batch 32 "
             "--epochs 100 --no-progress --checkpoint %s > %s.log 2>&1 & pid=$!; "
             "for i in $(seq 1 600); do grep -q 'epochs of' %s.log && break; sleep 0.1; done; "
             "sleep 1; kill -INT $pid; wait $pid; s=$?; cat %s.log; exit $s",
             ckpt, ckpt, ckpt, ckpt);
    cr_expect_eq(run(cmd, out, sizeof out), 130, "%s", out);
    cr_expect_neq(strstr(out, "interrupted; checkpoint written"), NULL, "%s", out);
    FILE *f = fopen(ckpt, "rb");
    cr_expect_not_null(f, "no checkpoint at %s", ckpt);
    if (f)
        fclose(f);
    char evalcmd[1024];
    snprintf(evalcmd, sizeof evalcmd, "./qgate eval --limit-test 64 %s", ckpt);
    cr_expect_eq(run(evalcmd, out, sizeof out), 0, "%s", out);
    cr_expect_neq(strstr(out, "test accuracy"), NULL, "%s", out);
}

/* Runs cmd, expects exit status `status` and, unless NULL, `needle` in
 * its output; returns the output (static). */
static const char *expect_cli(const char *cmd, int status, const char *needle)
{
    static char out[16384];
    cr_expect_eq(run(cmd, out, sizeof out), status, "%s:\n%s", cmd, out);
    if (needle)
        cr_expect_neq(strstr(out, needle), NULL, "%s: no '%s' in:\n%s", cmd, needle, out);
    return out;
}

Test(cli, bench_train_takes_the_method_flags_of_train)
{
    expect_cli("./qgate bench train --help", 0, "--pred-bits");
    expect_cli("./qgate bench train --help", 0, "--spbp");
    /* The same checks as qgate train, from the same code. */
    expect_cli("./qgate bench train --pg -a 3 --pb 3", 2,
               "qgate bench train: --pb 3 must be smaller than --abits 3");
    expect_cli("./qgate bench train -w 1", 2, "--wbits expects an integer in 2..16");
    expect_cli("./qgate bench train --spbp", 2, "only applies with --pg or --cg");
    expect_cli("./qgate bench train --steps 0", 2, "--steps expects an integer");
    expect_cli("./qgate bench train --sg", 2, "needs a value");
    /* A PG step on a tiny ResNet-8 runs and reports its rate. */
    const char *out = expect_cli("./qgate bench train -w 8 -a 3 --pb 2 --pact --pg --spbp "
                                 "--gtar 1 --model resnet8 --batch 4 --steps 2 --warmup 1 "
                                 "--input 1x8x8", 0, "(quant w8 a3 pact pg pb2 spbp)");
    double rate = 0;
    const char *r = strstr(out, "img/s: ");
    cr_assert_not_null(r, "%s", out);
    cr_expect_eq(sscanf(r, "img/s: %lf", &rate), 1);
    cr_expect(rate > 0, "%s", out);
    expect_cli("./qgate bench train -w 4 -a 4 --model resnet8 --batch 4 --steps 1 --warmup 0 "
               "--input 1x8x8 --eval", 0, "(quant w4 a4), input 1x8x8, batch 4, inference");
}

Test(cli, tune_shapes_file_flag)
{
    expect_cli("./qgate tune --help", 0, "--shapes model|FILE");
    expect_cli("./qgate tune --help", 0, "\"schema\": 1, \"conv\"");
    /* A bad file stops before any device work, naming the file. */
    expect_cli("./qgate tune --shapes no-such-shapes.json", 2,
               "shapes file 'no-such-shapes.json': cannot open");
    expect_cli("./qgate tune --shapes \"$QG_TEST_DATA/../../bench/shapes/resnet20.json\" "
               "--kernel bn --dry-run", 1,
               "only conv_direct and conv_masked have per-shape cases");
}

Test(cli, bench_kernels_help_and_errors)
{
    expect_cli("./qgate bench --help", 0, "bench kernels");
    expect_cli("./qgate bench kernels --help", 0, "--runs");
    expect_cli("./qgate bench kernels --help", 0, "--tune-db");
    expect_cli("./qgate bench kernels --runs 0", 2, "--runs expects an integer");
    expect_cli("./qgate bench kernels --kernel nope", 1, "known: clblast_xgemm");
    expect_cli("./qgate bench nope", 2, "expected 'train' or 'kernels'");
    const char *out = expect_cli("./qgate bench kernels --kernel loss --runs 2", 0, " loss ");
    cr_expect_neq(strstr(out, " default "), NULL, "%s", out);
}

/* Hardening of `qgate train`'s outputs and resume (each of these was
 * accepted before: a special file replaced by the checkpoint's rename,
 * a failed metrics write with exit 0, one path for both outputs, a resume
 * into another architecture, seed or batch, a finished run resumed
 * silently). Every refusal comes before any training. */
Test(cli, train_outputs_and_resume_are_checked, .timeout = 600)
{
    char dir[] = "/tmp/qgate-cli-XXXXXX", cmd[1024], ck[256];
    cr_assert_not_null(mkdtemp(dir));
    const char *base = "./qgate train --model resnet8 --epochs 1 --limit-train 64 "
                       "--limit-test 64 --batch 32 --no-progress";
    struct stat before, after;
    if (stat("/dev/full", &before) == 0) {
        snprintf(cmd, sizeof cmd, "%s --checkpoint /dev/full", base);
        const char *out = expect_cli(cmd, 1, "'/dev/full' exists and is not a regular file");
        cr_expect_eq(strstr(out, "epoch 1/1"), NULL, "trained before failing: %s", out);
        cr_assert_eq(stat("/dev/full", &after), 0);
        cr_expect(S_ISCHR(after.st_mode), "/dev/full was replaced");
        snprintf(cmd, sizeof cmd, "%s --metrics /dev/full", base);
        expect_cli(cmd, 1, "writing --metrics file '/dev/full'");
    }
    snprintf(ck, sizeof ck, "%s/ck.safetensors", dir);
    snprintf(cmd, sizeof cmd, "%s --metrics %s --checkpoint %s", base, ck, ck);
    expect_cli(cmd, 1, "name the same file");
    snprintf(cmd, sizeof cmd, "%s --checkpoint %s/no/such/ck.safetensors", base, "/proc");
    expect_cli(cmd, 1, "/proc/no");
    snprintf(cmd, sizeof cmd, "%s --checkpoint %s", base, ck);
    expect_cli(cmd, 0, "epoch 1/1");
    snprintf(cmd, sizeof cmd, "%s --resume %s --checkpoint %s", base, ck, ck);
    expect_cli(cmd, 0, "nothing to do");
    snprintf(cmd, sizeof cmd, "%s --epochs 2 --model resnet20 --resume %s", base, ck);
    expect_cli(cmd, 1, "holds a resnet8, this run builds --model resnet20");
    snprintf(cmd, sizeof cmd, "%s --epochs 2 --seed 7 --resume %s", base, ck);
    expect_cli(cmd, 1, "--seed 1, this run has --seed 7");
    snprintf(cmd, sizeof cmd, "%s --epochs 2 -w 4 --resume %s", base, ck);
    expect_cli(cmd, 1, "was trained with full precision, this run has quant w4 a8");
    /* --init takes the weights only, from the same architecture */
    snprintf(cmd, sizeof cmd, "%s --init %s", base, ck);
    expect_cli(cmd, 0, "initialised all 37 tensors from");
    snprintf(cmd, sizeof cmd, "%s --init %s -w 8 -a 3 --pg --pb 2", base, ck);
    expect_cli(cmd, 0, "3 keep their initial values (layer1.0.conv1.threshold");
    snprintf(cmd, sizeof cmd, "%s --model resnet20 --init %s", base, ck);
    expect_cli(cmd, 1, "--init: '");
    snprintf(cmd, sizeof cmd, "%s --init %s --resume %s", base, ck, ck);
    expect_cli(cmd, 1, "give one of them");
    /* Issue 23.10: an evaluation batch the device cannot hold is named
     * before any training, as --eval-batch (it used to fail after an
     * epoch, naming --batch) */
    snprintf(cmd, sizeof cmd, "%s --eval-batch 65536", base);
    const char *eo = expect_cli(cmd, 1, "lower --eval-batch 65536");
    cr_expect_eq(strstr(eo, "epoch 1/1"), NULL, "trained before failing: %s", eo);
    cr_expect_eq(strstr(eo, "--batch "), NULL, "names --batch: %s", eo);
    snprintf(cmd, sizeof cmd, "%s --start-epoch 1", base);
    expect_cli(cmd, 1, "--start-epoch needs --init");
    snprintf(cmd, sizeof cmd, "%s --init %s --start-epoch 1", base, ck);
    expect_cli(cmd, 1, "--start-epoch 1 leaves nothing to train with --epochs 1");
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_expect_eq(system(cmd), 0);
}

/* Issue 23.2: `qgate eval /dev/zero` read without end (23 GB before it
 * was killed); a special file is refused before anything is read. */
Test(cli, eval_refuses_special_files, .timeout = 30)
{
    static char out[16384];
    cr_expect_eq(run("./qgate eval /dev/zero", out, sizeof out), 1);
    cr_expect_neq(strstr(out, "'/dev/zero' is a character device, not a regular file"), NULL,
                  "%s", out);
}

/* The text from `key` in out to the next newline, or to " img/s" (the
 * timing that follows the numbers of an epoch line), as a static copy. */
static const char *line_after(const char *out, const char *key)
{
    static char buf[4][256];
    static int k;
    char *b = buf[k++ % 4];
    const char *p = strstr(out, key);
    b[0] = 0;
    if (p) {
        size_t n = strcspn(p, "\n");
        const char *t = strstr(p, " img/s");
        if (t && (size_t)(t - p) < n) {
            n = (size_t)(t - p); /* and back over the rate: "..., 27 img/s" */
            while (n > 0 && p[n - 1] != ',')
                n--;
        }
        snprintf(b, sizeof buf[0], "%.*s", (int)(n < 255 ? n : 255), p);
    }
    return b;
}

/* BSQ from the command line: a float model, converted to 8-bit planes,
 * one BSQ epoch (the epoch line names BSQ's loss term, not a gating loss,
 * and shows the compression), a finetune epoch, and eval's per-layer
 * precisions and compression. */
Test(cli, bsq_convert_train_finetune_eval, .timeout = 600)
{
    char dir[] = "/tmp/qgate-cli-XXXXXX", cmd[1024];
    cr_assert_not_null(mkdtemp(dir));
    const char *base = "./qgate train --model resnet8 --shortcut B --epochs 1 --limit-train 128 "
                       "--limit-test 64 --no-progress";
    /* any name: convert knows a safetensors file by its content */
    snprintf(cmd, sizeof cmd, "%s --checkpoint %s/f.st", base, dir);
    expect_cli(cmd, 0, "epoch 1/1");
    snprintf(cmd, sizeof cmd, "./qgate convert %s/f.st --bits 8 -o %s/b.safetensors", dir, dir);
    expect_cli(cmd, 0, NULL);
    snprintf(cmd, sizeof cmd, "%s --bsq --init %s/b.safetensors --decay 2 --checkpoint "
             "%s/q.safetensors", base, dir, dir);
    const char *o = expect_cli(cmd, 0, "with the bit-plane regulariser)");
    cr_expect_eq(strstr(o, "gating loss"), NULL, "%s", o);
    cr_expect_neq(strstr(o, "compression 4.00x (8.00 bits)"), NULL, "%s", o);
    snprintf(cmd, sizeof cmd, "%s --bsq-finetune --init %s/q.safetensors --checkpoint "
             "%s/t.safetensors", base, dir, dir);
    expect_cli(cmd, 0, "compression");
    snprintf(cmd, sizeof cmd, "./qgate eval %s/t.safetensors --limit-test 64", dir);
    expect_cli(cmd, 0, "Compression rate (32 bits / average bits of the quantized layers): 4.00x");
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    expect_cli(cmd, 0, NULL);
}

/* Issue 23, fidelity: --keep-last trains on the last partial batch (3
 * steps of 300 images at batch 128, not 2); the training loss is shown
 * with and without PG's gating loss (epoch line and metrics keys);
 * --normalize is kept in the checkpoint and eval uses it; the test
 * accuracy and sparsity of 100 images are the same evaluated in a batch
 * of 100 or in 128 slots (the rest stale), during training and in eval. */
Test(cli, keep_last_normalize_and_partial_eval_batches, .timeout = 900)
{
    char dir[] = "/tmp/qgate-cli-XXXXXX", cmd[1024];
    cr_assert_not_null(mkdtemp(dir));
    const char *base = "./qgate train --model resnet8 -w 8 -a 3 --pact --pg --pb 2 --epochs 1 "
                       "--limit-train 300 --limit-test 100 --batch 128 --no-progress";
    static char a[16384], b[16384];
    snprintf(cmd, sizeof cmd, "%s --keep-last --normalize imagenet --eval-batch 128 "
             "--metrics %s/m.jsonl --checkpoint %s/ck.safetensors", base, dir, dir);
    memcpy(a, expect_cli(cmd, 0, "1 epochs of 3 batches of 128"), sizeof a);
    cr_expect_neq(strstr(a, "with the gating loss)"), NULL, "%s", a);
    snprintf(cmd, sizeof cmd, "%s --keep-last --normalize imagenet --eval-batch 100", base);
    memcpy(b, expect_cli(cmd, 0, "epoch 1/1"), sizeof b);
    cr_expect_str_eq(line_after(b, " acc "), line_after(a, " acc "));
    const char *ta = line_after(a, "test loss"), *tb = line_after(b, "test loss");
    cr_expect_str_eq(ta, tb, "eval batch 128: %s\neval batch 100: %s", ta, tb);
    snprintf(cmd, sizeof cmd, "grep -c '\"train_gating_loss\": .*\"train_total_loss\": ' "
             "%s/m.jsonl", dir);
    expect_cli(cmd, 0, "1");
    /* without --keep-last the partial batch is dropped */
    snprintf(cmd, sizeof cmd, "%s --epochs 1 --limit-test 8", base);
    expect_cli(cmd, 0, "1 epochs of 2 batches of 128");

    /* eval: the checkpoint's normalisation, the same numbers at 100 and 128 */
    char want[64];
    snprintf(want, sizeof want, "test loss %.6s", ta + strlen("test loss "));
    snprintf(cmd, sizeof cmd, "./qgate eval %s/ck.safetensors --limit-test 100", dir);
    memcpy(b, expect_cli(cmd, 0, want), sizeof b);
    snprintf(cmd, sizeof cmd, "./qgate eval %s/ck.safetensors --limit-test 100 "
             "--eval-batch 100", dir);
    const char *c = expect_cli(cmd, 0, want);
    cr_expect_str_eq(line_after(c, "test accuracy"), line_after(b, "test accuracy"));
    cr_expect_str_eq(line_after(c, "Sparsity"), line_after(b, "Sparsity"));
    cr_expect_neq(line_after(b, "Sparsity")[0], 0, "%s", b);
    snprintf(cmd, sizeof cmd, "./qgate eval %s/ck.safetensors --limit-test 100 "
             "--normalize none", dir);
    c = expect_cli(cmd, 0, "test loss");
    cr_expect_eq(strstr(c, want), NULL, "--normalize none changed nothing: %s", c);
    snprintf(cmd, sizeof cmd, "%s --keep-last --epochs 2 --normalize dataset --resume "
             "%s/ck.safetensors", base, dir);
    expect_cli(cmd, 1, "was trained with --normalize imagenet, this run has --normalize "
               "dataset");
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_expect_eq(system(cmd), 0);
}

/* Issue 23, fidelity: a ResNet-20 checkpoint, float or PG with PACT,
 * loads into the reference's model definition (tests/tools/
 * reference_resnet.py) with load_state_dict(strict=True): batch norms'
 * num_batches_tracked are written (the step count), the optimizer state
 * is dropped by its prefix, or left out by `qgate export-model`. Needs
 * Debian's python3-torch (skipped without it). */
Test(cli, checkpoint_loads_strictly_into_the_reference_model, .timeout = 900)
{
    const char *data = getenv("QG_TEST_DATA");
    char tools[512], cmd[2048], dir[] = "/tmp/qgate-cli-XXXXXX";
    snprintf(tools, sizeof tools, "%s/../tools", data ? data : "../tests/data");
    if (system("/usr/bin/python3 -c 'import torch' >/dev/null 2>&1") != 0)
        cr_skip_test("python3-torch is not installed");
    /* names and shapes only, nothing for the sanitizers that the other
     * tests' runs do not cover: the normal make check runs it */
    if (getenv("QG_SANITIZER_STAGE"))
        cr_skip_test("left to the normal make check (QG_SANITIZER_STAGE)");
    cr_assert_not_null(mkdtemp(dir));
    const char *methods[] = {"", "-w 8 -a 3 --pact --pg --pb 2"};
    for (int k = 0; k < 2; k++) {
        snprintf(cmd, sizeof cmd, "./qgate train --model resnet20 %s --epochs 1 --limit-train "
                 "128 --limit-test 8 --batch 64 --no-progress --checkpoint %s/ck.safetensors",
                 methods[k], dir);
        expect_cli(cmd, 0, "epoch 1/1");
        snprintf(cmd, sizeof cmd, "./qgate export-model %s/ck.safetensors %s/model.safetensors",
                 dir, dir);
        expect_cli(cmd, 0, k ? "135 tensors (78 optimizer tensors left out)"
                             : "116 tensors (59 optimizer tensors left out)");
        snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/check_strict_load.py %s/ck.safetensors",
                 tools, dir);
        expect_cli(cmd, 0, "strict load OK");
        snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/check_strict_load.py "
                 "%s/model.safetensors", tools, dir);
        expect_cli(cmd, 0, "tensors (19 num_batches_tracked), 0 optimizer tensors dropped");
        /* qgate reads its own export, and ignores the counters */
        snprintf(cmd, sizeof cmd, "./qgate eval %s/model.safetensors --limit-test 8", dir);
        expect_cli(cmd, 0, "test accuracy");
    }
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_expect_eq(system(cmd), 0);
}

/* Issue 23, make it stay fixed: QGATE_FAULT (src/core/fault.h) makes the
 * Nth buffer allocation, program build or kernel launch fail. Walked over
 * a 2-epoch PG training run with checkpoint and metrics, and over an eval
 * of its checkpoint (N = 1, a third, two thirds and the last of each
 * kind, from the counts of a QGATE_FAULT=count run): every failure exits
 * 1 with an error naming the failed OpenCL call or build (never a crash
 * or a sanitizer report: test_cli runs in the sanitizer stage of CI too),
 * and leaves only whole files: the checkpoint of a finished epoch or none,
 * complete metrics lines, no temporary file. */
static void fault_counts(const char *cmd, long counts[3])
{
    char full[1200];
    snprintf(full, sizeof full, "QGATE_FAULT=count %s", cmd);
    const char *out = expect_cli(full, 0, "QGATE_FAULT counts:");
    const char *p = strstr(out, "QGATE_FAULT counts:");
    cr_assert_eq(sscanf(p, "QGATE_FAULT counts: alloc %ld, build %ld, launch %ld", &counts[0],
                        &counts[1], &counts[2]), 3, "%s", p);
}

static void fault_walk(const char *dir, const char *cmd, const long counts[3], int train)
{
    static const char *kinds[3] = {"alloc", "build", "launch"};
    static const char *calls[3] = {"clCreateBuffer(", "building program '",
                                   "clEnqueueNDRangeKernel("};
    char full[1400], sh[1200];
    static char out[16384];
    for (int k = 0; k < 3; k++) {
        long last = 0;
        for (int q = 1; q <= 4; q++) {
            long n = q == 1 ? 1 : counts[k] * (q - 1) / 3;
            if (n < 1 || n == last)
                continue;
            last = n;
            if (train) {
                snprintf(sh, sizeof sh, "rm -f %s/*", dir);
                cr_assert_eq(system(sh), 0);
            }
            snprintf(full, sizeof full, "QGATE_FAULT=%s:%ld %s", kinds[k], n, cmd);
            int rc = run(full, out, sizeof out);
            cr_expect(rc == 1 || rc == 0, "%s: exit %d:\n%s", full, rc, out);
            cr_expect_not_null(strstr(out, "QGATE_FAULT: failing"), "%s: no fault:\n%s", full,
                               out);
            if (rc == 1)
                cr_expect_not_null(strstr(out, calls[k]), "%s: the error does not name the "
                                   "failed call:\n%s", full, out);
            if (!train)
                continue;
            /* only whole files: a valid checkpoint or none, whole metrics lines */
            snprintf(sh, sizeof sh, "cd %s && for f in *; do case $f in ck.safetensors|"
                     "m.jsonl|'*') ;; *) echo \"stray file $f\"; exit 1;; esac; done", dir);
            cr_expect_eq(system(sh), 0, "%s left a stray file", full);
            snprintf(sh, sizeof sh, "test ! -e %s/ck.safetensors || ./qgate inspect "
                     "%s/ck.safetensors >/dev/null", dir, dir);
            cr_expect_eq(system(sh), 0, "%s: the checkpoint does not read", full);
            snprintf(sh, sizeof sh, "test ! -e %s/m.jsonl || ! grep -qv '}$' %s/m.jsonl", dir,
                     dir);
            cr_expect_eq(system(sh), 0, "%s: a partial metrics line", full);
        }
    }
}

Test(cli, injected_device_faults_fail_cleanly, .timeout = 1800)
{
    char dir[] = "/tmp/qgate-cli-XXXXXX", cmd[1024], sh[512];
    cr_assert_not_null(mkdtemp(dir));
    long counts[3];
    snprintf(cmd, sizeof cmd, "./qgate train --model resnet8 -w 8 -a 3 --pact --pg --pb 2 "
             "--epochs 2 --limit-train 64 --limit-test 40 --batch 32 --eval-batch 32 "
             "--no-progress --checkpoint %s/ck.safetensors --metrics %s/m.jsonl", dir, dir);
    fault_counts(cmd, counts);
    cr_expect_gt(counts[0], 10);
    cr_expect_gt(counts[1], 2);
    cr_expect_gt(counts[2], 100);
    snprintf(sh, sizeof sh, "cp %s/ck.safetensors %s.ck", dir, dir);
    cr_assert_eq(system(sh), 0);
    fault_walk(dir, cmd, counts, 1);
    snprintf(cmd, sizeof cmd, "./qgate eval %s.ck --limit-test 40 --eval-batch 32", dir);
    fault_counts(cmd, counts);
    fault_walk(dir, cmd, counts, 0);
    snprintf(sh, sizeof sh, "rm -rf %s %s.ck", dir, dir);
    cr_expect_eq(system(sh), 0);
}

/* Issue 23.5: a run whose loss turns NaN/Inf stops at that batch, before
 * the optimizer step spreads it, naming the first parameter whose
 * gradient or value is non-finite (checked on the device). Here the
 * classifier's weights of an --init file are huge but finite, so the
 * logits overflow on the first batch. */
Test(cli, divergence_names_the_first_non_finite_tensor, .timeout = 600)
{
    char dir[] = "/tmp/qgate-cli-XXXXXX", cmd[1024], ck[256], bad[256];
    cr_assert_not_null(mkdtemp(dir));
    snprintf(ck, sizeof ck, "%s/ck.safetensors", dir);
    snprintf(bad, sizeof bad, "%s/bad.safetensors", dir);
    const char *base = "./qgate train --model resnet8 --epochs 1 --limit-train 64 "
                       "--limit-test 16 --batch 32 --no-progress";
    snprintf(cmd, sizeof cmd, "%s --checkpoint %s", base, ck);
    expect_cli(cmd, 0, "epoch 1/1");
    qg_st_file *f;
    QG_EXPECT_OK(qg__safetensors_read(ck, &f));
    size_t n = qg__safetensors_count(f), nmeta;
    qg_st_tensor *ts = calloc(n, sizeof *ts);
    float *huge = NULL;
    for (size_t i = 0; i < n; i++) {
        ts[i] = *qg__safetensors_at(f, i);
        if (strcmp(ts[i].name, "linear.weight") == 0) {
            size_t k = (size_t)(ts[i].shape[0] * ts[i].shape[1]);
            huge = malloc(k * sizeof *huge);
            for (size_t j = 0; j < k; j++)
                huge[j] = (j % 2 ? -3e38f : 3e38f);
            ts[i].data = huge;
        }
    }
    cr_assert_not_null(huge);
    const qg_st_meta *meta = qg__safetensors_meta_all(f, &nmeta);
    QG_EXPECT_OK(qg__safetensors_write(bad, ts, n, meta, nmeta));
    free(ts);
    free(huge);
    qg__safetensors_free(f);
    snprintf(cmd, sizeof cmd, "%s --init %s", base, bad);
    const char *out = expect_cli(cmd, 1, "training diverged: loss is");
    cr_expect_neq(strstr(out, "at epoch 1 batch 1 (first non-finite: the "), NULL, "%s", out);
    /* and an evaluation whose loss overflows is an error, not "test loss nan" */
    snprintf(cmd, sizeof cmd, "./qgate eval %s --limit-test 16", bad);
    expect_cli(cmd, 1, "evaluation: the test loss is");
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_expect_eq(system(cmd), 0);
}
