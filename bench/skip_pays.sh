#!/bin/sh
# bench/skip_pays.sh: does measuring where skipping pays on this device
# (conv_masked's PAY, `qgate tune --shapes FILE --kernel conv_masked`) help
# a gated model against the built-in density rule? Measures the PAYs of the
# shapes file into a scratch tuning database, then alternates, ROUNDS times,
# `qgate bench train --compare-dense` (skipping vs dense gating, steps
# alternated inside each run) with the built-in rule (an empty database:
# a user database is left out of both sides) and with
# the measured PAYs, in inference and in training. Prints the PAY lines and
# each run's "skipping: R x the img/s of dense gating" ratio. Run it on idle
# cores: load slows the dense steps more than the skipping ones.
#
# usage: bench/skip_pays.sh QGATE CKPT [ROUNDS] [SHAPES] -- model flags...
#   e.g. bench/skip_pays.sh build/qgate cg.safetensors 2 bench/shapes/resnet20.json \
#            -- --input 1x28x28 --cg --pt 4 --group --spbp --gtar 1 --gi 0.25
set -e
QGATE=${1:?usage: bench/skip_pays.sh QGATE CKPT [ROUNDS] [SHAPES] -- model flags...}
CKPT=${2:?usage: bench/skip_pays.sh QGATE CKPT [ROUNDS] [SHAPES] -- model flags...}
shift 2
ROUNDS=2
SHAPES=$(dirname "$0")/shapes/resnet20.json
[ $# -gt 0 ] && [ "$1" != "--" ] && { ROUNDS=$1; shift; }
[ $# -gt 0 ] && [ "$1" != "--" ] && { SHAPES=$1; shift; }
[ "${1:-}" = "--" ] && shift
[ -f "$CKPT" ] || { echo "skip_pays.sh: no checkpoint '$CKPT'" >&2; exit 2; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
db=$tmp/pays.json
"$QGATE" tune --shapes "$SHAPES" --kernel conv_masked --tune-db "$db" 2>&1 | grep "^conv_masked"
ratio() { sed -n 's/.*skipping: \([0-9.]*x\).*/\1/p' | head -1; }
for r in $(seq 1 "$ROUNDS"); do
    for mode in "--eval --steps 10" "--steps 8"; do
        # shellcheck disable=SC2086
        a=$(QGATE_TUNE_DB=$tmp/none.json "$QGATE" bench train "$@" --init "$CKPT" $mode --compare-dense 2>&1 | ratio)
        # shellcheck disable=SC2086
        b=$(QGATE_TUNE_DB=$db "$QGATE" bench train "$@" --init "$CKPT" $mode --compare-dense 2>&1 | ratio)
        case $mode in --eval*) what=inference ;; *) what=training ;; esac
        echo "round $r $what: built-in rule $a, measured PAY $b (of dense gating's img/s)"
    done
done
