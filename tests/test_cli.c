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

TestSuite(cli);

/* Runs a shell command; returns its exit status and its combined output. */
static int run(const char *cmd, char *out, size_t cap)
{
    char full[1024];
    snprintf(full, sizeof full, "%s 2>&1", cmd);
    FILE *p = popen(full, "r");
    cr_assert_not_null(p, "cannot run %s", cmd);
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = 0;
    int st = pclose(p);
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
               "--kernel bn --dry-run", 1, "only conv_direct has per-shape cases");
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
