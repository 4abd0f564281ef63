#!/usr/bin/env python3
"""Reference outputs of timm's VisionTransformer for tests/models/test_vit.cpp.

usage: timm_vit_reference.py IN.safetensors OUT.safetensors

IN holds the encoder's weights under timm's keys, input images under `input.<name>`, and in its metadata
`arch` (the encoder size, JSON), `cases` (forward_intermediates calls, JSON list) and `resample` (target grids
for resample_abs_pos_embed of the weights' pos_embed, JSON list). OUT gets, computed by timm in eval mode with
dynamic_img_size=True:
  features.<input>                 forward_features
  case.<name>.features             forward_intermediates' final tokens (absent when intermediates_only)
  case.<name>.inter.<k>            its k-th intermediate
  case.<name>.prefix.<k>           its k-th prefix token (when return_prefix_tokens)
  resample.<h>x<w>                 resample_abs_pos_embed(pos_embed, (h, w), old grid)
  dpr                              each block's drop-path rate (0 where timm builds an Identity)
Exit code 3 when timm is not importable (the C++ test skips then)."""
import json
import sys

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

try:
    from timm.layers import resample_abs_pos_embed
    from timm.models.vision_transformer import VisionTransformer
except ImportError as e:  # pragma: no cover - depends on the venv
    print(f"timm is not available: {e}")
    sys.exit(3)


def build(arch: dict) -> VisionTransformer:
    return VisionTransformer(img_size=arch["img_size"], patch_size=arch["patch_size"], in_chans=arch["in_chans"],
                             embed_dim=arch["embed_dim"], depth=arch["depth"], num_heads=arch["num_heads"],
                             mlp_ratio=arch["mlp_ratio"], qkv_bias=True, num_classes=0, class_token=True,
                             drop_path_rate=arch["drop_path_rate"], dynamic_img_size=True)


def main() -> int:
    in_path, out_path = sys.argv[1], sys.argv[2]
    with safe_open(in_path, "pt") as f:
        meta = f.metadata()
    arch, cases, grids = json.loads(meta["arch"]), json.loads(meta["cases"]), json.loads(meta["resample"])
    tensors = load_file(in_path)
    inputs = {k[len("input."):]: v for k, v in tensors.items() if k.startswith("input.")}
    weights = {k: v for k, v in tensors.items() if not k.startswith("input.")}
    model = build(arch)
    model.load_state_dict(weights, strict=True)
    model.eval()

    out = {}
    with torch.no_grad():
        for name, x in inputs.items():
            out[f"features.{name}"] = model.forward_features(x)
        for case in cases:
            result = model.forward_intermediates(
                inputs[case["input"]], indices=case["indices"], norm=case["norm"], output_fmt=case["output_fmt"],
                return_prefix_tokens=case["return_prefix_tokens"], intermediates_only=case["intermediates_only"],
                stop_early=case["stop_early"])
            features, inter = (None, result) if case["intermediates_only"] else result
            if features is not None:
                out[f"case.{case['name']}.features"] = features
            for k, item in enumerate(inter):
                y, prefix = item if case["return_prefix_tokens"] else (item, None)
                out[f"case.{case['name']}.inter.{k}"] = y
                if prefix is not None:
                    out[f"case.{case['name']}.prefix.{k}"] = prefix
        old = [arch["img_size"] // arch["patch_size"]] * 2
        for h, w in grids:
            out[f"resample.{h}x{w}"] = resample_abs_pos_embed(weights["pos_embed"], new_size=[h, w], old_size=old,
                                                              num_prefix_tokens=1)
    out["dpr"] = torch.tensor([getattr(b.drop_path1, "drop_prob", 0.0) for b in model.blocks], dtype=torch.float64)
    save_file({k: v.contiguous() for k, v in out.items()}, out_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
