#!/usr/bin/python3
"""Times PyTorch CPU training (or inference) steps of the CIFAR ResNet that
qgate builds (same layers, option-A shortcuts), on synthetic data, and
prints 'img/s: X' like `qgate bench train`. Needs Debian's python3-torch;
used only to produce reference numbers, never by qgate itself.

usage: bench/pytorch_resnet.py [--depth 20] [--batch 128] [--steps 10]
                               [--warmup 3] [--threads 2] [--eval]
"""
import argparse
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def plain_conv(cin, cout, stride):
    return nn.Conv2d(cin, cout, 3, stride, 1, bias=False)


class Block(nn.Module):
    """BasicBlock; conv1/conv2 make the 3x3 convolutions (cin, cout, stride)
    and relu makes the one activation module used after bn1 and after the
    residual add (the PG reference shares its PACT alpha that way)."""

    def __init__(self, cin, planes, stride, conv1, conv2, relu):
        super().__init__()
        self.conv1 = conv1(cin, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv2(planes, planes, 1)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = relu()
        self.pad = (planes - cin) // 2 if (stride != 1 or cin != planes) else None

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        sc = x if self.pad is None else F.pad(x[:, :, ::2, ::2],
                                              (0, 0, 0, 0, self.pad, self.pad))
        return self.relu(out + sc)


class ResNet(nn.Module):
    """CIFAR ResNet (depth 6n+2, option A); the stem conv and the linear
    layer stay plain, the blocks' convolutions and activations come from
    the factories; kaiming: Kaiming-normal init of convs and linear."""

    def __init__(self, depth, in_c=3, classes=10, conv1=plain_conv, conv2=plain_conv,
                 relu=nn.ReLU, kaiming=False):
        super().__init__()
        n = (depth - 2) // 6
        self.conv1 = nn.Conv2d(in_c, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        layers, cin = [], 16
        for s, planes in enumerate([16, 32, 64]):
            for b in range(n):
                layers.append(Block(cin, planes, 2 if (s > 0 and b == 0) else 1, conv1, conv2,
                                    relu))
                cin = planes
        self.layers = nn.Sequential(*layers)
        self.linear = nn.Linear(64, classes)
        self.relu = relu()
        if kaiming:
            for m in self.modules():
                if isinstance(m, (nn.Conv2d, nn.Linear)):
                    nn.init.kaiming_normal_(m.weight)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layers(x)
        x = F.avg_pool2d(x, x.size()[3])
        return self.linear(x.flatten(1))


def add_bench_args(ap):
    """The timing options shared with pytorch_pg_resnet.py."""
    ap.add_argument("--depth", type=int, default=20)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--eval", action="store_true")
    ap.add_argument("--input", default="3x32x32", help="CxHxW, as qgate bench train --input")


def input_shape(a):
    """(C, H, W) of --input."""
    try:
        c, h, w = (int(v) for v in a.input.split("x"))
    except ValueError:
        raise SystemExit("--input: expected CxHxW, got '%s'" % a.input)
    return c, h, w


def bench(m, a, what, aux_loss=None):
    """Times a.steps training steps (SGD momentum 0.9, wd 1e-4, as qgate
    bench train) or inference passes of m on synthetic data of --input's shape
    after a.warmup untimed ones; aux_loss(m) is added to the loss (gating
    losses). Prints min/median ms per step and 'img/s: X'."""
    x = torch.randn(a.batch, *input_shape(a))
    y = torch.randint(0, 10, (a.batch,))
    opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    if a.eval:
        m.eval()
    times = []
    for s in range(a.warmup + a.steps):
        t0 = time.perf_counter()
        if a.eval:
            with torch.no_grad():
                F.cross_entropy(m(x), y)
        else:
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(m(x), y)
            if aux_loss is not None:
                loss = loss + aux_loss(m)
            loss.backward()
            opt.step()
        if s >= a.warmup:
            times.append(time.perf_counter() - t0)
    times.sort()
    print("pytorch %s %s batch %d threads %d: ms/step min %.2f median %.2f"
          % ("inference" if a.eval else "training", what, a.batch, a.threads,
             times[0] * 1e3, times[len(times) // 2] * 1e3))
    print("img/s: %.1f" % (a.steps * a.batch / sum(times)))


def main():
    ap = argparse.ArgumentParser()
    add_bench_args(ap)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    bench(ResNet(a.depth, in_c=input_shape(a)[0]), a, "resnet%d" % a.depth)


if __name__ == "__main__":
    main()
