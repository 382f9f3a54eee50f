#!/usr/bin/python3
"""PyTorch side of the VGG16-bn tests (src/model/vgg.h, tests/test_vgg.c).
Needs Debian's python3-torch; torch is never a build or run dependency of
qgate.

The model is PSG-pytorch's Vgg16_bn as our_network.py lays it out (one
ReLU module shared by every conv block, Sequential indices for the names:
features.0/1 conv/bn ... features.41, classifier.0/3/6 linears with ReLU and
Dropout(0.5) between), with plain nn.Conv2d / nn.Linear (the reference's
quantized modules add only the |w - Q(w)| buffers, which qgate does not
save), the last linear of any class count, every width divided by `div`,
and square inputs below 32 pixels zero-padded to 32x32 as qgate's first
conv does.

  gen OUTDIR   writes OUTDIR/vgg_step.json: one training forward/backward
               of vgg16_bn_div64 on two 1x28x28 images, 10 classes, with
               LCG weights (as tests/test_vgg.c makes them), the dropout
               masks of two given keys (the hash of cl/eltwise.cl replayed
               here), the logits, the sampled gradients of every parameter
               and the evaluation logits after that step (the running
               statistics it updated). The file is committed.
  check FILE   loads a qgate checkpoint of a vgg16_bn[_divN] into this model
               with load_state_dict(strict=True) and runs a forward; exits
               non-zero on any name, shape or value problem.
"""
import json
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check_safetensors_torch import load  # noqa: E402
from psgd_torch import lcg_values  # noqa: E402

CFG_D = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
         512, 512, 512, "M"]
M32 = 0xFFFFFFFF


def mix(x):
    x ^= x >> 16
    x = (x * 0x7FEB352D) & M32
    x ^= x >> 15
    x = (x * 0x846CA68B) & M32
    x ^= x >> 16
    return x


def keep_mask(n, key, p):
    """qgate's dropout mask (cl/eltwise.cl qg_eltwise_dropout_fwd)."""
    lo, hi = key & M32, key >> 32
    thresh = min(int(p * 4294967296.0), M32)
    return torch.tensor([1.0 if mix(mix(i ^ lo) ^ hi) >= thresh else 0.0 for i in range(n)])


class Drop(nn.Module):
    """Dropout(p): with a key, qgate's mask of that key; else torch's."""

    def __init__(self, p=0.5):
        super().__init__()
        self.p, self.key = p, None

    def forward(self, x):
        if not self.training:
            return x
        if self.key is None:
            return F.dropout(x, self.p, True)
        mask = keep_mask(x.numel(), self.key, self.p).reshape(x.shape)
        return x * mask * torch.tensor(1.0 / (1.0 - self.p), dtype=torch.float32)


class VGG(nn.Module):
    def __init__(self, in_c, classes, div=1, side=32):
        super().__init__()
        layers, c = [], in_c
        act = nn.ReLU()  # one instance, as the reference's make_layers
        for v in CFG_D:
            if v == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers += [nn.Conv2d(c, v // div, 3, padding=1, bias=False),
                           nn.BatchNorm2d(v // div), act]
                c = v // div
        self.features = nn.Sequential(*layers)
        self.pad = (32 - side) // 2 if side < 32 else 0
        h = 4096 // div
        act2 = nn.ReLU()
        self.classifier = nn.Sequential(nn.Linear(512 // div, h), act2, Drop(),
                                        nn.Linear(h, h), act2, Drop(), nn.Linear(h, classes))

    def forward(self, x):
        if self.pad:
            x = F.pad(x, (self.pad,) * 4)
        x = self.features(x)
        return self.classifier(x.flatten(1))


SAMPLES = 48


def gen(outdir):
    torch.manual_seed(7)
    div, side, in_c, classes, batch = 64, 28, 1, 10, 2
    keys = [0x0123456789ABCDEF, 0xFEDCBA9876543210]
    model = VGG(in_c, classes, div, side)
    offsets = {}
    with torch.no_grad():
        for i, (name, p) in enumerate(model.named_parameters()):
            # batch-norm weights around 1, everything else around 0
            bn = p.dim() == 1 and int(name.split(".")[1]) % 3 == 1 and \
                name.startswith("features.") and name.endswith("weight")
            offsets[name] = 1.0 if bn else 0.0
            p.copy_(lcg_values(i + 1, p.numel(), 0.3, offsets[name]).reshape(p.shape))
    model.classifier[2].key, model.classifier[5].key = keys
    model.train()
    x = torch.rand(batch, in_c, side, side) * 2 - 1
    dl = (torch.rand(batch, classes) * 2 - 1) * 0.2
    logits = model(x)
    (logits * dl).sum().backward()
    model.eval()
    with torch.no_grad():
        logits_eval = model(x)
    out = {"div": div, "side": side, "in_c": in_c, "classes": classes, "batch": batch,
           "keys": [[k & M32, k >> 32] for k in keys],
           "x": x.flatten().tolist(), "dlogits": dl.flatten().tolist(),
           "logits": logits.detach().flatten().tolist(),
           "logits_eval": logits_eval.flatten().tolist(), "tensors": []}
    for i, (name, p) in enumerate(model.named_parameters()):
        g = p.grad.detach().flatten()
        step = max(1, p.numel() // SAMPLES)
        idx = list(range(0, p.numel(), step))[:SAMPLES]
        out["tensors"].append({"name": name, "seed": i + 1, "numel": p.numel(),
                               "offset": offsets[name], "index": idx,
                               "grad": [float(g[j]) for j in idx]})
    path = os.path.join(outdir, "vgg_step.json")
    with open(path, "w") as f:
        json.dump(out, f)
    print("wrote", path)


def check(path):
    tensors, meta = load(path)
    arch = meta.get("arch", "vgg16_bn")
    div = int(arch[len("vgg16_bn_div"):]) if arch.startswith("vgg16_bn_div") else 1
    in_c = tensors["features.0.weight"].shape[1]
    classes = tensors["classifier.6.weight"].shape[0]
    side = int(meta.get("in_height", 32))
    model = VGG(in_c, classes, div, side)
    state = {k: v for k, v in tensors.items() if not k.startswith("optimizer.")}
    for k in list(model.state_dict()):
        if k.endswith("num_batches_tracked") and k not in state:
            state[k] = torch.tensor(0)
    model.load_state_dict(state, strict=True)
    model.eval()
    with torch.no_grad():
        y = model(torch.zeros(2, in_c, side, side))
    if not torch.isfinite(y).all():
        sys.exit("%s: non-finite logits" % path)
    print("pytorch: %s, %d tensors loaded strictly" % (arch, len(state)))


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("gen", "check"):
        sys.exit("usage: vgg_torch.py gen OUTDIR | check FILE.safetensors")
    if sys.argv[1] == "gen":
        gen(sys.argv[2])
    else:
        check(sys.argv[2])


if __name__ == "__main__":
    main()
