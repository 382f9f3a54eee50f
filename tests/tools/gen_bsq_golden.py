#!/usr/bin/python3
"""Writes tests/data/golden/bsq_bitconv_step.json: one training step of a BSQ
BitConv2d (docs/methods.md §7), computed with PyTorch autograd from the
formulas of the reference (yanghr/BSQ models/cifar/bit.py, bin mode, and the
training loop of cifar_prune_STE.py): the effective weights
bit_STE(sum_b (p_b - n_b) 2^(N-1-b)/(2^N-1)) * s, the conv output, the
gradients of the planes and the scale for loss = sum(y * gy) + decay/TP *
(#w N) sum_b sqrt(sum p_b^2 + n_b^2 + 1e-8), then SGD (momentum 0.9, weight
decay on everything, first step) and the clamp of the planes to [0, 2].
Run by developers (Debian's python3-torch); the JSON is committed and read
by tests/test_bsq.c. torch is never a build or run dependency.

usage: tests/tools/gen_bsq_golden.py OUTDIR
"""
import json
import sys

import torch
import torch.nn.functional as F


class BitSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, v, nbits):
        L = 2 ** nbits - 1
        c = torch.clamp(v, -1, 1)
        return torch.round(c.abs() * L) / L * torch.sign(c)

    @staticmethod
    def backward(ctx, g):
        return g, None


def main(outdir):
    torch.manual_seed(20)
    N, cout, cin, k, stride, pad = 4, 4, 3, 3, 2, 1
    x = torch.randn(2, cin, 7, 7)
    p = torch.rand(cout, cin, k, k, N) * 1.5
    n = torch.rand(cout, cin, k, k, N) * 1.5
    # exact bits in part of the weights, and both planes at zero in some
    p.view(-1)[::7] = torch.round(p.view(-1)[::7].clamp(0, 1))
    n.view(-1)[::5] = 0.0
    p.requires_grad_(True)
    n.requires_grad_(True)
    s = torch.tensor([0.42], requires_grad=True)
    gy = torch.randn(2, cout, 4, 4)
    lr, momentum, wd, decay = 0.1, 0.9, 1e-4, 0.01
    nw = cout * cin * k * k
    tp = float(nw)
    exps = torch.tensor([2 ** (N - 1 - b) / (2 ** N - 1) for b in range(N)], dtype=torch.float32)
    what = torch.sum((p - n) * exps, dim=-1)
    w = BitSTE.apply(what, N) * s
    w.retain_grad()
    y = F.conv2d(x, w, stride=stride, padding=pad)
    dims = (0, 1, 2, 3)
    reg = (nw * N) * torch.sum(torch.sqrt(torch.sum(p ** 2, dim=dims) + torch.sum(n ** 2, dim=dims) + 1e-8))
    loss = torch.sum(y * gy) + decay / tp * reg
    loss.backward()
    p0, n0, s0 = p.detach().clone(), n.detach().clone(), s.detach().clone()
    dp, dn, ds = p.grad.clone(), n.grad.clone(), s.grad.clone()
    opt = torch.optim.SGD([p, n, s], lr=lr, momentum=momentum, weight_decay=wd)
    opt.step()
    with torch.no_grad():
        p.clamp_(0, 2)
        n.clamp_(0, 2)

    def flat(t):
        return [float(v) for v in t.detach().reshape(-1)]

    out = {
        "N": N, "cout": cout, "cin": cin, "k": k, "stride": stride, "pad": pad,
        "batch": 2, "h": 7, "w": 7, "oh": 4, "ow": 4,
        "lr": lr, "momentum": momentum, "wd": wd, "decay": decay, "tp": tp,
        "x": flat(x), "p": flat(p0), "n": flat(n0), "s": flat(s0), "gy": flat(gy),
        "weff": flat(w), "y": flat(y), "dweff": flat(w.grad), "reg": float(reg),
        "dp": flat(dp), "dn": flat(dn), "ds": flat(ds),
        "p1": flat(p), "n1": flat(n), "s1": flat(s),
    }
    with open(f"{outdir}/bsq_bitconv_step.json", "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/data/golden")
