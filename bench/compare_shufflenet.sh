#!/bin/sh
# bench/compare_shufflenet.sh [BUILD_DIR]: ShuffleNet V2 0.5x training and
# inference img/s of torchvision (bench/pytorch_shufflenet.py, Debian's
# python3-torchvision, CPU, 2 threads) and of `qgate bench train --model
# shufflenet_v2_x0_5` right after, on the same machine, at each input size
# of SIZES ("224 64"), then the ratio qgate/PyTorch. Both report the median
# step; each side runs ROUNDS (2) times, alternating, and its best counts.
# BATCH (32), STEPS (5), WARMUP (2), CLASSES (1000), MODES ("train eval"), MODEL
# (shufflenet_v2_x0_5; resnet18 works too) come from the environment. To
# keep the two on the same cores as the comparison asks, run the whole
# script under `taskset -c 0,1`. Not run by make check.
set -eu
build=${1:-.}
qgate="$build/qgate"
[ -x "$qgate" ] || { echo "compare_shufflenet.sh: no qgate binary in '$build'" >&2; exit 1; }
here=$(dirname "$0")
batch=${BATCH:-32}
steps=${STEPS:-5}
warmup=${WARMUP:-2}
classes=${CLASSES:-1000}
model=${MODEL:-shufflenet_v2_x0_5}
rounds=${ROUNDS:-2}
rate() { sed -n 's/^img\/s: //p' | tail -n 1; }
best() { awk -v a="$1" -v b="$2" 'BEGIN { print (b == "" || a + 0 > b + 0) ? a : b }'; }
for size in ${SIZES:-224 64}; do
    for mode in ${MODES:-train eval}; do
        flag=""; [ "$mode" = eval ] && flag="--eval"
        pt=""; qg=""; all_pt=""; all_qg=""
        for r in $(seq "$rounds"); do
            # (each side's own lines go to stderr; not through `tee /dev/stderr`,
            # which truncates a log file that stderr is redirected to)
            out=$(/usr/bin/python3 "$here/pytorch_shufflenet.py" --model "$model" \
                --size "$size" --classes "$classes" --batch "$batch" --steps "$steps" \
                --warmup "$warmup" --threads 2 $flag)
            echo "$out" >&2
            p=$(echo "$out" | rate)
            out=$("$qgate" bench train --model "$model" --input "3x${size}x${size}" \
                --classes "$classes" --batch "$batch" --steps "$steps" --warmup "$warmup" $flag)
            echo "$out" >&2
            q=$(echo "$out" | rate)
            pt=$(best "$p" "$pt"); qg=$(best "$q" "$qg")
            all_pt="$all_pt $p"; all_qg="$all_qg $q"
        done
        echo "$model $mode ${size}x${size} batch $batch: pytorch $pt img/s, qgate $qg img/s," \
             "ratio qgate/pytorch $(echo "$qg $pt" | awk '{printf "%.2f", $1/$2}')" \
             "(best of $rounds; pytorch$all_pt; qgate$all_qg)"
    done
done
