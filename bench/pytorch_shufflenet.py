#!/usr/bin/python3
"""Times PyTorch CPU training (or inference) steps of torchvision's
shufflenet_v2_x0_5 (or resnet18) on synthetic data and prints
'img/s: X' like `qgate bench train`: SGD (momentum 0.9, weight decay
4e-5), softmax cross-entropy, the model in train mode (eval mode and
torch.no_grad() with --eval). Needs Debian's python3-torchvision; used only
for reference numbers (bench/compare_shufflenet.sh), never by qgate.

usage: bench/pytorch_shufflenet.py [--model shufflenet_v2_x0_5] [--size 224]
                                   [--classes 1000] [--batch 64] [--steps 10]
                                   [--warmup 3] [--threads 2] [--eval]
"""
import argparse
import time

import torch
import torchvision


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="shufflenet_v2_x0_5")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--classes", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--eval", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = getattr(torchvision.models, a.model)(num_classes=a.classes)
    x = torch.randn(a.batch, 3, a.size, a.size)
    y = torch.randint(0, a.classes, (a.batch,))
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=4e-5)
    loss_fn = torch.nn.CrossEntropyLoss()

    def step():
        if a.eval:
            with torch.no_grad():
                loss_fn(model(x), y)
        else:
            opt.zero_grad(set_to_none=True)
            loss_fn(model(x), y).backward()
            opt.step()

    model.eval() if a.eval else model.train()
    for _ in range(a.warmup):
        step()
    times = []
    for _ in range(a.steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    times.sort()
    med = times[len(times) // 2]
    print(f"pytorch {a.model} {'eval' if a.eval else 'train'} {a.size}x{a.size} batch "
          f"{a.batch}, {a.threads} threads: min {times[0] * 1e3:.1f} ms, median "
          f"{med * 1e3:.1f} ms per step")
    print(f"img/s: {a.batch / med:.1f}")


if __name__ == "__main__":
    main()
