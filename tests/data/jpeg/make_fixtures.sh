#!/bin/sh
# Regenerates the JPEG decoder fixtures of tests/test_jpeg.c from Debian's
# sample images (python3-skimage, imagemagick-6-doc) with ImageMagick.
# Run from this folder; the outputs are committed, so make check needs none
# of these packages.
set -eu
SK=/usr/lib/python3/dist-packages/skimage/data
IM=/usr/share/doc/imagemagick-6-common/html/images
# 48x36 colour photo crop, baseline 4:2:0.
convert "$SK/chelsea.png" -resize 48x36! -quality 90 -strip rgb.jpg
# 33x21 grayscale (odd sizes), progressive.
convert "$SK/camera.png" -resize 33x21! -colorspace Gray -interlace JPEG -quality 90 -strip gray.jpg
# 24x16 CMYK (Adobe, inverted), as Photoshop writes them.
convert "$IM/rose.jpg" -resize 24x16! -colorspace CMYK -quality 95 cmyk.jpg
# A solid-colour CMYK and RGB pair to check the CMYK conversion.
convert -size 16x16 xc:'rgb(200,60,30)' -quality 100 -sampling-factor 1x1 solid_rgb.jpg
convert -size 16x16 xc:'rgb(200,60,30)' -colorspace CMYK -quality 100 solid_cmyk.jpg
# Truncated: the first half of rgb.jpg (no EOI, missing scans).
head -c $(( $(stat -c %s rgb.jpg) / 2 )) rgb.jpg > truncated.jpg
# Zero size, and a text file with a .jpg name.
: > empty.jpg
printf 'this is not a JPEG file\n' > notjpeg.jpg
# Pillow/torchvision decodes and resizes the tests compare with (raw RGB
# bytes, row-major), made with Debian's python3-pil and python3-torchvision.
/usr/bin/python3 - <<'PY'
from PIL import Image
import torchvision.transforms as T
def save(im, name):
    open(name, 'wb').write(im.convert('RGB').tobytes())
save(Image.open('rgb.jpg'), 'rgb.pil.rgb')
save(Image.open('gray.jpg'), 'gray.pil.rgb')
save(Image.open('cmyk.jpg'), 'cmyk.pil.rgb')
im = Image.open('rgb.jpg').convert('RGB')
save(im.resize((20, 15), Image.BILINEAR), 'rgb_20x15.pil.rgb')
save(im.crop((5, 3, 35, 27)).resize((16, 16), Image.BILINEAR), 'rgb_crop16.pil.rgb')
save(T.CenterCrop(24)(T.Resize(28)(im)), 'rgb_eval24.pil.rgb')
save(im.resize((9, 7), Image.BILINEAR), 'rgb_9x7.pil.rgb')
PY
