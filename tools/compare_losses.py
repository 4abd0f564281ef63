#!/usr/bin/env python3
"""Loss curves of two or more runs side by side, from each run directory's metrics.jsonl (the training loss the
run logged at each logged step, averaged over the logging window).

usage: compare_losses.py RUN_DIR [RUN_DIR ...] [--every N] [--names a,b]
Prints a Markdown table: step, each run's loss at that step, and (for two runs) the difference second - first,
then the largest absolute and relative difference over the common steps. Exit 2 on a missing or unreadable
metrics.jsonl (naming the file and line).
"""
import argparse
import json
import pathlib
import sys


def read_losses(run_dir: pathlib.Path) -> dict:
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    losses = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}:{n}: not JSON ({e})") from None
        if "loss" in rec and "step" in rec:
            losses[int(rec["step"])] = float(rec["loss"])  # a resumed run's later record wins
    if not losses:
        raise ValueError(f"{path}: no record with both 'step' and 'loss'")
    return losses


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--every", type=int, default=1, help="print every N-th common logged step (and the last)")
    ap.add_argument("--names", default="", help="comma-separated column names (default: the run directories)")
    a = ap.parse_args()
    names = a.names.split(",") if a.names else a.runs
    if len(names) != len(a.runs) or a.every < 1:
        print("compare_losses: --names needs one name per run and --every >= 1", file=sys.stderr)
        return 2
    try:
        curves = [read_losses(pathlib.Path(r)) for r in a.runs]
    except ValueError as e:
        print(f"compare_losses: {e}", file=sys.stderr)
        return 2
    steps = sorted(set.intersection(*(set(c) for c in curves)))
    if not steps:
        print("compare_losses: the runs have no logged step in common", file=sys.stderr)
        return 2
    pair = len(curves) == 2
    print("| step | " + " | ".join(names) + (" | difference |" if pair else " |"))
    print("|---:|" + "---:|" * (len(curves) + (1 if pair else 0)))
    shown = steps[:: a.every] + ([steps[-1]] if (len(steps) - 1) % a.every else [])
    for s in shown:
        cells = [f"{c[s]:.4f}" for c in curves]
        if pair:
            cells.append(f"{curves[1][s] - curves[0][s]:+.4f}")
        print(f"| {s} | " + " | ".join(cells) + " |")
    if pair:
        diffs = [abs(curves[1][s] - curves[0][s]) for s in steps]
        rel = [abs(curves[1][s] - curves[0][s]) / abs(curves[0][s]) for s in steps if curves[0][s] != 0]
        print(f"\n{len(steps)} common logged steps; largest difference {max(diffs):.4f} "
              f"({100 * max(rel):.2f}% of the first run's loss)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
