#!/usr/bin/env python3
"""timm's layer-decay parameter groups for a ViT-B/16, for tests/engine/test_optim.cpp.

usage: timm_layer_decay_reference.py OUT.json

Builds timm's vit_base_patch16_224 (on the meta device: only names and shapes matter) with global_pool 'avg'
(fc_norm, no final norm: MAE's fine-tuning model) and 'token' (final norm, no fc_norm), and writes, per pool,
the param groups of timm.optim.create_optimizer_v2(model, 'adamw', weight_decay=0.05, layer_decay=0.65) in
order: {"lr_scale", "weight_decay", "params": [parameter names]}, plus "named_parameters" (timm's names in
model order). Exit code 3 when timm is not importable (the C++ test skips then)."""
import json
import sys

import torch

try:
    import timm
    from timm.optim import create_optimizer_v2
except ImportError as e:  # pragma: no cover - depends on the venv
    print(f"timm is not available: {e}")
    sys.exit(3)


def groups(global_pool: str) -> dict:
    with torch.device("meta"):
        model = timm.create_model("vit_base_patch16_224", pretrained=False, global_pool=global_pool,
                                  num_classes=1000)
    opt = create_optimizer_v2(model, "adamw", lr=1e-3, weight_decay=0.05, layer_decay=0.65)
    names = {id(p): n for n, p in model.named_parameters()}
    return {
        "named_parameters": [n for n, _ in model.named_parameters()],
        "groups": [{"lr_scale": g["lr_scale"], "weight_decay": g["weight_decay"],
                    "params": [names[id(p)] for p in g["params"]]} for g in opt.param_groups],
    }


def main() -> int:
    out = {pool: groups(pool) for pool in ("avg", "token")}
    with open(sys.argv[1], "w") as f:
        json.dump(out, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
