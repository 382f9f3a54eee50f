#!/usr/bin/python3
"""Loads a qgate checkpoint into the reference's CIFAR ResNet
(tests/tools/reference_resnet.py) with load_state_dict(strict=True): every
key the model has must be in the file and nothing else, shapes equal.
A training checkpoint's optimizer state is dropped with one expression (the
README's recipe); a `qgate export-model` file needs nothing dropped. Exits 0
and prints "strict load OK" on success. Needs python3-torch.

usage: tests/tools/check_strict_load.py FILE.safetensors
"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check_safetensors_torch import load  # noqa: E402
from reference_resnet import from_metadata  # noqa: E402


def main():
    path = sys.argv[1]
    tensors, meta = load(path)
    model = from_metadata(meta)
    # the README's recipe: the model's tensors are those without the prefix
    sd = {k: v for k, v in tensors.items() if not k.startswith("optimizer.")}
    model.load_state_dict(sd, strict=True)
    nbt = [k for k in sd if k.endswith(".num_batches_tracked")]
    step = int(meta.get("step", "0"))
    for k in nbt:
        if int(model.state_dict()[k]) != step:
            sys.exit(f"{k} is {int(model.state_dict()[k])}, the checkpoint's step is {step}")
    model.eval()
    with torch.no_grad():
        out = model(torch.zeros(2, int(meta["in_channels"]), int(meta["in_height"]),
                                int(meta["in_width"])))
    if not torch.isfinite(out).all():
        sys.exit("non-finite logits")
    print(f"strict load OK: {len(sd)} tensors ({len(nbt)} num_batches_tracked), "
          f"{len(tensors) - len(sd)} optimizer tensors dropped")


if __name__ == "__main__":
    main()
