#!/usr/bin/env python3
"""The pycocotools side of bench/bench_detect.cpp --mode eval: writes a COCO ground truth and a results file at
COCO val scale (`make`), and times pycocotools scoring them (`time`): COCO(gt), loadRes, COCOeval evaluate,
accumulate and summarize, per iou type, as detectron2's COCOEvaluator runs it.

`make` writes OUT_DIR/gt.json and OUT_DIR/results.json: images of COCO's shapes (longer side 640), non-contiguous
category ids, a Poisson number of objects per image (small / medium / large in COCO's proportions) with polygon
masks, a few crowd regions as uncompressed RLE, and a fixed number of detections per image with boxes and
compressed-RLE masks: jittered copies of the ground truth (sometimes of the wrong category) and false positives,
with many score ties. `time` prints one JSON line: per iou type the seconds each run took and the 12 stats.

usage: bench_coco_eval.py make OUT_DIR [--images N] [--categories K] [--objects M] [--detections D] [--seed S]
       bench_coco_eval.py time GT.json RESULTS.json [--iou-types bbox,segm] [--runs R]
Exit code 3: pycocotools is missing.
"""
import argparse
import contextlib
import importlib.metadata
import io
import json
import os
import sys
import time

import numpy as np

try:
    from pycocotools import mask as mask_utils
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
except ImportError as e:
    print(f"bench_coco_eval: pycocotools is not importable: {e}", file=sys.stderr)
    sys.exit(3)


def star_polygon(rng, x, y, w, h):
    """A star-shaped polygon inside the box (x, y, w, h), 10-30 vertices, coordinates with 2 decimals."""
    n = int(rng.integers(10, 31))
    ang = np.sort(rng.uniform(0, 2 * np.pi, n))
    rad = rng.uniform(0.7, 1.0, n)
    xs = x + w / 2 + rad * np.cos(ang) * w / 2
    ys = y + h / 2 + rad * np.sin(ang) * h / 2
    return [round(float(v), 2) for v in np.stack([xs, ys], 1).ravel()]


def object_box(rng, H, W):
    """A box of COCO's size mix (about 41% small, 34% medium, 25% large) and aspect 1:2-2:1 inside H x W."""
    side = rng.choice([(3.0, 32.0), (32.0, 96.0), (96.0, float(min(H, W)))], p=[0.41, 0.34, 0.25])
    s = float(rng.uniform(*side))
    r = float(np.exp(rng.uniform(np.log(0.5), np.log(2.0))))
    w, h = min(s * np.sqrt(r), W - 1.0), min(s / np.sqrt(r), H - 1.0)
    return [float(rng.uniform(0, W - w)), float(rng.uniform(0, H - h)), w, h]


def run_lengths(m):
    """Uncompressed RLE counts of a mask (column-major runs starting with zeros), as COCO's crowd annotations."""
    flat = m.ravel(order="F").astype(np.int64)
    edges = np.concatenate([[0], np.flatnonzero(np.diff(flat)) + 1, [flat.size]])
    runs = np.diff(edges).tolist()
    return [0] + runs if flat[0] == 1 else runs


def make_gt(rng, n_images, cat_ids, objects):
    images, anns, polys = [], [], {}
    for i in range(n_images):
        H, W = (480, 640) if rng.random() < 0.5 else (640, 480)
        H, W = (H, int(rng.integers(360, 641))) if H == 640 else (int(rng.integers(360, 641)), W)
        img_id = int(1000 + 7 * i)
        images.append({"id": img_id, "height": H, "width": W, "file_name": f"{img_id:012d}.jpg"})
        for _ in range(max(1, int(rng.poisson(objects)))):
            box = object_box(rng, H, W)
            ann = {"id": len(anns) + 1, "image_id": img_id, "category_id": int(rng.choice(cat_ids)),
                   "bbox": [round(v, 2) for v in box]}
            if rng.random() < 0.01:  # a crowd region, as COCO stores them
                x, y, w, h = box
                m = np.zeros((H, W), np.uint8)
                m[int(y):int(y + h) + 1, int(x):int(x + w) + 1] = 1
                ann.update(iscrowd=1, segmentation={"size": [H, W], "counts": run_lengths(m)},
                           area=float(m.sum()))
            else:
                poly = star_polygon(rng, *box)
                rle = mask_utils.merge(mask_utils.frPyObjects([poly], H, W))
                ann.update(iscrowd=0, segmentation=[poly], area=float(mask_utils.area(rle)))
                polys[ann["id"]] = (box, poly)
            anns.append(ann)
    cats = [{"id": int(c), "name": f"class{c}", "supercategory": "thing"} for c in cat_ids]
    return {"images": images, "annotations": anns, "categories": cats}, polys


