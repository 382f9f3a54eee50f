#!/bin/sh
# bench/psgd_ab.sh [BUILD_DIR]: what PSGD's gradient scaling costs per
# training step. Alternates `qgate bench train` runs of the same model
# without (A: plain SGD, float) and with PSGD (B: --psgd -w 4
# --first-last-quant, so every conv and linear layer carries the grid
# quantizer: the range update in its forward, the scaling in its backward)
# ROUNDS times (default 4), and prints each pair's img/s and the ratio
# B/A, then the median ratio. Alternating A/B in the same minutes keeps a
# neighbour's load from favouring one side; on a shared machine read the
# spread of the ratios, not one number. Environment: MODEL (resnet32),
# SHORTCUT (B), BATCH (128), INPUT (1x28x28), STEPS (5), WARMUP (2).
# Not run by make check.
set -eu
build=${1:-build}
rounds=${ROUNDS:-4}
model=${MODEL:-resnet32}
common="--model $model --shortcut ${SHORTCUT:-B} --batch ${BATCH:-128} --input ${INPUT:-1x28x28}
        --steps ${STEPS:-5} --warmup ${WARMUP:-2}"
ips() {
    # shellcheck disable=SC2086
    "$build/qgate" bench train $common "$@" 2>/dev/null | sed -n 's/^img\/s: \([0-9.]*\).*/\1/p'
}
ratios=""
i=1
while [ "$i" -le "$rounds" ]; do
    a=$(ips)
    b=$(ips --psgd -w 4 --first-last-quant)
    r=$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.3f", b / a }')
    echo "round $i: sgd $a img/s, psgd $b img/s, psgd/sgd $r"
    ratios="$ratios $r"
    i=$((i + 1))
done
echo "$ratios" | tr ' ' '\n' | sed '/^$/d' | sort -n |
    awk '{ v[NR] = $1 } END { m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2;
          printf "median psgd/sgd img/s ratio over %d rounds: %.3f (min %.3f, max %.3f)\n",
                 NR, m, v[1], v[NR] }'
