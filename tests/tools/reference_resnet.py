#!/usr/bin/python3
"""The CIFAR ResNet of the reference code (dnn-gating, model/cifar10_resnet.py
and model/pg_cifar10_resnet.py), rebuilt in PyTorch with the reference's
module names, parameters and buffers: conv1, bn1, relu (PactReLU with
`upper_bound` when PACT is on), layer1..layer3 of BasicBlocks (conv1 a
PGConv2d with `threshold` [1, C, 1, 1] under PG, a QuantizedConv2d when only
quantized; bn1, conv2, bn2, relu; option-A shortcuts are parameter-free
lambdas), linear. Its state_dict() has exactly the keys the reference's
has, batch norms' num_batches_tracked included, so a qgate checkpoint that
loads here with load_state_dict(strict=True) loads into the reference's
model the same way. The forward follows the reference's quantizers
(tests/tools/gen_pg_golden.py). Needs python3-torch; tools, never built.
"""
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_pg_golden import pgconv, round_to_bits, scale  # noqa: E402


class PactReLU(nn.Module):
    """dnn-gating's PACT: y = 0.5 (|x| - |x - a| + a), a learned."""

    def __init__(self, upper_bound=6.0):
        super().__init__()
        self.upper_bound = nn.Parameter(torch.tensor(upper_bound))

    def forward(self, x):
        return 0.5 * (x.abs() - (x - self.upper_bound).abs() + self.upper_bound)


class QuantizedConv2d(nn.Conv2d):
    def __init__(self, cin, cout, k, stride, pad, wbits, abits):
        super().__init__(cin, cout, k, stride, pad, bias=False)
        self.wbits, self.abits = wbits, abits

    def forward(self, x):
        wq = round_to_bits(self.weight, self.wbits, scale(self.weight))
        xq = round_to_bits(x, self.abits, scale(x))
        return F.conv2d(xq, wq, stride=self.stride, padding=self.padding)


class PGConv2d(nn.Conv2d):
    def __init__(self, cin, cout, k, stride, pad, wbits, abits, pgabits, sparse_bp, th):
        super().__init__(cin, cout, k, stride, pad, bias=False)
        self.wbits, self.abits, self.pgabits, self.sparse_bp = wbits, abits, pgabits, sparse_bp
        self.threshold = nn.Parameter(torch.full((1, cout, 1, 1), float(th)))

    def forward(self, x):
        y, _ = pgconv(x, self.weight, self.threshold, self.wbits, self.abits, self.pgabits,
                      self.stride[0], self.padding[0], self.sparse_bp)
        return y


class LambdaLayer(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


class BasicBlock(nn.Module):
    def __init__(self, cin, planes, stride, cfg):
        super().__init__()
        if cfg.get("pg"):
            self.conv1 = PGConv2d(cin, planes, 3, stride, 1, cfg["wbits"], cfg["abits"],
                                  cfg["pred_bits"], cfg.get("spbp", 0), cfg.get("gtar", 0.0))
        elif cfg.get("quant"):
            self.conv1 = QuantizedConv2d(cin, planes, 3, stride, 1, cfg["wbits"], cfg["abits"])
        else:
            self.conv1 = nn.Conv2d(cin, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        if cfg.get("quant"):
            self.conv2 = QuantizedConv2d(planes, planes, 3, 1, 1, cfg["wbits"], cfg["abits"])
        else:
            self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = PactReLU() if cfg.get("pact") else nn.ReLU()
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != planes:
            p = planes // 4
            self.shortcut = LambdaLayer(
                lambda x: F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, p, p), "constant", 0))

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    def __init__(self, depth, cfg, in_c=3, classes=10):
        super().__init__()
        n = (depth - 2) // 6
        self.conv1 = nn.Conv2d(in_c, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = PactReLU() if cfg.get("pact") else nn.ReLU()
        cin = 16
        for s, planes in enumerate([16, 32, 64]):
            blocks = []
            for b in range(n):
                blocks.append(BasicBlock(cin, planes, 2 if (s > 0 and b == 0) else 1, cfg))
                cin = planes
            setattr(self, "layer%d" % (s + 1), nn.Sequential(*blocks))
        self.linear = nn.Linear(64, classes)

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.linear(out)


def from_metadata(meta):
    """The model a qgate checkpoint's metadata describes (option A only)."""
    arch = meta["arch"]
    if not arch.startswith("resnet") or meta.get("shortcut", "A") != "A":
        raise ValueError(f"not a CIFAR ResNet with option-A shortcuts: {arch}")
    on = lambda k: meta.get(k, "0") == "1"  # noqa: E731
    cfg = {"quant": on("quant") or on("pg"), "pact": on("pact"), "pg": on("pg"),
           "wbits": int(meta.get("wbits", "8")), "abits": int(meta.get("abits", "8")),
           "pred_bits": int(meta.get("pred_bits", "0") or 0), "spbp": on("spbp"),
           "gtar": float(meta.get("gtar", "0"))}
    if on("cg"):
        raise ValueError("channel gating: see tests/tools/check_cg_resnet_torch.py")
    return ResNet(int(arch[6:]), cfg, int(meta["in_channels"]), int(meta["classes"]))
