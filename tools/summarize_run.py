#!/usr/bin/env python3
"""Prints the quickstart summary table of a run directory (pretrain_summary.json, linprobe*.json, knn*.json) and
of its two fine-tuning runs (finetune_summary.json)."""
import argparse
import json
import pathlib
import sys


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("run_dir")
    ap.add_argument("--pretrain-seconds", type=float, default=None)
    ap.add_argument("--probe-seconds", type=float, default=None)
    ap.add_argument("--knn-seconds", type=float, default=None)
    ap.add_argument("--finetune-seconds", type=float, default=None)
    ap.add_argument("--finetune-dir", default=None)
    ap.add_argument("--finetune-random-dir", default=None)
    a = ap.parse_args()
    d = pathlib.Path(a.run_dir)
    try:
        pre = json.loads((d / "pretrain_summary.json").read_text())
        lp = json.loads((d / "linprobe.json").read_text())
        rnd = json.loads((d / "linprobe_random.json").read_text())
        knn = json.loads((d / "knn.json").read_text()) if (d / "knn.json").exists() else None
        knn_rnd = json.loads((d / "knn_random.json").read_text()) if (d / "knn_random.json").exists() else None
        ft = json.loads((pathlib.Path(a.finetune_dir) / "finetune_summary.json").read_text()) if a.finetune_dir else None
        ft_rnd = (json.loads((pathlib.Path(a.finetune_random_dir) / "finetune_summary.json").read_text())
                  if a.finetune_random_dir else None)
    except (OSError, json.JSONDecodeError) as e:
        print(f"summarize_run: {e}", file=sys.stderr)
        return 2
    rows = [
        ("pretraining loss, first logged window", f"{pre['first_loss']:.4f}"),
        ("pretraining loss, last logged window", f"{pre['last_loss']:.4f}"),
        ("pretraining throughput (images/s)", f"{pre['images_per_sec']:.1f}"),
        ("optimizer steps", f"{pre['steps']}"),
        ("linear probe top-1, pretrained encoder", f"{lp['top1_percent']:.2f}%"),
        ("linear probe top-1, random-init encoder", f"{rnd['top1_percent']:.2f}%"),
    ]
    for name, res in (("pretrained", knn), ("random-init", knn_rnd)):
        if res:
            k = "20" if "20" in res["k"] else sorted(res["k"], key=int)[0]
            rows.append((f"k-NN top-1 (k={k}), {name} encoder", f"{res['k'][k]['top1_percent']:.2f}%"))
    for name, res in (("pretrained", ft), ("random-init", ft_rnd)):
        if res:
            rows.append((f"fine-tuning top-1, {name} encoder", f"{res['top1']:.2f}%"))
    if a.pretrain_seconds is not None:
        rows.append(("pretraining wall time", f"{a.pretrain_seconds / 60:.1f} min"))
    if a.probe_seconds is not None:
        rows.append(("both linear probes wall time", f"{a.probe_seconds / 60:.1f} min"))
    if a.knn_seconds is not None:
        rows.append(("both k-NN evaluations wall time", f"{a.knn_seconds / 60:.1f} min"))
    if a.finetune_seconds is not None:
        rows.append(("both fine-tunings wall time", f"{a.finetune_seconds / 60:.1f} min"))
    w = max(len(r[0]) for r in rows)
    print(f"\n| {'quantity'.ljust(w)} | value |\n|{'-' * (w + 2)}|-------|")
    for k, v in rows:
        print(f"| {k.ljust(w)} | {v} |")
    print(f"\n(run directory: {d}; model {pre.get('model')}, ordering {pre.get('ordering')})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