def detection(rng, img, cat, box, score, like=None):
    """A result with `box` and a compressed-RLE mask: `like` (a ground truth's box and polygon) moved onto box,
    else a new polygon."""
    x, y, w, h = box
    if like is None:
        poly = star_polygon(rng, x, y, w, h)
    else:
        (px, py, pw, ph), xy = like[0], np.array(like[1]).reshape(-1, 2)
        poly = ((xy - [px, py]) / [pw, ph] * [w, h] + [x, y]).ravel().tolist()
    rle = mask_utils.merge(mask_utils.frPyObjects([poly], img["height"], img["width"]))
    return {"image_id": img["id"], "category_id": int(cat), "bbox": [round(v, 2) for v in box],
            "score": score, "segmentation": {"size": [int(v) for v in rle["size"]],
                                             "counts": rle["counts"].decode()}}


def make_detections(rng, gt, polys, cat_ids, per_image):
    by_image = {}
    for a in gt["annotations"]:
        by_image.setdefault(a["image_id"], []).append(a)
    dts = []
    for img in gt["images"]:
        mine = []
        for a in by_image.get(img["id"], []):
            if a["iscrowd"] or rng.random() < 0.1:
                continue
            for _ in range(int(rng.integers(1, 4))):
                x, y, w, h = a["bbox"]
                j = rng.normal(0, 0.08, 4) * [w, h, w, h]
                box = [max(0.0, x + j[0]), max(0.0, y + j[1]), max(1.0, w + j[2]), max(1.0, h + j[3])]
                cat = a["category_id"] if rng.random() < 0.85 else int(rng.choice(cat_ids))
                score = float(round(rng.beta(4, 2), 3))
                mine.append(detection(rng, img, cat, box, score, polys.get(a["id"])))
        mine = mine[:per_image]
        present = [a["category_id"] for a in by_image.get(img["id"], [])]
        while len(mine) < per_image:  # false positives, half of them of a category the image has
            cat = rng.choice(present) if present and rng.random() < 0.5 else rng.choice(cat_ids)
            score = float(round(rng.beta(1, 6), 3))  # three decimals: many ties
            mine.append(detection(rng, img, cat, object_box(rng, img["height"], img["width"]), score))
        dts.extend(mine)
    return dts


def make(args):
    rng = np.random.default_rng(args.seed)
    # COCO's ids run 1..90 with gaps
    cat_ids = sorted(int(c) for c in rng.choice(np.arange(1, max(91, args.categories + 1)), args.categories,
                                                replace=False))
    gt, polys = make_gt(rng, args.images, cat_ids, args.objects)
    dts = make_detections(rng, gt, polys, cat_ids, args.detections)
    os.makedirs(args.out_dir, exist_ok=True)
    for name, doc in (("gt", gt), ("results", dts)):
        with open(os.path.join(args.out_dir, name + ".json"), "w") as f:
            json.dump(doc, f)
    crowd = sum(a["iscrowd"] for a in gt["annotations"])
    print(json.dumps({"images": len(gt["images"]), "categories": len(cat_ids), "annotations": len(gt["annotations"]),
                      "crowd": crowd, "detections": len(dts)}))


def score(gt_path, res_path, iou_type):
    """Seconds to load, evaluate, accumulate and summarize, and the 12 stats."""
    sink = io.StringIO()
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(sink):
        gt = COCO(gt_path)
        ev = COCOeval(gt, gt.loadRes(res_path), iou_type)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return time.perf_counter() - t0, [float(s) for s in ev.stats]


def time_runs(args):
    out = {"pycocotools": importlib.metadata.version("pycocotools"), "numpy": np.__version__}
    for iou_type in args.iou_types.split(","):
        if iou_type not in ("bbox", "segm"):
            print(f"bench_coco_eval: --iou-types: bbox or segm, got '{iou_type}'", file=sys.stderr)
            sys.exit(2)
        runs = [score(args.gt, args.results, iou_type) for _ in range(args.runs)]
        out[iou_type] = {"seconds": [r[0] for r in runs], "stats": runs[-1][1]}
    print(json.dumps(out))


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    mk = sub.add_parser("make")
    mk.add_argument("out_dir")
    mk.add_argument("--images", type=int, default=500)
    mk.add_argument("--categories", type=int, default=80)
    mk.add_argument("--objects", type=float, default=7.0)
    mk.add_argument("--detections", type=int, default=100)
    mk.add_argument("--seed", type=int, default=0)
    tm = sub.add_parser("time")
    tm.add_argument("gt")
    tm.add_argument("results")
    tm.add_argument("--iou-types", default="bbox,segm")
    tm.add_argument("--runs", type=int, default=1)
    args = ap.parse_args()
    if args.cmd == "make":
        if args.images < 1 or args.categories < 1 or args.detections < 1 or args.objects <= 0:
            print("bench_coco_eval: --images, --categories, --detections and --objects must be positive",
                  file=sys.stderr)
            sys.exit(2)
        make(args)
    else:
        if args.runs < 1:
            print("bench_coco_eval: --runs must be positive", file=sys.stderr)
            sys.exit(2)
        time_runs(args)


if __name__ == "__main__":
    main()
