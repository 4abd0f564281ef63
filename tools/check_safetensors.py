#!/usr/bin/env python3
# Python side of semaim's safetensors interop test (tests/io/test_safetensors_interop.cpp): checks files
# written by semaim::io::save_safetensors with safetensors.torch.load_file, and writes files for C++ to read.
"""Usage: check_safetensors.py check FILE   |   check_safetensors.py write FILE

Both sides build the same pattern tensors (see patterns() and the C++ test's interop_patterns()).
`check` exits 1 with a message on any mismatch of names, dtypes, shapes, values or metadata."""
import sys

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

METADATA = {"format": "pt", "origin": "semaim interop", "epoch": "3"}


def patterns():
    a = torch.arange(24, dtype=torch.float64)
    return {
        "f64": (a * 0.25 - 2.0).reshape(2, 3, 4),
        "f32": (a * 0.5 - 3.0).to(torch.float32).reshape(4, 6),
        "f16": (a * 0.5 - 3.0).to(torch.float16).reshape(6, 4),
        "bf16": (a * 0.5 - 3.0).to(torch.bfloat16).reshape(3, 8),
        "i64": (a.to(torch.int64) * 1000003 - 5),
        "i32": (a.to(torch.int32) * 7 - 12).reshape(2, 12),
        "i16": (a.to(torch.int16) * 100 - 1000).reshape(12, 2),
        "i8": (a.to(torch.int8) * 5 - 60).reshape(4, 3, 2),
        "u8": (a.to(torch.uint8) * 10).reshape(24, 1),
        "bool": (torch.arange(24) % 3 == 0).reshape(2, 2, 6),
        "scalar": torch.tensor(7.25, dtype=torch.float64),
        "empty": torch.zeros(0, 5, dtype=torch.float32),
        # written from a non-contiguous (transposed) C++ tensor
        "transposed": torch.arange(24, dtype=torch.float32).reshape(4, 6).t().contiguous(),
    }


def check(path):
    got = load_file(path)
    want = patterns()
    errors = []
    if sorted(got) != sorted(want):
        errors.append(f"names: got {sorted(got)} want {sorted(want)}")
    for name in sorted(set(got) & set(want)):
        g, w = got[name], want[name]
        if g.dtype != w.dtype or tuple(g.shape) != tuple(w.shape):
            errors.append(f"{name}: got {g.dtype} {tuple(g.shape)} want {w.dtype} {tuple(w.shape)}")
        elif not torch.equal(g, w):
            errors.append(f"{name}: values differ: got {g.flatten()[:8].tolist()} want {w.flatten()[:8].tolist()}")
    with safe_open(path, framework="pt") as f:
        meta = f.metadata()
    if meta != METADATA:
        errors.append(f"metadata: got {meta} want {METADATA}")
    for e in errors:
        print(e, file=sys.stderr)
    return 1 if errors else 0


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("check", "write"):
        print(__doc__, file=sys.stderr)
        return 2
    if sys.argv[1] == "check":
        return check(sys.argv[2])
    save_file(patterns(), sys.argv[2], metadata=METADATA)
    return 0


if __name__ == "__main__":
    sys.exit(main())
