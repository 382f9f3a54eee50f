#!/usr/bin/python3
"""Load a qgate safetensors checkpoint into PyTorch tensors, without the
`safetensors` package, and print each tensor's name, dtype and shape.

The parse follows the format exactly as src/model/safetensors.c writes and
checks it: u64 little-endian header length N, N bytes of JSON (padded with
spaces), then the tensors' bytes, each at [begin, end) of the data area,
covering it without gaps or overlaps. Proves a checkpoint moves to PyTorch
with no pickle. Not run by `make check` (needs python3-torch).

usage: tests/tools/check_safetensors_torch.py FILE.safetensors
"""
import json
import struct
import sys

import torch

DTYPES = {"F32": (torch.float32, 4), "I32": (torch.int32, 4), "U8": (torch.uint8, 1),
          "F16": (torch.float16, 2), "I64": (torch.int64, 8), "F64": (torch.float64, 8),
          "BF16": (torch.bfloat16, 2), "I8": (torch.int8, 1), "I16": (torch.int16, 2),
          "BOOL": (torch.bool, 1)}


def load(path):
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        raise ValueError(f"{path}: too short")
    (n,) = struct.unpack("<Q", raw[:8])
    if n > len(raw) - 8:
        raise ValueError(f"{path}: header length {n} runs past the end ({len(raw)} bytes)")
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    data = raw[8 + n:]
    meta = header.pop("__metadata__", {})
    tensors, spans = {}, []
    for name, e in header.items():
        dt, size = DTYPES[e["dtype"]]
        shape = [int(d) for d in e["shape"]]
        begin, end = e["data_offsets"]
        numel = 1
        for d in shape:
            numel *= d
        if numel * size != end - begin or end > len(data):
            raise ValueError(f"{path}: tensor {name} has bad data_offsets {begin, end}")
        spans.append((begin, end))
        buf = bytearray(data[begin:end])
        t = torch.frombuffer(buf, dtype=dt) if numel else torch.empty(0, dtype=dt)
        tensors[name] = t.reshape(shape)
    at = 0
    for begin, end in sorted(spans):
        if begin != at:
            raise ValueError(f"{path}: data_offsets overlap or leave a hole at {at}")
        at = end
    if at != len(data):
        raise ValueError(f"{path}: {len(data) - at} bytes after the last tensor")
    return tensors, meta


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__.strip().splitlines()[-1])
    tensors, meta = load(sys.argv[1])
    for k, v in meta.items():
        print(f"meta {k} = {v}")
    for name, t in tensors.items():
        flat = t.reshape(-1)
        head = flat[:4].tolist() if flat.numel() else []
        print(f"{name}: {str(t.dtype).replace('torch.', '')} {list(t.shape)} first {head}")


if __name__ == "__main__":
    main()
