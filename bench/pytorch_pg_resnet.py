#!/usr/bin/python3
"""Times the reference PyTorch implementation of quantized and
Precision-Gated ResNet-20 training on the CPU, for comparison with
`qgate bench train` given the same method flags. This is a port of
cornell-zhang/dnn-gating@31666fa (utils/pg_utils.py,
model/pg_cifar10_resnet.py, model/quantized_cifar10_resnet.py and the
train step of pg-cifar10.py) as described in docs/methods.md §2:

  * weights and activations: sign-magnitude round-to-bits with the scale
    max|x| + 1e-7 over the whole tensor; round, floor and clamp are
    straight-through (custom autograd functions, as the reference);
  * PGConv2d: MSB conv on the truncated input, gate sigmoid(5(O_msb - delta))
    > 0.5 (GreaterThan, or SparseGreaterThan with --spbp), LSB conv on
    Quant(x) - Trunc(x) computed densely and masked; like the reference it
    truncates the input and quantizes the weights twice per forward and
    reads the gate counters back every forward (num_out, num_high);
  * blocks: conv1 PGConv2d (QuantizedConv2d without --pg), conv2
    QuantizedConv2d, one ReLU/PACT per block used twice; stem conv and
    linear in full precision; option-A shortcuts; Kaiming-normal init;
  * loss: cross-entropy + sigma * sum over layers ||delta - gtar||_2.

Same timing loop as bench/pytorch_resnet.py (SGD momentum 0.9, wd 1e-4,
synthetic data of --input's shape (3x32x32), warm-up, then 'img/s: X').
Needs Debian's python3-torch; never used by qgate itself.

usage: bench/pytorch_pg_resnet.py [-w 8] [-a 3] [--pb 2] [--pact] [--pg]
       [--spbp] [--gtar 1] [--sg 0.001] [--batch 128] [--steps 10] [--eval]
"""
import argparse

import torch
import torch.nn as nn
import torch.nn.functional as F

from pytorch_resnet import ResNet, add_bench_args, bench, input_shape


# Straight-through rounding functions: the forward applies the operation,
# the backward passes the gradient unchanged.
class _STE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, op, lo, hi):
        if op == "round":
            return torch.round(x)
        if op == "floor":
            return torch.floor(x)
        return torch.clamp(x, lo, hi)

    @staticmethod
    def backward(ctx, g):
        return g.clone(), None, None, None


def ste_round(x):
    return _STE.apply(x, "round", None, None)


def ste_floor(x):
    return _STE.apply(x, "floor", None, None)


def ste_clamp(x, lo, hi):
    return _STE.apply(x, "clamp", lo, hi)


class PactClipFn(torch.autograd.Function):
    """y = clamp(x, 0, alpha); dx where 0 <= x <= alpha, dalpha = sum dy over x > alpha."""

    @staticmethod
    def forward(ctx, x, alpha):
        ctx.save_for_backward(x, alpha)
        return torch.clamp(x, 0, alpha.data)

    @staticmethod
    def backward(ctx, g):
        x, alpha = ctx.saved_tensors
        gx = g.clone()
        gx[x < 0] = 0
        gx[x > alpha] = 0
        ga = g.clone()
        ga[x <= alpha] = 0
        return gx, ga.sum()


class PactReLU(nn.Module):
    def __init__(self, alpha=6.0):
        super().__init__()
        self.upper_bound = nn.Parameter(torch.tensor(alpha))

    def forward(self, x):
        return PactClipFn.apply(x, self.upper_bound)


class GateFn(torch.autograd.Function):
    """mask = s > 0.5; identity backward, or zero where s < 0.5 (sparse)."""

    @staticmethod
    def forward(ctx, s, sparse):
        ctx.sparse = sparse
        if sparse:
            ctx.save_for_backward(s)
        return (s > 0.5).float()

    @staticmethod
    def backward(ctx, g):
        g = g.clone()
        if ctx.sparse:
            (s,) = ctx.saved_tensors
            g[s < 0.5] = 0
        return g, None


def round_to_bits(x, bits):
    """Sign-magnitude, whole-tensor max scaling (TorchRoundToBits)."""
    sign = torch.sign(x).detach()
    mag = torch.abs(x)
    scale = torch.max(mag).detach() + 1e-7
    levels = 2.0 ** bits - 1.0
    mag = ste_clamp(mag / scale, 0.0, 1.0)
    return ste_round(mag * levels) / levels * scale * sign


