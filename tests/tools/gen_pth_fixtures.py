#!/usr/bin/python3
"""Write the PyTorch checkpoint fixtures of tests/test_pth.c.

Needs python3-torch (Debian's 1.13); run by developers, never by `make
check`; the files it writes are committed under tests/data/pth/:

  tiny_{legacy,zip}.pth       bare OrderedDict state dict: float32, float16,
                              float64, int64 (and a 0-dim one), a transposed
                              (non-contiguous) view and a slice sharing one
                              storage, an nn.Parameter
  nested_{legacy,zip}.pth     {'epoch', 'state_dict' (DataParallel 'module.'
                              prefix, nested dict), 'acc', 'best_acc' (a 0-dim
                              tensor), 'optimizer', 'Nbit_dict'}
  evil_{legacy,zip}.pth       the object pickle calls os.system: must be refused
  model_legacy.pth            torch.save(nn.Linear): a pickled class, refused
  tiny_expected.json          every tiny tensor's dtype, shape and values
  bsq_zip.pth                 BSQ's bit representation of one conv: pweight,
                              nweight [2,1,3,3,3] (last axis the bit, MSB
                              first) and scale, with its Nbit_dict
  resnet32b_legacy.pth        ResNet-32 with option-B shortcuts, CIFAR-100
                              classes, named as PSG's ResNet-32 (fc,
                              downsample, 'module.'), float16 storages (half
                              the size; the float32 model below uses exactly
                              these values), legacy stream
  resnet32b_check.safetensors "input" [4,3,32,32] and PyTorch's "logits"
                              [4,100] of that model in eval mode, for
                              `qgate convert --check`

usage: tests/tools/gen_pth_fixtures.py [OUT_DIR]   (default tests/data/pth)
"""
import collections
import io
import json
import os
import pickle
import struct
import sys
import zipfile

import torch
import torch.nn as nn
import torch.nn.functional as F


def legacy_save(obj, path):
    torch.save(obj, path, _use_new_zipfile_serialization=False)


def tiny_state():
    g = torch.Generator().manual_seed(7)
    base = torch.arange(12, dtype=torch.float32) * 0.5 - 1.0
    sd = collections.OrderedDict()
    sd["a.weight"] = torch.randn(2, 3, generator=g)
    sd["b.half"] = torch.tensor([1.5, -2.25, 65504.0], dtype=torch.float16)
    sd["c.double"] = torch.tensor([[0.1, -0.2], [1e-3, 3.0]], dtype=torch.float64)
    sd["d.long"] = torch.tensor([3, -4, 1 << 40], dtype=torch.int64)
    sd["e.num_batches_tracked"] = torch.tensor(5)
    sd["f.t"] = base[:6].view(2, 3).t()          # non-contiguous, shares `base`
    sd["g.shared"] = base[6:12]                   # offset 6 into the same storage
    sd["h.param"] = nn.Parameter(torch.tensor([0.25, -0.75]))
    return sd


def expected(sd):
    out = {}
    for k, v in sd.items():
        v = v.detach()
        out[k] = {"dtype": str(v.dtype).replace("torch.", ""), "shape": list(v.shape),
                  "values": [float(x) for x in v.flatten().tolist()]}
    return out


def nested_obj():
    g = torch.Generator().manual_seed(11)
    sd = collections.OrderedDict()
    sd["module.conv1.weight"] = torch.randn(2, 1, 3, 3, generator=g)
    sd["module.layer1.0.downsample.0.weight"] = torch.randn(4, 2, 1, 1, generator=g)
    sd["module.fc.weight"] = torch.randn(3, 2, generator=g)
    sd["module.fc.bias"] = torch.tensor([0.5, -0.5, 1.0])
    inner = collections.OrderedDict()
    inner["x"] = torch.tensor([1.0, 2.0])
    sd["module.extra"] = inner                   # a nested dict of tensors
    opt = {"state": {0: {"momentum_buffer": torch.zeros(3)}},
           "param_groups": [{"lr": 0.1, "momentum": 0.9, "nesterov": False, "params": [0]}]}
    return {"epoch": 7, "state_dict": sd, "acc": 91.5, "best_acc": torch.tensor(92.25),
            "optimizer": opt, "Nbit_dict": {"module.conv1": [8, 0]}, "arch": "tiny"}


def bsq_obj():
    """Bits chosen so plane densities are 4/18, 9/18, 18/18 (p - n non-zero)."""
    p = torch.zeros(2, 1, 3, 3, 3)
    n = torch.zeros(2, 1, 3, 3, 3)
    flat_p, flat_n = p.view(18, 3), n.view(18, 3)
    flat_p[:4, 0] = 1          # MSB set on 4 weights
    flat_n[4:13, 1] = 1        # middle bit on 9 (negative)
    flat_p[:, 2] = 1           # LSB everywhere
    sd = collections.OrderedDict()
    sd["module.conv1.pweight"] = p
    sd["module.conv1.nweight"] = n
    sd["module.conv1.scale"] = torch.tensor([0.7])
    return {"Nbit_dict": {"module.conv1": [3, 0]}, "epoch": 3, "state_dict": sd}


