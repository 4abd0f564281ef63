#!/usr/bin/env python3
"""The torchvision baseline of bench/bench_data_pipeline.cpp: images/s of SemAIM's pretraining input pipeline
done the PyTorch way -- ImageFolder (PIL loader, convert("RGB")) + RandomResizedCrop(size, scale (0.2, 1),
bicubic) + RandomHorizontalFlip + ToTensor + Normalize(ImageNet), batched by a DataLoader with W worker
processes (shuffle, drop_last, persistent workers). Warm-up batches (worker start-up included) are not timed.
The C++ benchmark runs this script with the same root, batch, size and worker count and reads the one JSON
line it prints on stdout.

usage: bench_torchvision_pipeline.py --root DIR [--threads W] [--batch B] [--size S] [--batches N]
                                     [--warmup K] [--repeats R] [--exclude FILE]
"""
import argparse
import json
import statistics
import sys
import time

import torch
from torch.utils.data import DataLoader
from torchvision import transforms
from torchvision.transforms import InterpolationMode

from bench_common import image_folder


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", required=True)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--batches", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--exclude", default="")
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    tf = transforms.Compose([
        transforms.RandomResizedCrop(args.size, scale=(0.2, 1.0), interpolation=InterpolationMode.BICUBIC),
        transforms.RandomHorizontalFlip(),
        transforms.ToTensor(),
        transforms.Normalize(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)),
    ])
    ds = image_folder("bench_torchvision_pipeline", args.root, args.exclude, tf)
    loader = DataLoader(ds, batch_size=args.batch, shuffle=True, num_workers=args.threads, drop_last=True,
                        persistent_workers=args.threads > 0, pin_memory=False)
    it = iter(loader)

    def next_batch():
        nonlocal it
        try:
            return next(it)
        except StopIteration:  # a new epoch when the folder holds fewer images than the run needs
            it = iter(loader)
            return next(it)

    runs = []
    for r in range(args.repeats):
        for _ in range(args.warmup):
            next_batch()
        t0 = time.perf_counter()
        n = 0
        for _ in range(args.batches):
            images, _labels = next_batch()
            n += images.shape[0]
        runs.append(n / (time.perf_counter() - t0))
        print(f"repeat {r}: {runs[-1]:.1f} img/s", file=sys.stderr)
    print(json.dumps({"pipeline": "torchvision", "threads": args.threads, "batch": args.batch, "size": args.size,
                      "images_per_s": statistics.median(runs), "runs": runs, "files": len(ds)}))


if __name__ == "__main__":
    main()
