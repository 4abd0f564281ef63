#!/usr/bin/env python3
"""timm's batch-mode Mixup / CutMix at fixed lambdas and boxes, for tests/data/test_mixup.cpp.

usage: timm_mixup_reference.py IN.json OUT.json

IN holds `images` ({"shape": [B, C, H, W], "data": flat float32 values}), `labels` (B ints) and
  cases    JSON list of {name, lam, cutmix, box: [y0, y1, x0, x1], minmax: null | [min, max], correct_lam,
           smoothing, num_classes}: timm.data.mixup.Mixup (mode 'batch') is called on a copy of the batch with
           its per-batch draw fixed to (lam, cutmix) and its box function returning `box`.
  bboxes   JSON list of {name, h, w, lam, cy, cx}: timm's rand_bbox with numpy's draws fixed to (cy, cx).
  minmax   JSON list of {name, h, w, minmax, draws}: that many rand_bbox_minmax boxes from numpy seed 0.
OUT gets (floats as JSON numbers, exact for float32)
  images.<case>, soft.<case>, lam.<case>  the mixed images and soft targets (flat), the lambda of mixup_target
  bbox.<name>                             [y0, y1, x0, x1]
  minmax.<name>                           `draws` boxes [y0, y1, x0, x1]
Exit code 3 when timm is not importable (the C++ test skips then)."""
import json
import sys

import numpy as np
import torch

try:
    import timm.data.mixup as tm
except ImportError as e:  # pragma: no cover - depends on the venv
    print(f"timm is not available: {e}")
    sys.exit(3)


def run_case(case: dict, images: torch.Tensor, labels: torch.Tensor) -> dict:
    mix = tm.Mixup(mixup_alpha=1.0, cutmix_alpha=1.0 if case["cutmix"] else 0.0, cutmix_minmax=case["minmax"],
                   prob=1.0, switch_prob=0.5, mode="batch", correct_lam=case["correct_lam"],
                   label_smoothing=case["smoothing"], num_classes=case["num_classes"])
    mix._params_per_batch = lambda: (case["lam"], case["cutmix"])
    box = tuple(np.int64(v) for v in case["box"])
    seen = {}
    saved = tm.rand_bbox, tm.rand_bbox_minmax, tm.mixup_target
    tm.rand_bbox = lambda img_shape, lam, margin=0.0, count=None: box
    tm.rand_bbox_minmax = lambda img_shape, minmax, count=None: box

    def recording_target(target, num_classes, lam=1.0, smoothing=0.0, multi_label=False):
        seen["lam"] = lam
        return saved[2](target, num_classes, lam, smoothing, multi_label)

    tm.mixup_target = recording_target
    try:
        x, soft = mix(images.clone(), labels.clone())
    finally:
        tm.rand_bbox, tm.rand_bbox_minmax, tm.mixup_target = saved
    name = case["name"]
    return {f"images.{name}": x.flatten().tolist(), f"soft.{name}": soft.flatten().tolist(),
            f"lam.{name}": float(seen["lam"])}


def run_bbox(case: dict) -> dict:
    draws = iter([case["cy"], case["cx"]])
    saved = np.random.randint
    np.random.randint = lambda low, high=None, size=None: next(draws)
    try:
        box = tm.rand_bbox((case["h"], case["w"]), case["lam"])
    finally:
        np.random.randint = saved
    return {f"bbox.{case['name']}": [int(v) for v in box]}


def run_minmax(case: dict) -> dict:
    np.random.seed(0)
    boxes = [[int(v) for v in tm.rand_bbox_minmax((case["h"], case["w"]), case["minmax"])]
             for _ in range(case["draws"])]
    return {f"minmax.{case['name']}": boxes}


def main() -> int:
    in_path, out_path = sys.argv[1], sys.argv[2]
    with open(in_path) as f:
        inp = json.load(f)
    images = torch.tensor(inp["images"]["data"], dtype=torch.float32).reshape(inp["images"]["shape"])
    labels = torch.tensor(inp["labels"], dtype=torch.int64)
    out = {}
    for case in inp["cases"]:
        out.update(run_case(case, images, labels))
    for case in inp["bboxes"]:
        out.update(run_bbox(case))
    for case in inp["minmax"]:
        out.update(run_minmax(case))
    with open(out_path, "w") as f:
        json.dump(out, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
