#!/bin/sh
# bench/bsq_step.sh: the cost of a BSQ training step (bit planes: effective
# weights built from the planes, gradients scattered back to them, the
# group-Lasso term, the clamp) against a quantized-training step (-w 8 -a 8,
# uniform quantization of the block convs) and a float step of the same
# model (ResNet-20, option-B shortcuts), with `qgate bench train`. The three
# run alternately, ROUNDS times, so a loaded machine slows them alike; the
# script prints each run's median ms per step and the ratios of the medians
# of the runs' medians.
#
# usage: bench/bsq_step.sh [QGATE] [ROUNDS] [extra bench flags...]
#   e.g. bench/bsq_step.sh build/qgate 5 --batch 64 --input 1x28x28
set -e
QGATE=${1:-./qgate}
ROUNDS=${2:-5}
shift 2 2>/dev/null || true
EXTRA="--shortcut B --warmup 2 --steps 6 $*"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for r in $(seq 1 "$ROUNDS"); do
    for kind in float quant bsq; do
        case $kind in
        float) flags="" ;;
        quant) flags="-w 8 -a 8" ;;
        bsq) flags="--bsq --decay 0.01" ;;
        esac
        # shellcheck disable=SC2086
        ms=$(nice "$QGATE" bench train $EXTRA $flags 2>&1 | sed -n 's/.*median \([0-9.]*\).*/\1/p' | head -1)
        echo "round $r $kind: median $ms ms/step"
        echo "$ms" >> "$tmp/$kind"
    done
done
med() { sort -n "$1" | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
f=$(med "$tmp/float"); q=$(med "$tmp/quant"); b=$(med "$tmp/bsq")
echo "medians: float $f ms, quant (-w 8 -a 8) $q ms, bsq $b ms"
awk -v f="$f" -v q="$q" -v b="$b" 'BEGIN {printf "bsq / quant = %.3f, bsq / float = %.3f, quant / float = %.3f\n", b/q, b/f, q/f}'
