#!/bin/sh
# bench/compare_pytorch.sh [BUILD_DIR]: ResNet-20 training and inference
# img/s of PyTorch (Debian's python3-torch, CPU, 2 threads, glibc malloc
# tuned as in the speed issue) and of `qgate bench train` right after, on
# the same machine, then the ratio qgate/PyTorch. Not run by make check.
set -eu
build=${1:-.}
qgate="$build/qgate"
[ -x "$qgate" ] || { echo "compare_pytorch.sh: no qgate binary in '$build'" >&2; exit 1; }
here=$(dirname "$0")
batch=${BATCH:-128}
steps=${STEPS:-10}
rate() { sed -n 's/^img\/s: //p' | tail -n 1; }
for mode in train eval; do
    flag=""; [ "$mode" = eval ] && flag="--eval"
    pt=$(GLIBC_TUNABLES=glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=4294967296 \
         /usr/bin/python3 "$here/pytorch_resnet.py" --batch "$batch" --steps "$steps" $flag | tee /dev/stderr | rate)
    qg=$("$qgate" bench train --model resnet20 --batch "$batch" --steps "$steps" $flag | tee /dev/stderr | rate)
    echo "resnet20 $mode batch $batch: pytorch $pt img/s, qgate $qg img/s, ratio qgate/pytorch $(echo "$qg $pt" | awk '{printf "%.2f", $1/$2}')"
done
