#!/usr/bin/python3
"""Evaluate a qgate full-precision CIFAR-style ResNet checkpoint in PyTorch.

Builds the same network in PyTorch with the state-dict names qgate writes
(conv1, bn1, layer1.0.conv1, ..., linear; option-A shortcuts), loads the
safetensors file with load_state_dict(strict=True) (optimizer state and
qgate metadata aside), and reports test accuracy on Fashion-MNIST (Debian's
dataset-fashion-mnist) with qgate's normalisation. The number must match
`qgate eval` on the same file: this proves the checkpoint moves to PyTorch
with its names, layouts and batch-norm statistics intact. Needs
python3-torch; never run by `make check`.

usage: tests/tools/torch_eval_checkpoint.py FILE.safetensors [DATA_DIR]
"""
import gzip
import os
import struct
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check_safetensors_torch import load  # noqa: E402

MEAN, STD = 0.2860, 0.3530   # src/train/trainer.c, fashion-mnist
# --normalize as recorded in the checkpoint (src/train/trainer.c,
# apply_normalize: 1-channel ImageNet statistics are the channel average)
NORMALIZE = {"dataset": (MEAN, STD), "imagenet": (0.449, 0.226), "none": (0.0, 1.0)}


class Block(nn.Module):
    def __init__(self, cin, planes, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.pad = (planes - cin) // 2 if (stride != 1 or cin != planes) else None

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        sc = x if self.pad is None else F.pad(x[:, :, ::2, ::2],
                                              (0, 0, 0, 0, self.pad, self.pad))
        return F.relu(out + sc)


class ResNet(nn.Module):
    def __init__(self, depth, in_c, classes):
        super().__init__()
        n = (depth - 2) // 6
        self.conv1 = nn.Conv2d(in_c, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        cin = 16
        for s, planes in enumerate([16, 32, 64]):
            blocks = []
            for b in range(n):
                blocks.append(Block(cin, planes, 2 if (s > 0 and b == 0) else 1))
                cin = planes
            setattr(self, "layer%d" % (s + 1), nn.Sequential(*blocks))
        self.linear = nn.Linear(64, classes)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.linear(F.adaptive_avg_pool2d(x, 1).flatten(1))


def idx(path):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    magic, = struct.unpack(">I", raw[:4])
    ndim = magic & 0xff
    dims = struct.unpack(">" + "I" * ndim, raw[4:4 + 4 * ndim])
    return torch.frombuffer(bytearray(raw[4 + 4 * ndim:]), dtype=torch.uint8).reshape(dims)


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__.strip().splitlines()[-1])
    data_dir = sys.argv[2] if len(sys.argv) == 3 else "/usr/share/datasets/fashion-mnist"
    tensors, meta = load(sys.argv[1])
    arch = meta.get("arch", "resnet20")
    depth = int(arch.replace("resnet", ""))
    classes = tensors["linear.weight"].shape[0]
    in_c = tensors["conv1.weight"].shape[1]
    model = ResNet(depth, in_c, classes)
    state = {k: v for k, v in tensors.items() if not k.startswith("optimizer.")}
    # checkpoints from before num_batches_tracked was written lack it
    for k in list(model.state_dict()):
        if k.endswith("num_batches_tracked") and k not in state:
            state[k] = torch.tensor(0)
    model.load_state_dict(state, strict=True)
    model.eval()
    x = idx(os.path.join(data_dir, "t10k-images-idx3-ubyte.gz")).float().div(255)
    y = idx(os.path.join(data_dir, "t10k-labels-idx1-ubyte.gz")).long()
    mean, std = NORMALIZE[meta.get("normalize", "dataset")]
    x = ((x - mean) / std).unsqueeze(1)
    correct = 0
    with torch.no_grad():
        for i in range(0, len(y), 128):
            correct += (model(x[i:i + 128]).argmax(1) == y[i:i + 128]).sum().item()
    print("pytorch: %s loaded strictly (%d tensors), test accuracy %.2f%% (%d/%d)"
          % (arch, len(state), 100.0 * correct / len(y), correct, len(y)))


if __name__ == "__main__":
    main()