def truncate(x, bits, msb_bits):
    """The top msb_bits of the bits-bit code, floored (TorchTruncate)."""
    sign = torch.sign(x).detach()
    mag = torch.abs(x)
    scale = torch.max(mag).detach() + 1e-7
    mag = ste_clamp(mag / scale, 0.0, 1.0)
    code = ste_round(mag * (2.0 ** bits - 1.0))
    step = float(2 ** (bits - msb_bits))
    code = ste_floor(code / step) * step
    return code / (2.0 ** bits - 1.0) * scale * sign


# The reference multiplies quantized weights by sqrt(1/(k*k*cin)) for 1-bit
# weights and by 1.0 otherwise (bits 2..16 here); the multiplication is kept.
def rescale(k, cin, wbits):
    return (1.0 / (k * k * cin)) ** 0.5 if wbits == 1 else 1.0


class QuantizedConv2d(nn.Conv2d):
    def __init__(self, cin, cout, k, stride, pad, wbits, abits):
        super().__init__(cin, cout, k, stride, pad, bias=False)
        self.wbits, self.abits = wbits, abits
        self.weight_rescale = rescale(k, cin, wbits)

    def forward(self, x):
        return F.conv2d(round_to_bits(x, self.abits),
                        round_to_bits(self.weight, self.wbits) * self.weight_rescale,
                        None, self.stride, self.padding)


class PGConv2d(nn.Conv2d):
    def __init__(self, cin, cout, k, stride, pad, wbits, abits, pred_bits, sparse_bp):
        super().__init__(cin, cout, k, stride, pad, bias=False)
        self.wbits, self.abits, self.pred_bits = wbits, abits, pred_bits
        self.sparse_bp = sparse_bp
        self.weight_rescale = rescale(k, cin, wbits)
        self.threshold = nn.Parameter(torch.zeros(1, cout, 1, 1))
        self.num_out = self.num_high = 0

    def forward(self, x):
        out_msb = F.conv2d(truncate(x, self.abits, self.pred_bits),
                           round_to_bits(self.weight, self.wbits) * self.weight_rescale, None,
                           self.stride, self.padding)
        mask = GateFn.apply(torch.sigmoid(5.0 * (out_msb - self.threshold)), self.sparse_bp)
        self.num_out = mask.cpu().numel()
        self.num_high = mask[mask > 0].cpu().numel()
        out_lsb = F.conv2d(round_to_bits(x, self.abits) - truncate(x, self.abits, self.pred_bits),
                           round_to_bits(self.weight, self.wbits) * self.weight_rescale, None,
                           self.stride, self.padding)
        return out_msb + mask * out_lsb


def make_resnet(o):
    """The reference's resnet20(): conv1 PGConv2d (QuantizedConv2d without
    --pg), conv2 QuantizedConv2d, PACT or ReLU, Kaiming-normal init."""
    if o.pg:
        def conv1(cin, cout, stride):
            return PGConv2d(cin, cout, 3, stride, 1, o.wbits, o.abits, o.pb, o.spbp)
    else:
        def conv1(cin, cout, stride):
            return QuantizedConv2d(cin, cout, 3, stride, 1, o.wbits, o.abits)

    def conv2(cin, cout, stride):
        return QuantizedConv2d(cin, cout, 3, stride, 1, o.wbits, o.abits)

    return ResNet(o.depth, in_c=input_shape(o)[0], conv1=conv1, conv2=conv2,
                  relu=PactReLU if o.pact else nn.ReLU, kaiming=True)


def gating_loss(o):
    def loss(m):
        total = 0.0
        for name, p in m.named_parameters():
            if "threshold" in name:
                total = total + o.sg * torch.norm(p - o.gtar)
        return total
    return loss


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_bench_args(ap)
    ap.add_argument("-w", "--wbits", type=int, default=8)
    ap.add_argument("-a", "--abits", type=int, default=8)
    ap.add_argument("--pb", "--pred-bits", dest="pb", type=int, default=4)
    ap.add_argument("--pact", action="store_true")
    ap.add_argument("--pg", action="store_true")
    ap.add_argument("--spbp", action="store_true")
    ap.add_argument("--gtar", type=float, default=0.0)
    ap.add_argument("--sg", "--sigma", dest="sg", type=float, default=0.001)
    o = ap.parse_args()
    torch.set_num_threads(o.threads)
    torch.manual_seed(0)
    what = "%s resnet%d w%d a%d%s%s" % ("PG" if o.pg else "quantized", o.depth, o.wbits,
                                        o.abits, " pb%d%s" % (o.pb, " spbp" if o.spbp else "")
                                        if o.pg else "", " pact" if o.pact else "")
    bench(make_resnet(o), o, what, gating_loss(o) if o.pg else None)


if __name__ == "__main__":
    main()