def evil_pickle():
    # what `pickle.dumps` makes of an object whose __reduce__ is os.system
    return b"\x80\x02cos\nsystem\nq\x00X\x0a\x00\x00\x00echo pwnedq\x01\x85q\x02Rq\x03."


def evil_legacy(path):
    with open(path, "wb") as f:
        for head in (0x1950a86a20f9469cfc6c, 1001,
                     {"protocol_version": 1001, "little_endian": True,
                      "type_sizes": {"short": 2, "int": 4, "long": 4}}):
            pickle.dump(head, f, protocol=2)
        f.write(evil_pickle())
        pickle.dump([], f, protocol=2)


def evil_zip(path):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr("evil/data.pkl", evil_pickle())
        z.writestr("evil/version", "3\n")


class Block(nn.Module):
    """PSG's BasicBlock: option-B shortcut named `downsample`."""

    def __init__(self, cin, planes, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = nn.Sequential()
        if stride != 1 or cin != planes:
            self.downsample = nn.Sequential(nn.Conv2d(cin, planes, 1, stride, 0, bias=False),
                                            nn.BatchNorm2d(planes))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.downsample(x))


class ResNet(nn.Module):
    def __init__(self, depth=32, classes=100):
        super().__init__()
        n = (depth - 2) // 6
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        cin = 16
        for s, planes in enumerate([16, 32, 64]):
            blocks = []
            for b in range(n):
                blocks.append(Block(cin, planes, 2 if (s > 0 and b == 0) else 1))
                cin = planes
            setattr(self, "layer%d" % (s + 1), nn.Sequential(*blocks))
        self.fc = nn.Linear(64, classes)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


def resnet32b(dtype, seed=3):
    """A ResNet-32-B with random weights and batch-norm statistics (so the
    check exercises every tensor), its values representable in `dtype`."""
    torch.manual_seed(seed)
    m = ResNet(32, 100)
    with torch.no_grad():
        for name, mod in m.named_modules():
            if isinstance(mod, nn.BatchNorm2d):
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.uniform_(-0.2, 0.2)
                mod.running_mean.uniform_(-0.3, 0.3)
                mod.running_var.uniform_(0.5, 2.0)
                mod.num_batches_tracked.fill_(1234)
        m.fc.weight.normal_(0.0, 1.0)    # logits of a few units, not ~0.1
        m.fc.bias.uniform_(-1.0, 1.0)
        for p in list(m.parameters()) + list(m.buffers()):
            if p.dtype.is_floating_point:
                p.copy_(p.to(dtype).float())
    m.eval()
    return m


def write_safetensors(path, tensors):
    header, blobs, off = {}, [], 0
    for k, v in tensors.items():
        b = v.contiguous().float().numpy().tobytes()
        header[k] = {"dtype": "F32", "shape": list(v.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def resnet_files(out, dtype, legacy=True, tag="resnet32b"):
    m = resnet32b(dtype)
    g = torch.Generator().manual_seed(5)
    x = torch.randn(4, 3, 32, 32, generator=g)
    with torch.no_grad():
        logits = m(x)
    sd = collections.OrderedDict(("module." + k, v.to(dtype) if v.dtype.is_floating_point else v)
                                 for k, v in m.state_dict().items())
    obj = {"epoch": 82, "state_dict": sd, "best_acc": 0.6984,
           "optimizer": {"state": {}, "param_groups": [{"lr": 0.01, "params": []}]}}
    pth = os.path.join(out, tag + ("_legacy.pth" if legacy else "_zip.pth"))
    if legacy:
        legacy_save(obj, pth)
    else:
        torch.save(obj, pth)
    check = os.path.join(out, tag + "_check.safetensors")
    write_safetensors(check, {"input": x, "logits": logits})
    return pth, check


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "data", "pth")
    os.makedirs(out, exist_ok=True)
    sd = tiny_state()
    legacy_save(sd, os.path.join(out, "tiny_legacy.pth"))
    torch.save(sd, os.path.join(out, "tiny_zip.pth"))
    with open(os.path.join(out, "tiny_expected.json"), "w") as f:
        json.dump(expected(sd), f, indent=1)
        f.write("\n")
    nested = nested_obj()
    legacy_save(nested, os.path.join(out, "nested_legacy.pth"))
    torch.save(nested, os.path.join(out, "nested_zip.pth"))
    torch.save(bsq_obj(), os.path.join(out, "bsq_zip.pth"))
    evil_legacy(os.path.join(out, "evil_legacy.pth"))
    evil_zip(os.path.join(out, "evil_zip.pth"))
    legacy_save(nn.Linear(2, 2), os.path.join(out, "model_legacy.pth"))
    resnet_files(out, torch.float16)
    # sanity: PyTorch reads back what it wrote
    for name in ("tiny_legacy.pth", "tiny_zip.pth"):
        back = torch.load(os.path.join(out, name))
        assert all(torch.equal(back[k], sd[k]) for k in sd), name
    for name in sorted(os.listdir(out)):
        print("%8d %s" % (os.path.getsize(os.path.join(out, name)), name))


if __name__ == "__main__":
    main()
