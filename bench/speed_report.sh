#!/bin/sh
# bench/speed_report.sh [BUILD_DIR]: the speed issue's whole measurement in
# one run, on one machine: the device's peak FMA rate (bench/peak_flops),
# the ResNet-20 convolutions against it (bench/bench_conv), then qgate
# against PyTorch (bench/compare_pytorch.sh) for full-precision, quantized
# (w8 a3 PACT) and Precision-Gated (w8 a3 pb2 PACT spbp) ResNet-20,
# training and inference, batch 128. Prints a summary table at the end.
# Run it on an otherwise idle machine; other load skews every number
# (compare_pytorch.sh takes each side's best of ROUNDS runs, default 3,
# against a neighbour's load on a shared VM). Not run by make check.
set -eu
build=${1:-build}
here=$(dirname "$0")
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
echo "== machine"
grep -m1 'model name' /proc/cpuinfo || true
nproc
"$build/qgate" devices 2>/dev/null | head -n 3 || true
echo "== peak"
"$build/bench/peak_flops" | tee "$out/peak"
peak=$(sed -n 's/^peak GFLOP\/s: \([0-9.]*\).*/\1/p' "$out/peak")
echo "== convolutions (CIFAR 3x32x32 and Fashion-MNIST 1x28x28 shapes)"
"$build/bench/bench_conv" --peak "$peak" | tee "$out/conv"
"$build/bench/bench_conv" --peak "$peak" --input 1x28x28 | tee "$out/conv28"
STEPS=${STEPS:-10}
export STEPS
echo "== full precision"
"$here/compare_pytorch.sh" "$build" 2>/dev/null | tee "$out/fp"
echo "== quantized w8 a3 PACT"
"$here/compare_pytorch.sh" "$build" -w 8 -a 3 --pact 2>/dev/null | tee "$out/q"
echo "== PG w8 a3 pb2 PACT spbp"
"$here/compare_pytorch.sh" "$build" -w 8 -a 3 --pb 2 --pact --pg --spbp --gtar 1 2>/dev/null |
    tee "$out/pg"
echo "== summary (qgate / PyTorch, img/s)"
cat "$out/fp" "$out/q" "$out/pg"
grep 'training-step convs' "$out/conv" "$out/conv28" | sed 's/^[^:]*://'
