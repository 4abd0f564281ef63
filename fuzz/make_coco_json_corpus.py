#!/usr/bin/env python3
"""Writes the seed corpus of fuzz_coco_json (fuzz/corpus/coco_json/): small valid COCO instances files with
polygons, compressed and uncompressed RLE and crowd regions, an excerpt of fmnist-det when it is built, files with
degenerate annotations, and broken ones. Needs pycocotools (tools/setup.sh's venv).
Usage: make_coco_json_corpus.py OUT_DIR [FMNIST_DET_DIR]"""
import copy
import json
import pathlib
import sys

import numpy as np
from pycocotools import mask as mask_util


def rect(h, w, y0, y1, x0, x1):
    m = np.zeros((h, w), np.uint8)
    m[y0:y1, x0:x1] = 1
    return m


def uncompressed(m):
    flat = m.T.reshape(-1).astype(np.int8)
    bounds = np.concatenate([[0], np.flatnonzero(np.diff(flat)) + 1, [flat.size]])
    counts = np.diff(bounds).tolist()
    return {"size": list(m.shape), "counts": ([0] if flat[0] else []) + counts}


def compressed(m):
    r = mask_util.encode(np.asfortranarray(m))
    return {"size": r["size"], "counts": r["counts"].decode("ascii")}


def small():
    return {
        "images": [{"id": 1, "file_name": "a.jpg", "height": 30, "width": 40},
                   {"id": 5, "file_name": "b.jpg", "height": 20, "width": 20},
                   {"id": 9, "file_name": "c.jpg", "height": 24, "width": 32}],
        "categories": [{"id": 7, "name": "seven"}, {"id": 3, "name": "three"}, {"id": 11, "name": "eleven"}],
        "annotations": [
            {"id": 10, "image_id": 1, "category_id": 7, "bbox": [2, 3, 10, 8], "area": 80, "iscrowd": 0,
             "segmentation": [[2, 3, 12, 3, 12, 11, 2, 11], [20, 20, 25, 20, 22, 26]]},
            {"id": 11, "image_id": 1, "category_id": 3, "bbox": [20, 5, 4, 3], "area": 12, "iscrowd": 0,
             "segmentation": compressed(rect(30, 40, 5, 8, 20, 24))},
            {"id": 12, "image_id": 1, "category_id": 11, "bbox": [0, 20, 40, 10], "area": 400, "iscrowd": 1,
             "segmentation": uncompressed(rect(30, 40, 20, 30, 0, 40))},
            {"id": 13, "image_id": 5, "category_id": 7, "bbox": [0, 0, 5, 5], "area": 25, "iscrowd": 1,
             "segmentation": uncompressed(rect(20, 20, 0, 5, 0, 5))},
            {"id": 14, "image_id": 9, "category_id": 11, "bbox": [1, 2, 3, 4], "area": 12, "iscrowd": 0,
             "segmentation": uncompressed(rect(24, 32, 2, 6, 1, 4))}]}


def edited(change):
    j = small()
    change(j)
    return j


def main():
    out = pathlib.Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    files = {
        "valid-small.json": small(),
        "valid-boxes-only.json": edited(lambda j: [a.pop("segmentation") for a in j["annotations"]]),
        "degenerate-drops.json": edited(lambda j: (j["annotations"][0].update(bbox=[2, 3, 0, 8]),
                                                   j["annotations"][4].update(segmentation=[[1, 2, 3, 4]]),
                                                   j["annotations"][1].update(bbox=[37.5, 5, 3, 3]))),
        "broken-unknown-image.json": edited(lambda j: j["annotations"][0].update(image_id=2)),
        "broken-unknown-category.json": edited(lambda j: j["annotations"][1].update(category_id=4)),
        "broken-bbox-outside.json": edited(lambda j: j["annotations"][0].update(bbox=[30, 3, 20, 8])),
        "broken-empty-polygon.json": edited(lambda j: j["annotations"][0].update(segmentation=[[]])),
        "broken-rle-size.json": edited(lambda j: j["annotations"][1]["segmentation"].update(size=[30, 41])),
        "broken-rle-string.json": edited(lambda j: j["annotations"][1]["segmentation"].update(counts="0~~~")),
        "broken-rle-sum.json": edited(lambda j: j["annotations"][2]["segmentation"].update(counts=[5, 7])),
        "broken-string-id.json": edited(lambda j: j["images"][0].update(id="1")),
        "broken-huge-image.json": edited(lambda j: j["images"][0].update(height=1 << 40)),
    }
    det = pathlib.Path(sys.argv[2]) if len(sys.argv) > 2 else None
    if det and (det / ".complete").exists():
        val = json.loads((det / "annotations" / "instances_val.json").read_text())
        keep = {im["id"] for im in val["images"][:4]}
        files["fmnist-det-val-4.json"] = {"images": val["images"][:4], "categories": val["categories"],
                                          "annotations": [a for a in val["annotations"] if a["image_id"] in keep]}
    for name, j in files.items():
        (out / name).write_text(json.dumps(j, separators=(",", ":")))
    (out / "broken-truncated.json").write_text(json.dumps(small())[:200])


if __name__ == "__main__":
    sys.exit(main())
