#!/usr/bin/env python3
"""Reference outputs of torchvision.ops for tests/models/test_detection_ops.cpp.

usage: torchvision_ops_reference.py IN.safetensors OUT.safetensors

IN holds the cases by name:
  roi.<name>.input, .rois, .weight    roi_align's (N, C, H, W) input, (K, 5) rois, and the (K, C, ph, pw) weight
                                      of the loss sum(roi_align(input) * weight)
  roi.<name>.params                   float64 [spatial_scale, pooled_h, pooled_w, sampling_ratio, aligned]
  nms.<name>.boxes, .scores, .params  nms's (K, 4) boxes, (K) scores and [iou_threshold]
  bnms.<name>.boxes, .scores, .idxs, .params   the same for batched_nms, with (K) int64 class indices
OUT gets roi.<name>.output and roi.<name>.grad (the loss's gradient w.r.t. the input), nms.<name>.keep and
bnms.<name>.keep (int64). Exit code 3 when torchvision is not importable (the C++ test skips then)."""
import sys

import torch
from safetensors.torch import load_file, save_file

try:
    from torchvision.ops import batched_nms, nms, roi_align
except ImportError as e:  # pragma: no cover - depends on the venv
    print(f"torchvision is not available: {e}")
    sys.exit(3)


def cases(tensors: dict, prefix: str) -> list:
    return sorted({k.split(".")[1] for k in tensors if k.startswith(prefix + ".")})


def main() -> int:
    tensors = load_file(sys.argv[1])
    out = {}
    for name in cases(tensors, "roi"):
        p = tensors[f"roi.{name}.params"].tolist()
        x = tensors[f"roi.{name}.input"].clone().requires_grad_()
        y = roi_align(x, tensors[f"roi.{name}.rois"], output_size=(int(p[1]), int(p[2])), spatial_scale=p[0],
                      sampling_ratio=int(p[3]), aligned=bool(p[4]))
        (y * tensors[f"roi.{name}.weight"]).sum().backward()
        out[f"roi.{name}.output"] = y.detach().contiguous()
        out[f"roi.{name}.grad"] = x.grad.contiguous()
    for name in cases(tensors, "nms"):
        thr = tensors[f"nms.{name}.params"].tolist()[0]
        out[f"nms.{name}.keep"] = nms(tensors[f"nms.{name}.boxes"], tensors[f"nms.{name}.scores"], thr)
    for name in cases(tensors, "bnms"):
        thr = tensors[f"bnms.{name}.params"].tolist()[0]
        out[f"bnms.{name}.keep"] = batched_nms(tensors[f"bnms.{name}.boxes"], tensors[f"bnms.{name}.scores"],
                                               tensors[f"bnms.{name}.idxs"], thr)
    save_file(out, sys.argv[2])
    return 0


if __name__ == "__main__":
    sys.exit(main())
