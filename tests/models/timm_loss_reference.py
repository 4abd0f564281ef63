#!/usr/bin/env python3
"""timm's SoftTargetCrossEntropy and LabelSmoothingCrossEntropy values for tests/models/test_losses.cpp.

usage: timm_loss_reference.py IN.json OUT.json

IN holds `logits` ({"shape": [B, K], "data": flat float32 values}), `soft` (the same form, (B, K)), `labels`
(B ints) and `smoothing` (a list). OUT gets `soft_target` (SoftTargetCrossEntropy()(logits, soft)) and
`label_smoothing` (LabelSmoothingCrossEntropy(s)(logits, labels) for each s, in order), as float32 values in
JSON numbers. Exit code 3 when timm is not importable (the C++ test skips then)."""
import json
import sys

import torch

try:
    from timm.loss import LabelSmoothingCrossEntropy, SoftTargetCrossEntropy
except ImportError as e:  # pragma: no cover - depends on the venv
    print(f"timm is not available: {e}")
    sys.exit(3)


def tensor(d: dict) -> torch.Tensor:
    return torch.tensor(d["data"], dtype=torch.float32).reshape(d["shape"])


def main() -> int:
    with open(sys.argv[1]) as f:
        inp = json.load(f)
    logits, soft = tensor(inp["logits"]), tensor(inp["soft"])
    labels = torch.tensor(inp["labels"], dtype=torch.int64)
    out = {
        "soft_target": SoftTargetCrossEntropy()(logits, soft).item(),
        "label_smoothing": [LabelSmoothingCrossEntropy(s)(logits, labels).item() for s in inp["smoothing"]],
    }
    with open(sys.argv[2], "w") as f:
        json.dump(out, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
