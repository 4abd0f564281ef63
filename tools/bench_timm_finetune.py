#!/usr/bin/env python3
"""The timm / PyTorch counterpart of bench/bench_finetune_step.cpp: images/s of one fine-tuning optimizer step
of timm's VisionTransformer (global_pool='avg' with fc_norm, drop_path_rate 0.1) as MAE's engine_finetune runs
it -- forward, timm SoftTargetCrossEntropy on mixup targets, backward, the gradient norm, torch.optim.AdamW
(fused) over timm.optim.param_groups_layer_decay with each group's lr scale applied -- in fp32 and under
torch.autocast('cpu', dtype=torch.bfloat16), on a fixed random batch. Prints a Markdown table and one JSON
line in the C++ program's format; tools/bench_finetune_compare.sh runs the two alternately.

usage: bench_timm_finetune.py [--model NAME] [--batch B] [--classes K] [--steps N] [--repeats R]
                              [--warmup W] [--threads T] [--precision fp32,bf16] [--layer-decay D]
                              [--drop-path P]
"""
import argparse
import contextlib
import json
import statistics
import sys
import time

import torch
from timm.loss import SoftTargetCrossEntropy
from timm.models.vision_transformer import VisionTransformer
from timm.optim import param_groups_layer_decay

# The encoders of src/models/registry.cpp: (img_size, patch, in_chans, embed_dim, depth, heads).
SIZES = {
    "vit_fmnist_patch4": (28, 4, 1, 128, 4, 4),
    "aim_fmnist_patch4": (28, 4, 1, 128, 4, 4),
    "vit_tiny_patch16": (224, 16, 3, 192, 12, 3),
    "vit_small_patch16": (224, 16, 3, 384, 12, 6),
    "vit_base_patch16": (224, 16, 3, 768, 12, 12),
}


class Step:
    """One precision's model, optimizer and fixed batch; step() is MAE's train_one_epoch body."""

    def __init__(self, args, bf16):
        img, patch, chans, dim, depth, heads = SIZES[args.model]
        torch.manual_seed(0)
        self.model = VisionTransformer(img_size=img, patch_size=patch, in_chans=chans, num_classes=args.classes,
                                       embed_dim=dim, depth=depth, num_heads=heads, mlp_ratio=4.0, qkv_bias=True,
                                       global_pool="avg", drop_path_rate=args.drop_path)
        self.model.train()
        groups = param_groups_layer_decay(self.model, weight_decay=0.05, no_weight_decay_list=("cls_token", "pos_embed"),
                                          layer_decay=args.layer_decay)
        base_lr = 1e-4
        for g in groups:
            g["lr"] = base_lr * g["lr_scale"]
        self.opt = torch.optim.AdamW(groups, lr=base_lr, betas=(0.9, 0.999), eps=1e-8, fused=True)
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.criterion = SoftTargetCrossEntropy()
        self.bf16 = bf16
        self.imgs = torch.randn(args.batch, chans, img, img)
        labels = torch.randint(args.classes, (args.batch,))
        off = 0.1 / args.classes
        y = torch.full((args.batch, args.classes), off).scatter_(1, labels.view(-1, 1), 1.0 - 0.1 + off)
        self.soft = y * 0.7 + y.flip(0) * 0.3  # timm mixup_target at lambda 0.7, smoothing 0.1

    def step(self):
        ctx = torch.autocast("cpu", dtype=torch.bfloat16) if self.bf16 else contextlib.nullcontext()
        with ctx:
            loss = self.criterion(self.model(self.imgs).float(), self.soft)
        if not torch.isfinite(torch.tensor(loss.item())):  # MAE checks loss.item() every step
            raise RuntimeError("non-finite loss")
        loss.backward()
        torch.nn.utils.get_total_norm([p.grad for p in self.params])  # MAE's NativeScaler reports the norm
        self.opt.step()
        self.opt.zero_grad()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="vit_small_patch16", choices=sorted(SIZES))
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--classes", type=int, default=1000)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--precision", default="fp32,bf16")
    ap.add_argument("--layer-decay", type=float, default=0.65)
    ap.add_argument("--drop-path", type=float, default=0.1)
    args = ap.parse_args()
    precisions = args.precision.split(",")
    if any(p not in ("fp32", "bf16") for p in precisions):
        print(f"bench_timm_finetune: --precision takes fp32 and/or bf16, got {args.precision}", file=sys.stderr)
        sys.exit(2)
    torch.set_num_threads(args.threads)
    print(f"timm {args.model}, {args.classes} classes, batch {args.batch}, drop path {args.drop_path}, layer decay "
          f"{args.layer_decay}, {torch.get_num_threads()} threads, {args.steps} steps x {args.repeats} repeats after "
          f"{args.warmup} warm-up\n")
    steps = []
    for p in precisions:
        steps.append(Step(args, p == "bf16"))
        for _ in range(args.warmup):
            steps[-1].step()
    rates = [[] for _ in steps]
    for _ in range(args.repeats):  # round-robin, as the C++ program
        for i, s in enumerate(steps):
            t0 = time.perf_counter()
            for _ in range(args.steps):
                s.step()
            rates[i].append(args.steps * args.batch / (time.perf_counter() - t0))
    print("| precision | images/s (median) | min | max |\n|---|---|---|---|")
    for p, r in zip(precisions, rates):
        print(f"| {p} | {statistics.median(r):.1f} | {min(r):.1f} | {max(r):.1f} |")
    print(json.dumps({"bench": "finetune_step", "impl": "timm", "model": args.model, "batch": args.batch,
                      "threads": torch.get_num_threads(), "rates": dict(zip(precisions, rates))}))


if __name__ == "__main__":
    main()
