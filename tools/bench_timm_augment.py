#!/usr/bin/env python3
"""The timm counterpart of bench/bench_augment.cpp: images/s of MAE's ImageNet fine-tuning input pipeline done
the timm way -- a torchvision ImageFolder (PIL loader) with timm's create_transform(224, is_training=True,
auto_augment='rand-m9-mstd0.5-inc1', re_prob=0.25, re_mode='pixel', interpolation='bicubic') (RandomResizedCrop
0.08-1, flip, RandAugment, ToTensor + Normalize, RandomErasing), batched by a DataLoader with W worker processes,
and timm's Mixup(mixup_alpha=0.8, cutmix_alpha=1.0, label_smoothing=0.1) applied to each batch in the main
process, as timm's train.py and MAE's engine_finetune do. One epoch; the first K batches (worker start-up) are
untimed. Prints one JSON line on stdout, which the C++ benchmark reads.

usage: bench_timm_augment.py --root DIR [--workers W] [--batch B] [--warmup K] [--seed S] [--exclude FILE]
"""
import argparse
import json
import sys
import time

import torch
from PIL import ImageOps
from timm.data import Mixup, auto_augment, create_transform
from torch.utils.data import DataLoader

from bench_common import image_folder


def posterize(img, bits_to_keep, **__):
    """timm's posterize, with 0 bits giving black as Pillow < 11 did (semaim's posterize does the same): Pillow 11+
    refuses 0, which timm's PosterizeIncreasing asks for at level 10 (m9 plus noise reaches it)."""
    if bits_to_keep >= 8:
        return img
    if bits_to_keep <= 0:
        return img.point([0] * 256 * len(img.getbands()))
    return ImageOps.posterize(img, bits_to_keep)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", required=True)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--exclude", default="")
    args = ap.parse_args()
    for name in ("Posterize", "PosterizeIncreasing", "PosterizeOriginal"):
        auto_augment.NAME_TO_OP[name] = posterize  # before create_transform builds its ops
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    tf = create_transform(224, is_training=True, auto_augment="rand-m9-mstd0.5-inc1", re_prob=0.25,
                          re_mode="pixel", interpolation="bicubic")
    ds = image_folder("bench_timm_augment", args.root, args.exclude, tf)
    mixup = Mixup(mixup_alpha=0.8, cutmix_alpha=1.0, label_smoothing=0.1, num_classes=len(ds.classes))
    loader = DataLoader(ds, batch_size=args.batch, shuffle=True, num_workers=args.workers, drop_last=True)
    it = iter(loader)
    for _ in range(args.warmup):
        mixup(*next(it))
    t0 = time.perf_counter()
    n = 0
    for images, labels in it:
        images, targets = mixup(images, labels)
        n += images.shape[0]
    if n == 0:
        print("bench_timm_augment: no batch left to time after the warm-up", file=sys.stderr)
        sys.exit(2)
    rate = n / (time.perf_counter() - t0)
    print(json.dumps({"pipeline": "timm", "workers": args.workers, "batch": args.batch, "files": len(ds),
                      "images_per_s": rate, "transform": repr(tf)}))


if __name__ == "__main__":
    main()
