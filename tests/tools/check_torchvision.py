#!/usr/bin/python3
"""Checks qgate's resnet18 and shufflenet_v2_x0_5 against torchvision's
models of the same name: the checkpoint loads into torchvision's model by
state-dict name with strict=True, and both compute the same logits (eval
mode with the running statistics, train mode with the batch's) and the
same gradients of the mean cross-entropy.

The qgate side is tests/tools/imagenet_logits (built by `make check`):
either a fresh model it trains for three SGD steps on random images (so
weights and BN running statistics are no longer their initial values), or
a checkpoint of yours (a `qgate train --checkpoint` file). qgate does not
store BN's num_batches_tracked (it is unused when the momentum is set), so
this script adds those buffers before the strict load; a checkpoint's
optimizer state ("optimizer." names) is left out.

Tolerances (float32 on both sides, different summation orders):
logits |q - t| <= 1e-4 + 1e-3 max|t| per model and mode. Gradients are
compared with torchvision's in float64 (t64), per tensor: max|q - t64| <=
1e-3 max|t64| + 1e-6, or at most 3x torchvision's own float32 error
max|t32 - t64| (a ReLU or max-pool decision that float32 rounding flips
moves a tensor's gradient by up to ~1%, in torch's float32 as in qgate's);
such tensors are listed as ill-conditioned.

Skips (exit 0 with a message) when python3-torchvision is not installed.
Run by developers; never by `make check` (importing torch takes minutes on
a loaded 2-core machine).

usage: tests/tools/check_torchvision.py [--tool PATH] [--size N] [--classes K]
                                        [--ckpt FILE ...] [ARCH ...]
  ARCH: resnet18, shufflenet_v2_x0_5 (default: both, fresh models)
"""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

try:
    import torch
    import torchvision
except ImportError as e:
    print(f"check_torchvision: skipped, {e.name} is not installed (Debian: python3-torchvision)")
    sys.exit(0)

from check_safetensors_torch import load  # noqa: E402

N = 4


def qgate_side(tool, out, arch=None, size=None, classes=None, ckpt=None):
    cmd = [tool, "--ckpt", ckpt, out] if ckpt else [tool, arch, str(size), str(classes), out]
    subprocess.run(cmd, check=True)


def read(path, dtype, shape=None):
    a = np.fromfile(path, dtype=dtype)
    return a.reshape(shape) if shape is not None else a


def check(tool, label, out, ckpt=None, arch=None, size=None, classes=None):
    qgate_side(tool, out, arch, size, classes, ckpt)
    path = ckpt or os.path.join(out, "model.safetensors")
    tensors, meta = load(path)
    arch = meta["arch"]
    classes = int(meta["classes"])
    size = int(meta["in_height"])
    sd = {k: v for k, v in tensors.items() if not k.startswith("optimizer.")}
    model = getattr(torchvision.models, arch)(num_classes=classes)
    for k, v in model.state_dict().items():
        if k.endswith("num_batches_tracked") and k not in sd:
            sd[k] = torch.zeros_like(v)
    model.load_state_dict(sd, strict=True)  # raises on any missing or extra name
    x = torch.from_numpy(read(os.path.join(out, "input.f32"), np.float32,
                              (N, 3, size, size)).copy())
    labels = torch.from_numpy(read(os.path.join(out, "labels.i32"), np.int32).astype(np.int64))
    ok = True
    with torch.no_grad():
        model.eval()
        ok &= compare(f"{label} eval logits", model(x), read(os.path.join(out, "eval.f32"),
                                                             np.float32, (N, classes)))
    model.train()
    logits = model(x)
    ok &= compare(f"{label} train logits", logits.detach(),
                  read(os.path.join(out, "train.f32"), np.float32, (N, classes)))
    torch.nn.functional.cross_entropy(logits, labels).backward()
    params = dict(model.named_parameters())
    # the same in float64 (from the same state: a copy made before the
    # float32 train-mode forward updated the running statistics is not
    # needed, as train mode uses the batch's): the rounding floor of the
    # float32 gradients, to tell a wrong gradient from an ill-conditioned one
    m64 = getattr(torchvision.models, arch)(num_classes=classes)
    m64.load_state_dict(sd, strict=True)
    m64 = m64.double().train()
    torch.nn.functional.cross_entropy(m64(x.double()), labels).backward()
    p64 = dict(m64.named_parameters())
    flat = read(os.path.join(out, "grads.f32"), np.float32)
    at, worst, worst_name, n = 0, 0.0, "", 0
    with open(os.path.join(out, "grads.txt")) as f:
        for line in f:
            name, count = line.split()
            count = int(count)
            q = flat[at:at + count]
            at += count
            t32 = params[name].grad.detach().numpy().reshape(-1)
            t = p64[name].grad.detach().numpy().reshape(-1)
            err = float(np.abs(q - t).max())
            err32 = float(np.abs(t32 - t).max())
            scale = float(np.abs(t).max())
            rel = err / (scale + 1e-6)
            n += 1
            # (a BN bias whose output only feeds another BN through a conv
            # has a zero gradient: its float rounding says nothing)
            if rel > worst and scale > 1e-5:
                worst, worst_name = rel, name
            if err > 1e-3 * scale + 1e-6 and err > 3 * err32:
                print(f"  MISMATCH {label} grad {name}: max|q-t64| {err:.3g}, max|t64| "
                      f"{scale:.3g}, torch float32's max|t32-t64| {err32:.3g}")
                ok = False
            elif err > 1e-3 * scale + 1e-6:
                print(f"  ill-conditioned {label} grad {name}: max|q-t64| {err:.3g}, torch "
                      f"float32's own max|t32-t64| {err32:.3g} (max|t64| {scale:.3g})")
    if n != len(params):
        print(f"  {label}: {n} gradients from qgate, torchvision has {len(params)} parameters")
        ok = False
    print(f"{label}: {n} parameter gradients, worst max|q-t64|/max|t64| {worst:.2e} "
          f"({worst_name}; tensors with max|t64| > 1e-5)")
    return ok


def compare(label, t, q):
    t = t.numpy()
    err = float(np.abs(q - t).max())
    scale = float(np.abs(t).max())
    agree = float((q.argmax(1) == t.argmax(1)).mean())
    good = err <= 1e-4 + 1e-3 * scale
    print(f"{label}: max|q-t| {err:.3g} (max|t| {scale:.3g}), argmax agree {agree:.0%}"
          f"{'' if good else '  MISMATCH'}")
    return good


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tool", default=os.path.join(os.getcwd(), "tests/tools/imagenet_logits"),
                    help="the imagenet_logits program (default: ./tests/tools/imagenet_logits, "
                         "run from the build folder)")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--ckpt", action="append", default=[])
    ap.add_argument("arch", nargs="*")
    a = ap.parse_args()
    if not os.access(a.tool, os.X_OK):
        sys.exit(f"check_torchvision: {a.tool} is not an executable (make check builds it)")
    torch.manual_seed(0)
    ok = True
    with tempfile.TemporaryDirectory(prefix="qg-torchvision-") as tmp:
        for c in a.ckpt:
            ok &= check(a.tool, os.path.basename(c), tmp, ckpt=c)
        archs = a.arch or ([] if a.ckpt else ["resnet18", "shufflenet_v2_x0_5"])
        for arch in archs:
            ok &= check(a.tool, f"{arch} {a.size}x{a.size}", tmp, arch=arch, size=a.size,
                        classes=a.classes)
    print("check_torchvision: " + ("all agree" if ok else "MISMATCHES"))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
