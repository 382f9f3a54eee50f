#!/usr/bin/env python3
"""tests/fuzz/make_corpus.py: writes the seed corpora of the fuzz targets
(tests/fuzz/corpus/<target>/) from the published formats, small enough to
commit. Run by developers after a format change: python3 make_corpus.py"""
import gzip
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def put(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def safetensors(tensors, meta=None):
    """tensors: list of (name, dtype, shape, bytes), laid out in order."""
    hdr, off, blob = {}, 0, b""
    if meta:
        hdr["__metadata__"] = meta
    for name, dt, shape, raw in tensors:
        hdr[name] = {"dtype": dt, "shape": shape, "data_offsets": [off, off + len(raw)]}
        off += len(raw)
        blob += raw
    js = json.dumps(hdr, separators=(",", ":")).encode()
    js += b" " * ((8 - len(js) % 8) % 8)
    return struct.pack("<Q", len(js)) + js + blob


def f32(*v):
    return struct.pack("<%df" % len(v), *v)


put("safetensors", "two_tensors", safetensors(
    [("w", "F32", [2], f32(1.0, -2.5)), ("step", "I32", [1], struct.pack("<i", 7))],
    {"epoch": "3", "format": "qgate-checkpoint-1"}))
put("safetensors", "dtypes", safetensors(
    [("conv.weight", "F32", [2, 1, 1, 2], f32(0.5, 1, 2, 3)),
     ("bits", "U8", [3], b"\x01\x02\x03"),
     ("half", "F16", [2], struct.pack("<2H", 0x3C00, 0xC000)),
     ("scalar", "F32", [], f32(6.0)),
     ("empty", "F32", [0, 3], b"")]))
put("safetensors", "foreign_dtype", safetensors([("x", "BF16", [2], b"\x80\x3f\x00\x40")]))


def idx_images(n, h, w):
    px = bytes((i * 7 + y * 3 + x * 5) & 255 for i in range(n) for y in range(h)
               for x in range(w))
    return struct.pack(">IIII", 0x803, n, h, w) + px


def idx_labels(n):
    return struct.pack(">II", 0x801, n) + bytes((i * 3 + 1) % 10 for i in range(n))


def idx_pair(img, lab):
    return struct.pack("<I", len(img)) + img + lab


img, lab = idx_images(3, 4, 5), idx_labels(3)
put("idx", "raw", idx_pair(img, lab))
put("idx", "gzip", idx_pair(gzip.compress(img, mtime=0), gzip.compress(lab, mtime=0)))
put("idx", "gzip_images_raw_labels", idx_pair(gzip.compress(idx_images(2, 28, 28), mtime=0),
                                              idx_labels(2)))
put("idx", "two_members", idx_pair(gzip.compress(img[:10], mtime=0) +
                                   gzip.compress(img[10:], mtime=0), lab))


def cifar_record(label_bytes, i):
    return label_bytes + bytes((i * 11 + k) & 255 for k in range(3072))


put("cifar", "cifar10", b"\x00" + cifar_record(bytes([3]), 0) + cifar_record(bytes([9]), 1))
put("cifar", "cifar100", b"\x01" + cifar_record(bytes([19, 99]), 0))

put("shapes", "one", json.dumps(
    {"schema": 1, "conv": [{"n": 128, "c": 16, "k": 16, "h": 32, "w": 32, "stride": 1}]}).encode())
put("shapes", "two", json.dumps(
    {"schema": 1, "conv": [{"n": 8, "c": 3, "k": 16, "h": 32, "w": 32, "stride": 1},
                           {"n": 8, "c": 16, "k": 32, "h": 32, "w": 32, "stride": 2}]},
    indent=1).encode())


def tunedb(entries):
    return json.dumps({"schema": 1, "entries": entries}, indent=2).encode()


put("tunedb", "entries", tunedb([
    {"device": "fuzz", "program": "eltwise", "shape": "*", "params": {"WG": 128},
     "time_ms": 1.0, "default_ms": 2.0},
    {"device": "fuzz", "program": "quant", "shape": "*",
     "params": {"WG": 64, "CHUNK": 1, "VW": 16}},
    {"device": "fuzz", "program": "conv_direct", "shape": "c16_k16_h32_w32_s1",
     "params": {"WG": 2, "VW": 16, "JT": 2, "KT": 8, "WKT": 2, "WN": 4}},
    {"device": "other", "program": "reduce", "shape": "*", "params": {"WG": 16}}]))
put("tunedb", "gemm", tunedb([
    {"device": "fuzz", "program": "clblast_xgemm", "shape": "*",
     "params": {"GEMMK": 0, "KREG": 1, "KWG": 32, "KWI": 2, "MDIMA": 8, "MDIMC": 8,
                "MWG": 64, "NDIMB": 8, "NDIMC": 8, "NWG": 64, "SA": 0, "SB": 0,
                "STRM": 0, "STRN": 0, "VWM": 4, "VWN": 4}}]))
