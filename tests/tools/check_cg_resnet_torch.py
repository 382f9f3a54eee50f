#!/usr/bin/python3
"""Checks a qgate channel-gated ResNet-20 against the reference model
rebuilt in PyTorch (docs/methods.md §4: CGConv2d of dnn-gating utils/cg_utils.py, the CIFAR
ResNet-20 with option-A shortcuts, plain or post-activated), on
Fashion-MNIST. The model's shape comes from the checkpoint's metadata; the
state dict loads without renaming (qgate keeps the reference's names).
Run by developers with Debian's python3-torch; never by `make check`.

  eval CKPT
      test loss, accuracy and update-phase sparsity of the checkpoint on the
      first 1000 test images, batch 128 (compare: qgate eval --limit-test
      1000 CKPT).
  step C0 C1 --lr X --wd X --gtar X
      one SGD step (momentum 0.9, the CG recipe's weight decay and gating
      loss) from C0 on the first 128 training images; prints how far each
      tensor of the update differs from qgate's C1, made by
        cp C0 C1; qgate train <the run's method flags> --lr X --wd X
          --gtar X --schedule const --epochs <C0's epoch + 1>
          --limit-train 128 --batch 128 --crop-pad 0 --no-flip
          --resume C1 --checkpoint C1

usage: tests/tools/check_cg_resnet_torch.py eval CKPT
       tests/tools/check_cg_resnet_torch.py step C0 C1 --lr X --wd X --gtar X
"""
import argparse
import gzip
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check_safetensors_torch import load  # noqa: E402
from gen_cg_golden import Gate, make_mask, shuffle  # noqa: E402

DATA = "/usr/share/datasets/fashion-mnist"
COUNTS = {"full": 0, "out": 0}


class CGConv(nn.Conv2d):
    def __init__(self, cin, cout, stride, cfg):
        super().__init__(cin, cout, 3, stride, 1, bias=False)
        self.cfg = cfg
        self.register_buffer("mask", make_mask(cout, cin, 3, cfg["p"], cfg["group"]))
        self.threshold = nn.Parameter(torch.zeros(1, cout, 1, 1))
        self.bn = nn.BatchNorm2d(cout, affine=False)

    def forward(self, x):
        if self.cfg["shuffle"]:
            x = shuffle(x, self.cfg["p"])
        yp = F.conv2d(x, self.weight * self.mask, None, self.stride, 1)
        d = Gate.apply(torch.sigmoid(self.cfg["alpha"] * (self.bn(yp) - self.threshold)) - 0.5,
                       self.cfg["spbp"])
        COUNTS["full"] += int(d.sum().item())
        COUNTS["out"] += d.numel()
        return F.conv2d(x, self.weight, None, self.stride, 1) * d + yp * (1 - d)


class Block(nn.Module):
    def __init__(self, cin, planes, stride, cfg):
        super().__init__()
        self.postact = cfg["postact"]
        self.conv1 = CGConv(cin, planes, stride, cfg)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = (CGConv(planes, planes, 1, cfg) if self.postact
                      else nn.Conv2d(planes, planes, 3, 1, 1, bias=False))
        self.bn2 = nn.BatchNorm2d(planes)
        self.pad = (planes - cin) // 2 if (stride != 1 or cin != planes) else None

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        sc = x if self.pad is None else F.pad(x[:, :, ::2, ::2],
                                              (0, 0, 0, 0, self.pad, self.pad))
        return F.relu(out) + sc if self.postact else F.relu(out + sc)


