#!/usr/bin/python3
"""Writes tests/data/golden/cgconv_*.json: CGConv2d (docs/methods.md §4.2-4.3) forward
output, gate count, batch-norm running statistics, input / weight /
threshold gradients, and an eval-mode forward, computed with PyTorch
autograd from the formulas of the reference (dnn-gating utils/cg_utils.py) on
small odd shapes: block-diagonal ("group") and first-channels masks, with
and without sparse back-prop, and a channel-shuffle case. Run by
developers with Debian's python3-torch (/usr/bin/python3); the JSON files
are committed and read by tests/test_cgconv.c. torch is never a build or
run dependency.

usage: /usr/bin/python3 tests/tools/gen_cg_golden.py [OUTDIR]
"""
import json
import sys

import torch
import torch.nn.functional as F


class Gate(torch.autograd.Function):
    """1[v > 0] with the identity as its backward; `sparse` zeroes the
    gradient where v < 0 (the reference's SparseGreaterThan)."""

    @staticmethod
    def forward(ctx, v, sparse):
        ctx.save_for_backward(v)
        ctx.sparse = sparse
        return (v > 0).float()

    @staticmethod
    def backward(ctx, g):
        (v,) = ctx.saved_tensors
        if ctx.sparse:
            g = g.clone()
            g[v < 0] = 0
        return g, None


def make_mask(K, C, k, p, group):
    ci, co = C // p, K // p
    m = torch.zeros(K, C, k, k)
    if group:
        for j in range(p):
            m[j * co:(j + 1) * co, j * ci:(j + 1) * ci] = 1
    else:
        m[:, :ci] = 1
    return m


def shuffle(x, groups):
    n, c, h, w = x.shape
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).contiguous().view(n, c, h, w)


def cgconv(x, w, mask, delta, rm, rv, p, stride, pad, alpha, spbp, use_shuffle, training):
    if use_shuffle:
        x = shuffle(x, p)
    yp = F.conv2d(x, w * mask, stride=stride, padding=pad)
    z = F.batch_norm(yp, rm, rv, training=training, momentum=0.1, eps=1e-5)
    d = Gate.apply(torch.sigmoid(alpha * (z - delta)) - 0.5, spbp)
    y = F.conv2d(x, w, stride=stride, padding=pad)
    return y * d + yp * (1 - d), z, d


def case(name, seed, N, C, K, H, W, stride, pad, p, group, spbp, use_shuffle, alpha=2.0):
    g = torch.Generator().manual_seed(seed)
    mask = make_mask(K, C, 3, p, group)
    for attempt in range(100):
        x = torch.randn(N, C, H, W, generator=g)
        w = torch.randn(K, C, 3, 3, generator=g) * 0.3
        with torch.no_grad():
            _, z, _ = cgconv(x, w, mask, torch.zeros(1, K, 1, 1), torch.zeros(K),
                             torch.ones(K), p, stride, pad, alpha, spbp, use_shuffle, True)
            # Thresholds near each channel's median: about half the gates open.
            delta = z.transpose(0, 1).reshape(K, -1).median(dim=1).values
            delta = (delta + 0.1 * torch.randn(K, generator=g)).reshape(1, K, 1, 1)
            margin = (alpha * (z - delta)).abs().min().item()
        if margin > 1e-3:  # no decision within float noise of the edge
            break
    x.requires_grad_(True)
    w.requires_grad_(True)
    delta.requires_grad_(True)
    rm = 0.1 * torch.randn(K, generator=g)
    rv = 1.0 + 0.5 * torch.rand(K, generator=g)
    rm0, rv0 = rm.clone(), rv.clone()
    y, _, d = cgconv(x, w, mask, delta, rm, rv, p, stride, pad, alpha, spbp, use_shuffle, True)
    dy = torch.randn(y.shape, generator=g)
    y.backward(dy)
    with torch.no_grad():
        # Eval mode on the updated running statistics (no gradient).
        y_eval, z_eval, d_eval = cgconv(x, w, mask, delta, rm.clone(), rv.clone(), p, stride,
                                        pad, alpha, spbp, use_shuffle, False)
        margin_eval = (alpha * (z_eval - delta)).abs().min().item()
    fl = lambda t: [float(v) for v in t.detach().reshape(-1).tolist()]
    return {
        "name": name, "N": N, "C": C, "K": K, "H": H, "W": W, "R": 3, "stride": stride,
        "pad": pad, "partitions": p, "group": int(group), "spbp": int(spbp),
        "shuffle": int(use_shuffle), "alpha": alpha,
        "x": fl(x), "w": fl(w), "delta": fl(delta), "running_mean_in": fl(rm0),
        "running_var_in": fl(rv0), "dy": fl(dy), "mask": fl(mask),
        "y": fl(y), "num_full": int(d.sum().item()), "running_mean": fl(rm),
        "running_var": fl(rv), "dx": fl(x.grad), "dw": fl(w.grad), "ddelta": fl(delta.grad),
        "y_eval": fl(y_eval), "num_full_eval": int(d_eval.sum().item()),
        "margin_eval": margin_eval,
    }


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "tests/data/golden"
    torch.set_num_threads(1)
    cases = [
        # name, seed, N, C, K, H, W, stride, pad, p, group, spbp, shuffle
        case("cgconv_group_dense", 1, 3, 8, 8, 7, 5, 1, 1, 4, True, False, False),
        case("cgconv_group_spbp", 2, 3, 8, 8, 7, 5, 1, 1, 4, True, True, False),
        case("cgconv_first_dense", 3, 2, 6, 5, 5, 7, 1, 1, 3, False, False, False),
        case("cgconv_first_spbp_s2", 4, 2, 6, 4, 7, 7, 2, 1, 2, False, True, False),
        case("cgconv_shuffle_spbp_s2", 5, 2, 8, 4, 7, 5, 2, 1, 2, True, True, True),
    ]
    for c in cases:
        with open("%s/%s.json" % (out, c["name"]), "w") as f:
            json.dump(c, f)
        print("wrote %s/%s.json (num_full %d of %d, eval margin %.2g)"
              % (out, c["name"], c["num_full"], len(c["y"]), c["margin_eval"]))


if __name__ == "__main__":
    main()
