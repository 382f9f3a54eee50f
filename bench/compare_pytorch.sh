#!/bin/sh
# bench/compare_pytorch.sh [BUILD_DIR [METHOD FLAGS...]]: ResNet-20 training
# and inference img/s of PyTorch (Debian's python3-torch, CPU, 2 threads,
# glibc malloc tuned as in the speed issue) and of `qgate bench train` right
# after, on the same machine, then the ratio qgate/PyTorch. Not run by make
# check.
#
# Without method flags both run the full-precision ResNet-20
# (bench/pytorch_resnet.py). With qgate's method flags (-w N -a N --pb N
# --pact --pg --spbp --gtar X --sg X), PyTorch runs the reference PG /
# quantized implementation ported in bench/pytorch_pg_resnet.py with the
# same flags, and qgate bench train gets them too; with --cg (and its --pt
# --group --shuffle --postact --spbp --gi --alpha --gtar --sg) the reference
# CG ResNet-20 of bench/pytorch_cg_resnet.py. Examples, the PG and CG recipes:
#   bench/compare_pytorch.sh build -w 8 -a 3 --pb 2 --pact --pg --spbp --gtar 1
#   bench/compare_pytorch.sh build --cg --pt 4 --group --spbp --gtar 1
# Give qgate-only flags (--init CKPT, --dense-gates) in QGATE_FLAGS.
# BATCH (128), STEPS (10), INPUT (3x32x32; 1x28x28 for a Fashion-MNIST
# checkpoint in QGATE_FLAGS), MODES ("train eval") and ROUNDS (3) come from
# the environment. Each side runs ROUNDS times, alternating, and its best
# img/s counts: on a shared VM a neighbour's load can cost either side 20%
# in a single run (measured: PyTorch's quantized step at 301 and 388 img/s
# on the same machine an hour apart).
set -eu
build=${1:-.}
[ $# -gt 0 ] && shift
qgate="$build/qgate"
[ -x "$qgate" ] || { echo "compare_pytorch.sh: no qgate binary in '$build'" >&2; exit 1; }
here=$(dirname "$0")
batch=${BATCH:-128}
steps=${STEPS:-10}
input=${INPUT:-3x32x32}
modes=${MODES:-train eval}
script="$here/pytorch_resnet.py"
what="resnet20"
if [ $# -gt 0 ]; then
    script="$here/pytorch_pg_resnet.py"
    case " $* " in *" --cg "*) script="$here/pytorch_cg_resnet.py" ;; esac
    what="resnet20 $*"
fi
rounds=${ROUNDS:-3}
rate() { sed -n 's/^img\/s: //p' | tail -n 1; }
best() { awk -v a="$1" -v b="$2" 'BEGIN { print (b == "" || a + 0 > b + 0) ? a : b }'; }
for mode in $modes; do
    flag=""; [ "$mode" = eval ] && flag="--eval"
    pt=""; qg=""; all_pt=""; all_qg=""
    for r in $(seq "$rounds"); do
        # each side's lines go to stderr by echo: `tee /dev/stderr` truncated a log
        # file that stderr was redirected to (it reopens the file)
        out=$(GLIBC_TUNABLES=glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=4294967296 \
            /usr/bin/python3 "$script" --batch "$batch" --steps "$steps" --input "$input" --threads 2 $flag "$@")
        echo "$out" >&2
        p=$(echo "$out" | rate)
        out=$("$qgate" bench train --model resnet20 --batch "$batch" --steps "$steps" --input "$input" $flag "$@" ${QGATE_FLAGS:-})
        echo "$out" >&2
        q=$(echo "$out" | rate)
        pt=$(best "$p" "$pt"); qg=$(best "$q" "$qg")
        all_pt="$all_pt $p"; all_qg="$all_qg $q"
    done
    echo "$what $mode batch $batch input $input: pytorch $pt img/s, qgate $qg img/s, ratio qgate/pytorch $(echo "$qg $pt" | awk '{printf "%.2f", $1/$2}') (best of $rounds; pytorch$all_pt; qgate$all_qg)"
done