class ResNet20(nn.Module):
    def __init__(self, cfg, in_c=1, classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(in_c, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        cin = 16
        for s, planes in enumerate([16, 32, 64]):
            blocks = []
            for b in range(3):
                blocks.append(Block(cin, planes, 2 if s > 0 and b == 0 else 1, cfg))
                cin = planes
            setattr(self, "layer%d" % (s + 1), nn.Sequential(*blocks))
        self.linear = nn.Linear(64, classes)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.linear(F.adaptive_avg_pool2d(x, 1).flatten(1))


def fashion(split, n):
    pre = "train" if split == "train" else "t10k"
    img = gzip.open("%s/%s-images-idx3-ubyte.gz" % (DATA, pre)).read()
    lab = gzip.open("%s/%s-labels-idx1-ubyte.gz" % (DATA, pre)).read()
    x = np.frombuffer(img, np.uint8, offset=16).reshape(-1, 1, 28, 28)[:n]
    y = np.frombuffer(lab, np.uint8, offset=8)[:n]
    x = (torch.tensor(x, dtype=torch.float32) / 255 - 0.2860) / 0.3530
    return x, torch.tensor(y, dtype=torch.long)


def model_of(path):
    sd, meta = load(path)
    if meta.get("cg") != "1" or meta.get("arch") != "resnet20":
        sys.exit("%s: not a qgate CG ResNet-20 checkpoint" % path)
    cfg = {"p": int(meta["partitions"]), "group": meta["cg_group"] == "1",
           "shuffle": meta["cg_shuffle"] == "1", "spbp": meta["spbp"] == "1",
           "alpha": float(meta["alpha"]), "postact": meta["postact"] == "1"}
    net = ResNet20(cfg)
    weights = {k: v for k, v in sd.items() if not k.startswith("optimizer.")}
    missing, unexpected = net.load_state_dict(weights, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        sys.exit("%s: missing %s, unexpected %s" % (path, missing, unexpected))
    return net, sd


def cmd_eval(a):
    net, _ = model_of(a.ckpt)
    x, y = fashion("test", 1000)
    net.eval()
    loss = correct = 0
    with torch.no_grad():
        for i in range(0, len(y), 128):
            out = net(x[i:i + 128])
            loss += F.cross_entropy(out, y[i:i + 128], reduction="sum").item()
            correct += (out.argmax(1) == y[i:i + 128]).sum().item()
    print("torch: test loss %.4f, accuracy %.2f%%, update-phase sparsity %.1f%%"
          % (loss / len(y), 100.0 * correct / len(y),
             100.0 - 100.0 * COUNTS["full"] / COUNTS["out"]))


def cmd_step(a):
    net, s0 = model_of(a.c0)
    s1, _ = load(a.c1)
    params = dict(net.named_parameters())
    decay = [q for n, q in params.items() if q.dim() > 1 and "threshold" not in n]
    rest = [q for n, q in params.items() if not (q.dim() > 1 and "threshold" not in n)]
    opt = torch.optim.SGD([{"params": rest, "weight_decay": 0.0},
                           {"params": decay, "weight_decay": a.wd}], lr=a.lr, momentum=0.9)
    for n, q in params.items():
        opt.state[q]["momentum_buffer"] = s0["optimizer.%s.state0" % n].clone()
    x, y = fashion("train", 128)
    net.train()
    ce = F.cross_entropy(net(x), y)
    loss = ce + sum(1e-4 * ((q - a.gtar) ** 2).sum() for n, q in params.items()
                    if "threshold" in n)
    opt.zero_grad()
    loss.backward()
    opt.step()
    print("torch: cross-entropy %.4f" % ce.item())
    rows, now = [], net.state_dict()
    for n, after in now.items():
        if n not in s1:
            continue
        upd_t = after.float() - s0[n].float()
        upd_q = s1[n].float() - s0[n].float()
        top = upd_t.abs().max().item()
        err = (upd_t - upd_q).abs().max().item()
        rows.append((err / top if top > 0 else err, n, err, top))
    rows.sort(reverse=True)
    for r in rows[:10]:
        print("  %-36s max |update difference| %.3g of %.3g (%.2g relative)"
              % (r[1], r[2], r[3], r[0]))
    print("%d tensors; median relative difference %.2g"
          % (len(rows), sorted(r[0] for r in rows)[len(rows) // 2]))


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("eval")
    e.add_argument("ckpt")
    s = sub.add_parser("step")
    s.add_argument("c0")
    s.add_argument("c1")
    s.add_argument("--lr", type=float, required=True)
    s.add_argument("--wd", type=float, required=True)
    s.add_argument("--gtar", type=float, required=True)
    a = ap.parse_args()
    torch.set_num_threads(1)
    cmd_eval(a) if a.cmd == "eval" else cmd_step(a)


if __name__ == "__main__":
    main()
