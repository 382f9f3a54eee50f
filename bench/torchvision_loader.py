#!/usr/bin/python3
"""bench/torchvision_loader.py: the torchvision baseline for
bench/bench_jpeg.c. ImageFolder + RandomResizedCrop(224) +
RandomHorizontalFlip + ToTensor + Normalize (or Resize + CenterCrop with
--eval) through a DataLoader with the same worker count and batch size;
one warm-up epoch, then images per second over --epochs epochs.

usage: /usr/bin/python3 bench/torchvision_loader.py DIR [--workers N]
       [--batch N] [--epochs N] [--input-size N] [--eval]
(Debian's python3-torchvision; the pyenv python has no torchvision.)"""
import argparse
import os
import time

import torch
from torchvision import datasets, transforms

ap = argparse.ArgumentParser()
ap.add_argument("dir")
ap.add_argument("--workers", type=int, default=2)
ap.add_argument("--batch", type=int, default=32)
ap.add_argument("--epochs", type=int, default=3)
ap.add_argument("--input-size", type=int, default=224)
ap.add_argument("--eval", action="store_true")
a = ap.parse_args()
torch.set_num_threads(1)
norm = transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
if a.eval:
    tf = transforms.Compose([transforms.Resize(round(a.input_size * 256 / 224)),
                             transforms.CenterCrop(a.input_size), transforms.ToTensor(), norm])
else:
    tf = transforms.Compose([transforms.RandomResizedCrop(a.input_size),
                             transforms.RandomHorizontalFlip(), transforms.ToTensor(), norm])
ds = datasets.ImageFolder(os.path.join(a.dir, "val" if a.eval else "train"), transform=tf)
dl = torch.utils.data.DataLoader(ds, batch_size=a.batch, shuffle=not a.eval,
                                 num_workers=a.workers, persistent_workers=a.workers > 0)
n = 0
t0 = 0.0
for e in range(a.epochs + 1):
    if e == 1:
        t0 = time.perf_counter()
    for x, y in dl:
        if e > 0:
            n += x.shape[0]
dt = time.perf_counter() - t0
print("torchvision %s: %d images of %dx%d in %.2f s = %.1f img/s (%d workers, batch %d)" %
      ("eval" if a.eval else "train", n, a.input_size, a.input_size, dt, n / dt, a.workers,
       a.batch))
