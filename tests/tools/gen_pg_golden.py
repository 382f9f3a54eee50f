#!/usr/bin/python3
"""Writes tests/data/golden/pgconv_*.json: PGConv2d (docs/methods.md §2.3-2.4) forward
output and input / weight / threshold gradients, computed with PyTorch
autograd from the formulas of the reference (dnn-gating utils/pg_utils.py), on
small odd shapes, with and without sparse back-prop. Run by developers
(Debian's python3-torch); the JSON files are committed and read by
tests/test_pgconv.c. torch is never a build or run dependency.

usage: tests/tools/gen_pg_golden.py OUTDIR
"""
import json
import sys

import torch
import torch.nn.functional as F


def ste(value, like):
    """value in the forward pass, identity gradient to `like`."""
    return like + (value - like).detach()


def round_to_bits(x, b, s):
    L = 2 ** b - 1
    sgn = torch.sign(x).detach()
    a = x.abs() / s
    a = ste(torch.clamp(a, 0, 1), a)
    q = a * L
    q = ste(torch.round(q), q)
    return q / L * s * sgn


def truncate(x, b, bh, s):
    L = 2 ** b - 1
    sgn = torch.sign(x).detach()
    a = x.abs() / s
    a = ste(torch.clamp(a, 0, 1), a)
    q = a * L
    q = ste(torch.round(q), q)
    shift = 2 ** (b - bh)
    m = q / shift
    m = ste(torch.floor(m), m)
    return m * shift / L * s * sgn


class GreaterThan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, s, sparse):
        ctx.save_for_backward(s)
        ctx.sparse = sparse
        return (s > 0.5).float()

    @staticmethod
    def backward(ctx, g):
        (s,) = ctx.saved_tensors
        if ctx.sparse:
            g = g * (s >= 0.5).float()
        return g, None


def scale(t):
    # PG-PyTorch: whole-tensor max + 1e-7, detached, in float32.
    return (t.detach().abs().max() + torch.tensor(1e-7, dtype=torch.float32))


def pgconv(x, w, delta, wbits, abits, pb, stride, pad, spbp):
    wq = round_to_bits(w, wbits, scale(w))
    sx = scale(x)
    x_msb = truncate(x, abits, pb, sx)
    x_full = round_to_bits(x, abits, sx)
    o_msb = F.conv2d(x_msb, wq, stride=stride, padding=pad)
    s = torch.sigmoid(5 * (o_msb - delta))
    mask = GreaterThan.apply(s, spbp)
    o_lsb = F.conv2d(x_full - x_msb, wq, stride=stride, padding=pad)
    return o_msb + mask * o_lsb, o_msb


def case(name, seed, N, C, K, H, W, stride, pad, wbits, abits, pb, spbp):
    g = torch.Generator().manual_seed(seed)
    for attempt in range(100):
        # PACT output is non-negative; include exact zeros (STE edge).
        x = torch.rand(N, C, H, W, generator=g) * 2.0
        x[x < 0.3] = 0.0
        w = torch.randn(K, C, 3, 3, generator=g) * 0.3
        x.requires_grad_(True)
        w.requires_grad_(True)
        with torch.no_grad():
            _, o_msb = pgconv(x, w, torch.zeros(1, K, 1, 1), wbits, abits, pb, stride, pad,
                              spbp)
            # Thresholds near the median so about half the outputs gate on.
            delta = o_msb.transpose(0, 1).reshape(K, -1).median(dim=1).values
            delta = (delta + 0.05 * torch.randn(K, generator=g)).reshape(1, K, 1, 1)
            margin = (5 * (o_msb - delta)).abs().min().item()
        if margin > 1e-3:  # no output within float noise of the gate edge
            break
    delta.requires_grad_(True)
    y, _ = pgconv(x, w, delta, wbits, abits, pb, stride, pad, spbp)
    dy = torch.randn(y.shape, generator=g)
    y.backward(dy)
    fl = lambda t: [float(v) for v in t.detach().reshape(-1).tolist()]
    return {
        "name": name, "N": N, "C": C, "K": K, "H": H, "W": W, "R": 3, "stride": stride,
        "pad": pad, "wbits": wbits, "abits": abits, "pred_bits": pb, "spbp": int(spbp),
        "slope": 5.0, "x": fl(x), "w": fl(w), "delta": fl(delta), "dy": fl(dy), "y": fl(y),
        "dx": fl(x.grad), "dw": fl(w.grad), "ddelta": fl(delta.grad),
    }


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "tests/data/golden"
    torch.set_num_threads(1)
    cases = [
        case("pgconv_s1_dense", 1, 3, 5, 4, 7, 5, 1, 1, 8, 3, 2, False),
        case("pgconv_s1_spbp", 2, 3, 5, 4, 7, 5, 1, 1, 8, 3, 2, True),
        case("pgconv_s2_spbp", 3, 2, 3, 6, 7, 7, 2, 1, 4, 4, 2, True),
        case("pgconv_s2_dense", 4, 2, 3, 6, 7, 7, 2, 1, 4, 4, 2, False),
    ]
    for c in cases:
        with open("%s/%s.json" % (out, c["name"]), "w") as f:
            json.dump(c, f)
        print("wrote %s/%s.json" % (out, c["name"]))


if __name__ == "__main__":
    main()
