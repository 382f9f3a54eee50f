#!/usr/bin/python3
"""PyTorch side of the PSGD tests (docs/methods.md §6). Needs Debian's
python3-torch; torch is never a build or run dependency of qgate.

  gen OUTDIR   writes OUTDIR/psgd_step.json: one PSGD training step of a
               ResNet-8 with option-B shortcuts and --first-last-quant on
               a 1x8x8 input (weights, input, the logits' gradient; the
               scaled gradients of every parameter and the weights after
               one SGD step with weight decay), computed with autograd and
               the PSG reference's math: the grid of each weight tensor
               (restricted range, min/max of its first forward), the
               backward multiplying the weight gradient by |w - Q(w)| and
               then lambda_s, the optimizer adding weight decay afterwards.
               tests/test_psgd.c compares qgate with it; the file is
               committed.
  check FILE   loads a qgate checkpoint of a CIFAR-style ResNet (option A
               or B shortcuts) into the PyTorch model with the same names
               with load_state_dict(strict=True) and runs a forward; exits
               non-zero on any name, shape or value problem. Run by
               tests/test_psgd.c when torch is installed.
"""
import json
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check_safetensors_torch import load  # noqa: E402


class Block(nn.Module):
    """BasicBlock; option B: 1x1 conv + BN named shortcut.0 / shortcut.1
    (PSG-pytorch calls them downsample.0/1 and the classifier fc; qgate
    convert maps those names)."""

    def __init__(self, cin, planes, stride, option):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.down = stride != 1 or cin != planes
        self.option = option
        if self.down and option == "B":
            self.shortcut = nn.Sequential(nn.Conv2d(cin, planes, 1, stride, bias=False),
                                          nn.BatchNorm2d(planes))
        self.pad = (planes - cin) // 2

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if not self.down:
            sc = x
        elif self.option == "B":
            sc = self.shortcut(x)
        else:
            sc = F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad))
        return F.relu(out + sc)


class ResNet(nn.Module):
    def __init__(self, depth, in_c, classes, option):
        super().__init__()
        n = (depth - 2) // 6
        self.conv1 = nn.Conv2d(in_c, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        cin = 16
        for s, planes in enumerate([16, 32, 64]):
            blocks = []
            for b in range(n):
                blocks.append(Block(cin, planes, 2 if (s > 0 and b == 0) else 1, option))
                cin = planes
            setattr(self, "layer%d" % (s + 1), nn.Sequential(*blocks))
        self.linear = nn.Linear(64, classes)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.linear(F.adaptive_avg_pool2d(x, 1).flatten(1))


def grid_q(w, bits):
    """Q(w) on the grid of w's own range (the first forward's)."""
    lv = float(2 ** (bits - 1) - 1)
    x_min = min(0.0, float(w.min()))
    x_max = max(0.0, float(w.max()))
    # float32 as qgate keeps the range (the reference: Python floats)
    delta = torch.tensor(max(abs(x_min), x_max), dtype=torch.float32) / lv
    return torch.round(torch.clamp(w / delta, -lv, lv)) * delta


def lcg_values(seed, n, scale, offset):
    """n floats (u*scale + offset, u uniform in [-1, 1) from a 31-bit LCG,
    in double, then rounded to float32): tests/test_psgd.c makes the same
    weights, so the golden need not carry them."""
    state, out = seed, []
    for _ in range(n):
        state = (state * 1103515245 + 12345) % 2147483648
        out.append((state / 2147483648.0 * 2.0 - 1.0) * scale + offset)
    return torch.tensor(out, dtype=torch.float32)


SAMPLES = 48   # gradient / new-weight values kept per tensor


def gen(outdir):
    torch.manual_seed(19)
    bits, lam, lr, wd = 4, 150.0, 0.1, 1e-3
    model = ResNet(8, 1, 5, "B")
    offsets = {}
    with torch.no_grad():
        for i, (name, p) in enumerate(model.named_parameters()):
            bn_weight = p.dim() == 1 and ".bn" in "." + name and name.endswith("weight") \
                or (name.endswith("shortcut.1.weight"))
            offsets[name] = 1.0 if bn_weight else 0.0
            p.copy_(lcg_values(i + 1, p.numel(), 0.3, offsets[name]).reshape(p.shape))
    model.train()
    x = torch.rand(4, 1, 8, 8) * 2 - 1
    dl = (torch.rand(4, 5) * 2 - 1) * 0.2
    logits = model(x)
    (logits * dl).sum().backward()
    state = model.state_dict()
    out = {"bits": bits, "lambda_s": lam, "lr": lr, "wd": wd,
           "x": x.flatten().tolist(), "dlogits": dl.flatten().tolist(),
           "logits": logits.detach().flatten().tolist(), "tensors": []}
    for i, (name, p) in enumerate(model.named_parameters()):
        g = p.grad.detach().clone()
        quantized = p.dim() in (2, 4) or name == "linear.bias"
        if quantized:  # the reference's backward: (g * scale) * beta
            g = (g * (p.detach() - grid_q(p.detach(), bits)).abs()) * lam
        new = p.detach() - lr * (g + wd * p.detach())  # SGD adds the decay after
        step = max(1, p.numel() // SAMPLES)
        idx = list(range(0, p.numel(), step))[:SAMPLES]
        out["tensors"].append({
            "name": name, "seed": i + 1, "numel": p.numel(),
            "offset": offsets[name],
            "index": idx, "quantized": quantized,
            "grad": [float(g.flatten()[j]) for j in idx],
            "new": [float(new.flatten()[j]) for j in idx]})
    out["running_mean_layer1.0.bn1"] = state["layer1.0.bn1.running_mean"].tolist()
    path = os.path.join(outdir, "psgd_step.json")
    with open(path, "w") as f:
        json.dump(out, f)
    print("wrote", path)


def check(path):
    tensors, meta = load(path)
    arch = meta.get("arch", "resnet20")
    depth = int(arch.replace("resnet", ""))
    option = meta.get("shortcut", "A")
    classes = tensors["linear.weight"].shape[0]
    in_c = tensors["conv1.weight"].shape[1]
    model = ResNet(depth, in_c, classes, option)
    state = {k: v for k, v in tensors.items() if not k.startswith("optimizer.")}
    for k in list(model.state_dict()):
        if k.endswith("num_batches_tracked"):
            state[k] = torch.tensor(0)
    model.load_state_dict(state, strict=True)
    model.eval()
    h = int(meta.get("in_height", 32))
    with torch.no_grad():
        y = model(torch.zeros(2, in_c, h, h))
    if not torch.isfinite(y).all():
        sys.exit("%s: non-finite logits" % path)
    print("pytorch: %s option %s, %d tensors loaded strictly" % (arch, option, len(state)))


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("gen", "check"):
        sys.exit("usage: psgd_torch.py gen OUTDIR | check FILE.safetensors")
    if sys.argv[1] == "gen":
        gen(sys.argv[2])
    else:
        check(sys.argv[2])


if __name__ == "__main__":
    main()
