#!/usr/bin/python3
"""Times the reference PyTorch implementation of Channel-Gated ResNet-20
training and inference on the CPU, for comparison with `qgate bench train`
given the same --cg flags (bench/compare_pytorch.sh picks this script when
the flags hold --cg). The model is the port of dnn-gating's CGConv2d and CG
ResNet-20 that tests/tools/check_cg_resnet_torch.py checks against qgate's
checkpoints (docs/methods.md §4): like the reference, each CGConv2d runs two
dense convolutions, the base path on masked weights and the full conv, and
mixes them with the gate, so its time does not depend on the gates' density.

Same timing loop as bench/pytorch_resnet.py (SGD momentum 0.9, wd 1e-4,
synthetic data of --input's shape (3x32x32), warm-up, then 'img/s: X');
the loss adds the CG gating loss sigma * sum (delta - gtar)^2. Needs
Debian's python3-torch; never used by qgate itself.

usage: bench/pytorch_cg_resnet.py --cg [--pt 4] [--group] [--shuffle]
       [--postact] [--spbp] [--gi 0] [--alpha 2] [--gtar 0] [--sg 1e-4]
       [--batch 128] [--steps 10] [--eval]
"""
import argparse
import os
import sys

import torch

from pytorch_resnet import add_bench_args, bench, input_shape

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "tools"))
from check_cg_resnet_torch import ResNet20  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_bench_args(ap)
    ap.add_argument("--cg", action="store_true", required=True)
    ap.add_argument("--pt", "--partitions", dest="pt", type=int, default=4)
    ap.add_argument("--group", "--cg-group", dest="group", action="store_true")
    ap.add_argument("--shuffle", "--cg-shuffle", dest="shuffle", action="store_true")
    ap.add_argument("--postact", action="store_true")
    ap.add_argument("--spbp", action="store_true")
    ap.add_argument("--gi", "--ginit", dest="gi", type=float, default=0.0)
    ap.add_argument("--alpha", type=float, default=2.0)
    ap.add_argument("--gtar", type=float, default=0.0)
    ap.add_argument("--sg", "--sigma", dest="sg", type=float, default=1e-4)
    o = ap.parse_args()
    if o.depth != 20:
        sys.exit("pytorch_cg_resnet.py: the CG port is ResNet-20 only")
    torch.set_num_threads(o.threads)
    torch.manual_seed(0)
    cfg = {"p": o.pt, "group": o.group, "shuffle": o.shuffle, "spbp": o.spbp,
           "alpha": o.alpha, "postact": o.postact}
    net = ResNet20(cfg, in_c=input_shape(o)[0])
    with torch.no_grad():
        for name, p in net.named_parameters():
            if "threshold" in name:
                p.fill_(o.gi)

    def gating_loss(m):
        return sum(o.sg * ((p - o.gtar) ** 2).sum() for n, p in m.named_parameters()
                   if "threshold" in n)

    what = "CG resnet20 pt%d%s%s%s%s" % (o.pt, " group" if o.group else "",
                                        " shuffle" if o.shuffle else "",
                                        " postact" if o.postact else "",
                                        " spbp" if o.spbp else "")
    bench(net, o, what, gating_loss)


if __name__ == "__main__":
    main()
