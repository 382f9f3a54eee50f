#!/usr/bin/python3
"""Writes tests/data/golden/pgtf_*.json: the predictive convolution of the
original TensorFlow Precision Gating code (docs/methods.md §3.4) -- forward
output and input / weight / threshold gradients -- computed with PyTorch
autograd from that code's graph: per-sample activation scale without
epsilon (detached, as the sign), identity gradients for round, floor and
the clip, the truncated input as a second quantizer applied to the
quantized input, float weights, the forward mask h_hb > delta with the
sigmoid-5 surrogate as its gradient, out = h_hb + mask*(h_full - h_hb).
Small odd shapes, 3x3 stride 1 and 2 and 1x1. Run by developers (Debian's
python3-torch); the JSON files are committed and read by
tests/test_pgtf.c. torch is never a build or run dependency.

usage: tests/tools/gen_pgtf_golden.py OUTDIR
"""
import json
import sys

import torch
import torch.nn.functional as F


def ste(value, like):
    """value in the forward pass, identity gradient to `like`."""
    return like + (value - like).detach()


def quantize_a(x, b, trunc=0):
    L = 2 ** b - 1
    sgn = torch.sign(x).detach()
    dims = tuple(range(1, x.dim()))
    s = x.detach().abs().amax(dim=dims, keepdim=True)
    a = x.abs() / s
    a = ste(torch.clamp(a, 0, 1), a)
    q = a * L
    q = ste(torch.round(q), q)
    if trunc:
        shift = 2 ** (b - trunc)
        m = q / shift
        m = ste(torch.floor(m), m)
        q = m * shift
    return q / L * s * sgn


def predictive_conv(x, w, delta, abits, tbits, stride, pad):
    X = quantize_a(x, abits)
    xm = quantize_a(X, abits, tbits)
    h_hb = F.conv2d(xm, w, stride=stride, padding=pad)
    h_full = F.conv2d(X, w, stride=stride, padding=pad)
    fwd = (h_hb > delta).float()
    bwd = torch.sigmoid(5 * (h_hb - delta))
    mask = bwd + (fwd - bwd).detach()
    return h_hb + mask * (h_full - h_hb), h_hb


def case(name, seed, N, C, K, H, W, R, stride, pad, abits, tbits, signed):
    g = torch.Generator().manual_seed(seed)
    for attempt in range(200):
        x = torch.rand(N, C, H, W, generator=g) * 2.0
        if signed:
            x = x - 1.0
        x[x.abs() < 0.3] = 0.0
        # values that round to code 0 (below 1/(2L) of the sample's max)
        tiny = torch.rand(N, C, H, W, generator=g) < 0.1
        x[tiny] = 1e-3
        w = torch.randn(K, C, R, R, generator=g) * 0.3
        with torch.no_grad():
            _, h_hb = predictive_conv(x, w, torch.zeros(1, K, 1, 1), abits, tbits, stride, pad)
            delta = h_hb.transpose(0, 1).reshape(K, -1).median(dim=1).values
            delta = (delta + 0.05 * torch.randn(K, generator=g)).reshape(1, K, 1, 1)
            margin = (h_hb - delta).abs().min().item()
        if margin > 1e-3:  # no output within float noise of the gate edge
            break
    else:
        raise SystemExit("%s: no margin found" % name)
    x.requires_grad_(True)
    w.requires_grad_(True)
    delta.requires_grad_(True)
    y, _ = predictive_conv(x, w, delta, abits, tbits, stride, pad)
    dy = torch.randn(y.shape, generator=g)
    y.backward(dy)
    fl = lambda t: [float(v) for v in t.detach().reshape(-1).tolist()]
    return {
        "name": name, "N": N, "C": C, "K": K, "H": H, "W": W, "R": R, "stride": stride,
        "pad": pad, "abits": abits, "pred_bits": tbits, "slope": 5.0, "x": fl(x), "w": fl(w),
        "delta": fl(delta), "dy": fl(dy), "y": fl(y), "dx": fl(x.grad), "dw": fl(w.grad),
        "ddelta": fl(delta.grad),
    }


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "tests/data/golden"
    torch.set_num_threads(1)
    cases = [
        case("pgtf_s1", 1, 3, 5, 4, 7, 5, 3, 1, 1, 6, 4, False),
        case("pgtf_s2_signed", 2, 2, 3, 6, 7, 7, 3, 2, 1, 6, 4, True),
        case("pgtf_1x1", 3, 3, 8, 6, 5, 5, 1, 1, 0, 4, 2, False),
    ]
    for c in cases:
        with open("%s/%s.json" % (out, c["name"]), "w") as f:
            json.dump(c, f)
        print("wrote %s/%s.json" % (out, c["name"]))


if __name__ == "__main__":
    main()
