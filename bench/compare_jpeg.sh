#!/bin/sh
# Alternates bench_jpeg (qgate) and torchvision_loader.py on the same photo
# folder, same workers and batch, ROUNDS times each, so machine load hits
# both alike. Run from the build folder:
#   ../bench/make_photo_folder.sh /tmp/photos 200
#   ../bench/compare_jpeg.sh /tmp/photos 2 3
set -eu
DIR=${1:?usage: compare_jpeg.sh DIR [WORKERS] [ROUNDS] [extra flags]}
W=${2:-2}
R=${3:-3}
shift $(( $# < 3 ? $# : 3 ))
HERE=$(dirname "$0")
i=0
while [ "$i" -lt "$R" ]; do
    ./bench/bench_jpeg "$DIR" --workers "$W" "$@"
    /usr/bin/python3 "$HERE/torchvision_loader.py" "$DIR" --workers "$W" "$@"
    i=$(( i + 1 ))
done
