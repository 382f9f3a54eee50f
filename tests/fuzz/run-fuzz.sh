#!/bin/sh
# tests/fuzz/run-fuzz.sh: make check's driver for one libFuzzer target.
# Called with tests/fuzz/NAME.fuzz (the target's libFuzzer options, one
# per line); runs the binary tests/fuzz/fuzz_NAME of the build tree for
# $QG_FUZZ_SECONDS seconds (default 30) from the seeds in
# tests/fuzz/corpus/NAME, writing what it finds under tests/cache/fuzz of
# the build tree (never into the sources), and prints the runs and time it managed.
# Exits 77 (skipped) when configure found no clang with -fsanitize=fuzzer.
set -u
spec=$1
name=$(basename "$spec" .fuzz)
src=$(dirname "$spec")
bin=tests/fuzz/fuzz_$name
if [ "${QG_FUZZ_ENABLED:-no}" != yes ]; then
    echo "SKIP: fuzz target $name not built: ./configure found no clang that links"
    echo "-fsanitize=fuzzer (Debian: apt-get install clang libclang-rt-14-dev), or this"
    echo "is a --enable-sanitizers tree"
    exit 77
fi
[ -x "$bin" ] || { echo "FAIL: $bin was not built"; exit 1; }
secs=${QG_FUZZ_SECONDS:-30}
work=tests/cache/fuzz/$name
log=tests/cache/fuzz/$name.out
mkdir -p "$work"
rm -f tests/cache/fuzz/crash-"$name"-*
opts=$(grep -v '^#' "$spec" | sed 's/^/-/' | tr '\n' ' ')
# Leak checks stay on: a parser that leaks on an error path fails here.
# shellcheck disable=SC2086
"$bin" $opts -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="tests/cache/fuzz/crash-$name-" "$work" "$src/corpus/$name" >"$log" 2>&1
rc=$?
# Progress lines are many; the summary and any report are what matter.
grep -v '^#[0-9]*[[:space:]]*\(NEW\|REDUCE\|pulse\)' "$log" | tail -n 60
if [ $rc -ne 0 ]; then
    echo "FAIL: fuzz_$name exited with $rc; inputs: $(ls tests/cache/fuzz/crash-"$name"-* 2>/dev/null)"
    exit 1
fi
echo "PASS: fuzz_$name: $(grep -h '^stat::number_of_executed_units' "$log" | awk '{print $2}') runs in $secs s"
exit 0
