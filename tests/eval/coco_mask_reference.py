"""pycocotools.mask on random masks, polygons, boxes and uncompressed RLEs, for tests/data/test_coco_mask.cpp.

Writes one JSON file: per case the input (mask pixels row-major, polygons, counts) and what pycocotools returns
(compressed strings, areas, boxes, merges, IoU matrices with crowd flags). Exit code 3: pycocotools is missing.
Usage: coco_mask_reference.py OUT.json SEED
"""
import json
import sys

import numpy as np

try:
    from pycocotools import mask as mask_utils
except ImportError as e:  # the C++ test skips with this reason
    print(f"pycocotools is not importable: {e}")
    sys.exit(3)


def text(rle):
    c = rle["counts"]
    return c.decode() if isinstance(c, bytes) else c


def run_lengths(m):
    """Column-major runs starting with zeros, computed independently of pycocotools."""
    flat = np.asfortranarray(m).ravel(order="F").astype(np.int64)
    change = np.flatnonzero(np.diff(flat)) + 1
    edges = np.concatenate([[0], change, [flat.size]])
    runs = np.diff(edges).tolist()
    if flat.size and flat[0] == 1:
        runs = [0] + runs
    return runs if flat.size else [0]


def random_mask(rng, h, w):
    kind = rng.integers(0, 5)
    if kind == 0:
        return np.zeros((h, w), np.uint8)
    if kind == 1:
        return np.ones((h, w), np.uint8)
    if kind == 2:
        return (rng.random((h, w)) < rng.random()).astype(np.uint8)
    m = np.zeros((h, w), np.uint8)
    for _ in range(rng.integers(1, 4)):
        y0, x0 = rng.integers(0, h), rng.integers(0, w)
        m[y0:y0 + rng.integers(1, h + 1), x0:x0 + rng.integers(1, w + 1)] = 1
    return m


def random_polygon(rng, h, w):
    n = int(rng.integers(3, 12))
    cx, cy = rng.uniform(-2, w + 2), rng.uniform(-2, h + 2)
    ang = np.sort(rng.uniform(0, 2 * np.pi, n))
    rad = rng.uniform(0.2, max(h, w) * 0.7, n)
    xs, ys = cx + rad * np.cos(ang), cy + rad * np.sin(ang)
    if rng.random() < 0.3:  # self-intersecting order
        perm = rng.permutation(n)
        xs, ys = xs[perm], ys[perm]
    decimals = int(rng.choice([0, 1, 2, 6]))
    xy = np.stack([xs, ys], 1).ravel().round(decimals)
    return [float(v) for v in xy]


def mask_cases(rng, out):
    for _ in range(150):
        h, w = int(rng.integers(1, 40)), int(rng.integers(1, 40))
        m = random_mask(rng, h, w)
        rle = mask_utils.encode(np.asfortranarray(m))
        out.append({"h": h, "w": w, "pixels": m.ravel().tolist(), "runs": run_lengths(m), "string": text(rle),
                    "area": int(mask_utils.area(rle)), "bbox": mask_utils.toBbox(rle).tolist()})


def polygon_cases(rng, out):
    for i in range(200):
        h, w = int(rng.integers(1, 80)), int(rng.integers(1, 80))
        polys = [random_polygon(rng, h, w) for _ in range(rng.integers(1, 4))]
        if i % 10 == 0:  # a later polygon of 1 or 2 points is rasterized as a point or a segment
            polys.append([float(v) for v in rng.uniform(-3, 40, 2 * rng.integers(1, 3)).round(1)])
        rles = mask_utils.frPyObjects(polys, h, w)
        merged = mask_utils.merge(rles)
        out.append({"h": h, "w": w, "polygons": polys, "strings": [text(r) for r in rles], "merged": text(merged),
                    "intersect": text(mask_utils.merge(rles, intersect=1)), "area": int(mask_utils.area(merged)),
                    "bbox": mask_utils.toBbox(merged).tolist(),
                    "decoded": mask_utils.decode(merged).ravel().tolist()})


def iou_cases(rng, out):
    for _ in range(60):
        h, w = int(rng.integers(5, 60)), int(rng.integers(5, 60))
        dt = [mask_utils.frPyObjects([random_polygon(rng, h, w)], h, w)[0] for _ in range(rng.integers(0, 6))]
        gt = [mask_utils.encode(np.asfortranarray(random_mask(rng, h, w))) for _ in range(rng.integers(0, 6))]
        crowd = [int(v) for v in rng.integers(0, 2, len(gt))]
        iou = mask_utils.iou(dt, gt, crowd)
        dbox = [[float(v) for v in np.r_[rng.uniform(-5, w, 2), rng.uniform(0, w, 2)]] for _ in dt]
        gbox = [[float(v) for v in np.r_[rng.uniform(-5, w, 2), rng.uniform(0, w, 2)]] for _ in gt]
        biou = mask_utils.iou(dbox, gbox, crowd)
        out.append({"h": h, "w": w, "dt": [text(r) for r in dt], "gt": [text(r) for r in gt], "iscrowd": crowd,
                    "iou": np.asarray(iou, np.float64).ravel().tolist(), "dt_boxes": dbox, "gt_boxes": gbox,
                    "box_iou": np.asarray(biou, np.float64).ravel().tolist()})


def uncompressed_cases(rng, out):
    for _ in range(30):
        h, w = int(rng.integers(1, 30)), int(rng.integers(1, 30))
        runs = run_lengths(random_mask(rng, h, w))
        rle = mask_utils.frPyObjects({"counts": runs, "size": [h, w]}, h, w)
        out.append({"h": h, "w": w, "counts": runs, "string": text(rle)})


def main():
    rng = np.random.default_rng(int(sys.argv[2]))
    doc = {"masks": [], "polygons": [], "ious": [], "uncompressed": []}
    mask_cases(rng, doc["masks"])
    polygon_cases(rng, doc["polygons"])
    iou_cases(rng, doc["ious"])
    uncompressed_cases(rng, doc["uncompressed"])
    with open(sys.argv[1], "w") as f:
        json.dump(doc, f)


if __name__ == "__main__":
    main()
