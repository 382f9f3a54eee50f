#!/bin/sh
# Makes a folder of ~500x375 photos (the size of a typical ImageNet image)
# from Debian's sample photographs, for bench/bench_jpeg.c and
# bench/torchvision_loader.py: OUT/train/<class>/NNN.jpg, N images (default
# 200) in 4 classes, each a different crop of a source, some mirrored,
# resized to 500x375 or 375x500, JPEG quality 90 with 4:2:0 chroma.
# Needs python3-skimage and imagemagick (apt-get install -y python3-skimage
# imagemagick).
# usage: bench/make_photo_folder.sh OUT [N]
set -eu
OUT=${1:?usage: make_photo_folder.sh OUT [N]}
N=${2:-200}
SK=/usr/lib/python3/dist-packages/skimage/data
set -- astronaut.png chelsea.png coffee.png rocket.jpg motorcycle_left.png \
    hubble_deep_field.jpg retina.jpg grass.png gravel.png brick.png ihc.png color.png
NS=$#
i=0
while [ "$i" -lt "$N" ]; do
    k=$(( i % NS + 1 ))
    eval src=\${$k}
    cls=c$(( i % 4 ))
    mkdir -p "$OUT/train/$cls"
    # Crop 70-100% of the source at an offset that varies with i.
    pct=$(( 70 + (i * 7) % 31 ))
    gx=$(( (i * 13) % 3 ))
    case $gx in 0) grav=NorthWest ;; 1) grav=Center ;; *) grav=SouthEast ;; esac
    if [ $(( i % 5 )) -eq 4 ]; then size=375x500; else size=500x375; fi
    flop=""
    [ $(( i % 2 )) -eq 1 ] && flop=-flop
    convert -quiet "$SK/$src" -gravity "$grav" -crop "${pct}%x${pct}%+0+0" +repage $flop \
        -resize "${size}^" -gravity center -extent "$size" -sampling-factor 2x2 \
        -quality 90 -strip "$OUT/train/$cls/$(printf %03d "$i").jpg"
    i=$(( i + 1 ))
done
echo "$OUT/train: $N images"
