#!/usr/bin/env python3
"""Small random teachers and their token features for tests/models/test_teacher.cpp.

usage: teacher_reference.py OUTDIR

Writes, with fixed seeds:
  clip_quick.safetensors   an open_clip CLIP (image tower width 64, 2 layers, 4 heads, patch 4 on 32x32,
                           projection to 48; a one-layer text tower) built with quick_gelu=True
  clip_gelu.safetensors    the same shapes with quick_gelu=False (nn.GELU)
  timm.safetensors         a timm VisionTransformer (width 64, 2 blocks, 4 heads, patch 4 on 32x32)
  expected.safetensors     input (2, 3, 32, 32) and, per model, <name>.features: every token as the reference's
                           forward_features_clip / forward_features_dino computes it -- for open_clip, the
                           model's own pooled output (cls) and its ln_post'ed patch tokens, both @ proj;
                           for timm, forward_features. Also input16 (2, 3, 16, 16) and timm.features16, timm's
                           tokens of that smaller image (its grid 4x4, position table resampled).
Exit code 3 when open_clip or timm is not importable (the C++ test skips then)."""
import os
import sys

import torch
from safetensors.torch import save_file

try:
    import open_clip
    from open_clip.model import CLIPTextCfg, CLIPVisionCfg
    from timm.models.vision_transformer import VisionTransformer
except ImportError as e:  # pragma: no cover - depends on the venv
    print(f"open_clip or timm is not available: {e}")
    sys.exit(3)


def perturb_norms(model: torch.nn.Module) -> None:
    # Random LayerNorm affines, so a missing or swapped norm cannot pass unnoticed.
    for m in model.modules():
        if isinstance(m, torch.nn.LayerNorm):
            torch.nn.init.normal_(m.weight, 1.0, 0.2)
            torch.nn.init.normal_(m.bias, 0.0, 0.2)


def clip_model(quick_gelu: bool) -> torch.nn.Module:
    torch.manual_seed(1)
    vision = CLIPVisionCfg(layers=2, width=64, head_width=16, patch_size=4, image_size=32)
    text = CLIPTextCfg(context_length=8, vocab_size=64, width=32, heads=2, layers=1)
    model = open_clip.CLIP(embed_dim=48, vision_cfg=vision, text_cfg=text, quick_gelu=quick_gelu)
    perturb_norms(model)
    with torch.no_grad():  # a non-zero class embedding and position table of visible size
        model.visual.positional_embedding.normal_(0.0, 0.5)
    return model.eval()


def clip_features(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    visual = model.visual
    visual.output_tokens = True
    pooled, tokens = visual(x)  # pooled = ln_post(cls) @ proj; tokens = ln_post(patches)
    return torch.cat([pooled.unsqueeze(1), tokens @ visual.proj], dim=1)


def timm_model() -> torch.nn.Module:
    torch.manual_seed(2)
    model = VisionTransformer(img_size=32, patch_size=4, in_chans=3, embed_dim=64, depth=2, num_heads=4,
                              qkv_bias=True, num_classes=10, dynamic_img_size=True)
    perturb_norms(model)
    with torch.no_grad():
        model.pos_embed.normal_(0.0, 0.5)
        model.cls_token.normal_(0.0, 0.5)
    return model.eval()


def main() -> int:
    out = sys.argv[1]
    torch.manual_seed(0)
    x = torch.randn(2, 3, 32, 32)
    x16 = torch.randn(2, 3, 16, 16)
    expected = {"input": x, "input16": x16}
    with torch.no_grad():
        for name, quick in (("clip_quick", True), ("clip_gelu", False)):
            model = clip_model(quick)
            save_file({k: v.contiguous() for k, v in model.state_dict().items()},
                      os.path.join(out, name + ".safetensors"))
            expected[name + ".features"] = clip_features(model, x)
        vit = timm_model()
        save_file({k: v.contiguous() for k, v in vit.state_dict().items()}, os.path.join(out, "timm.safetensors"))
        expected["timm.features"] = vit.forward_features(x)
        expected["timm.features16"] = vit.forward_features(x16)
    save_file({k: v.contiguous() for k, v in expected.items()}, os.path.join(out, "expected.safetensors"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
