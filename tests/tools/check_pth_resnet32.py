#!/usr/bin/python3
"""Convert a float32 ResNet-32 (option-B shortcuts, PSG's names, CIFAR-100
classes) saved by this torch in the legacy stream, and compare qgate's
logits with PyTorch's.

Builds the model of gen_pth_fixtures.py in float32 (the committed fixture
stores float16 values to stay small), saves it with
torch.save(..., _use_new_zipfile_serialization=False) and also in the zip
format, writes the input and PyTorch's logits, and runs
`qgate convert IN.pth -o OUT.safetensors --check CHECK --tol 1e-4` on both.
Needs python3-torch and a built qgate; never run by `make check`.

usage: tests/tools/check_pth_resnet32.py [PATH/TO/qgate]   (default ./qgate)
"""
import os
import subprocess
import sys
import tempfile

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_pth_fixtures import resnet_files  # noqa: E402


def main():
    qgate = sys.argv[1] if len(sys.argv) > 1 else "./qgate"
    print("torch", torch.__version__)
    rc = 0
    with tempfile.TemporaryDirectory() as d:
        for legacy in (True, False):
            pth, check = resnet_files(d, torch.float32, legacy=legacy, tag="resnet32b_f32")
            out = os.path.join(d, "out.safetensors")
            cmd = [qgate, "convert", pth, "-o", out, "--check", check, "--tol", "1e-4"]
            print("$", " ".join(cmd), "  (%d bytes)" % os.path.getsize(pth))
            r = subprocess.run(cmd)
            rc |= r.returncode
    sys.exit(rc)


if __name__ == "__main__":
    main()
