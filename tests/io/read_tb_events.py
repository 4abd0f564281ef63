#!/usr/bin/env python3
"""Reads TensorBoard event files with the tensorboard package's own reader (EventAccumulator, which checks
every record's CRC and drops nothing when its size guidance is 0) and prints what it found as JSON:

  {"file_version": 2.0,
   "scalars": {tag: [{"step": int, "wall_time": float, "value": float}, ...]},
   "texts":   {tag: [{"step": int, "wall_time": float, "text": str}, ...]}}

PATH is one event file or a directory holding them (a run directory: all its events.out.tfevents.* files,
merged as TensorBoard merges them). Points are in file order. Non-finite values are the strings "nan",
"inf", "-inf" (JSON has no literal for them). Exit 77 when the tensorboard package is missing, so a caller
can skip; 2 when PATH holds no event file.

usage: read_tb_events.py PATH
"""
import json
import math
import os
import sys


def number(v):
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return v


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    path = sys.argv[1]
    try:
        from tensorboard.backend.event_processing import event_accumulator as ea
    except ImportError as e:
        print(f"the tensorboard package is not installed: {e}", file=sys.stderr)
        return 77
    if not os.path.exists(path):
        print(f"{path}: no such file or directory", file=sys.stderr)
        return 2
    if os.path.isdir(path) and not any("tfevents" in n for n in os.listdir(path)):
        print(f"{path}: no events.out.tfevents.* file", file=sys.stderr)
        return 2

    acc = ea.EventAccumulator(path, size_guidance={ea.SCALARS: 0, ea.TENSORS: 0})
    acc.Reload()
    tags = acc.Tags()
    scalars = {
        tag: [{"step": e.step, "wall_time": e.wall_time, "value": number(e.value)} for e in acc.Scalars(tag)]
        for tag in tags[ea.SCALARS]
    }
    try:
        text_tags = acc.PluginTagToContent("text")
    except KeyError:  # no text in these files
        text_tags = {}
    texts = {}
    for tag in text_tags:
        texts[tag] = []
        for e in acc.Tensors(tag):
            strings = e.tensor_proto.string_val
            if e.tensor_proto.dtype != 7 or len(strings) != 1:  # 7: DT_STRING
                print(f"{tag}: step {e.step} is not one DT_STRING value", file=sys.stderr)
                return 1
            texts[tag].append({"step": e.step, "wall_time": e.wall_time, "text": strings[0].decode("utf-8")})
    out = {"file_version": acc.file_version, "scalars": scalars, "texts": texts}
    json.dump(out, sys.stdout, allow_nan=False)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
