#!/usr/bin/env python3
"""Loads a `semaim export` file into timm's VisionTransformer of the same size (strict: no missing or unexpected keys)
and checks its forward_features against the features semaim computed on the same input.

usage: check_timm_export.py ENCODER.safetensors REFERENCE.safetensors
REFERENCE holds `input` (N, C, H, W) and `features` (N, L+1, D) from semaim's encoder."""
import json
import sys

import torch
from safetensors import safe_open
from safetensors.torch import load_file
from timm.models.vision_transformer import VisionTransformer


def main() -> int:
    enc_path, ref_path = sys.argv[1], sys.argv[2]
    with safe_open(enc_path, "pt") as f:
        meta = f.metadata() or {}
    arch = json.loads(meta["arch"])
    model = VisionTransformer(img_size=arch["img_size"], patch_size=arch["patch_size"], in_chans=arch["in_chans"],
                              embed_dim=arch["embed_dim"], depth=arch["depth"], num_heads=arch["num_heads"],
                              mlp_ratio=arch["mlp_ratio"], qkv_bias=True, num_classes=0, class_token=True)
    state = load_file(enc_path)
    result = model.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        print(f"missing {result.missing_keys} unexpected {result.unexpected_keys}")
        return 1
    model.eval()
    ref = load_file(ref_path)
    with torch.no_grad():
        feats = model.forward_features(ref["input"])
    diff = (feats - ref["features"]).abs().max().item()
    scale = ref["features"].abs().max().item()
    print(f"timm features: shape {tuple(feats.shape)}, max abs diff {diff:.3e} (feature scale {scale:.3e})")
    return 0 if feats.shape == ref["features"].shape and diff <= 1e-4 * max(1.0, scale) else 1


if __name__ == "__main__":
    sys.exit(main())
