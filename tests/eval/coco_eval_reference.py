"""Random COCO ground truth and detections scored by pycocotools' COCOeval, for tests/eval/test_coco_eval.cpp.

Case "random": images of several sizes, non-contiguous category ids (one without any ground truth), small / medium /
large objects as polygons or compressed RLE, crowd regions as uncompressed RLE, detections jittered around the
ground truth, false positives, score ties and more than 100 detections in one image. Case "sparse": images without
detections or without ground truth, and a category with detections but no ground truth.
Writes OUT_DIR/gt.json, results_{box,both,mask}.json and reference.json (stats, per-category AP and the printed
summary of each (results file, iou type) pair). Exit code 3: pycocotools is missing.
Usage: coco_eval_reference.py OUT_DIR SEED random|sparse
"""
import contextlib
import io
import json
import os
import sys

import numpy as np

try:
    from pycocotools import mask as mask_utils
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
except ImportError as e:  # the C++ test skips with this reason
    print(f"pycocotools is not importable: {e}")
    sys.exit(3)


def text(rle):
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode()}


def polygon_in_box(rng, x, y, w, h):
    """A star-shaped polygon inside the box (x, y, w, h), coordinates with 2 decimals."""
    n = int(rng.integers(8, 16))
    ang = np.sort(rng.uniform(0, 2 * np.pi, n))
    rad = rng.uniform(0.75, 1.0, n)
    xs = x + w / 2 + rad * np.cos(ang) * w / 2
    ys = y + h / 2 + rad * np.sin(ang) * h / 2
    return [round(float(v), 2) for v in np.stack([xs, ys], 1).ravel()]


def random_size(rng):
    kind = rng.integers(0, 3)  # small / medium / large objects in about equal numbers
    lo, hi = [(4, 30), (35, 90), (130, 250)][kind]
    return float(rng.uniform(lo, hi)), float(rng.uniform(lo, hi))


def make_gt(rng, n_images, cat_ids, gt_cats, empty_images, shapes):
    """shapes: filled with annotation id -> the polygon drawn, which detections then follow."""
    images, anns = [], []
    next_id = 1
    for i in range(n_images):
        img_id = int(3 * i + 5)
        H, W = int(rng.integers(260, 420)), int(rng.integers(260, 420))
        images.append({"id": img_id, "height": H, "width": W, "file_name": f"{img_id}.jpg"})
        if i in empty_images:
            continue
        for _ in range(int(rng.integers(1, 9))):
            w, h = random_size(rng)
            x, y = float(rng.uniform(0, W - w)), float(rng.uniform(0, H - h))
            cat = int(rng.choice(gt_cats))
            crowd = rng.random() < 0.12
            if crowd:
                m = np.zeros((H, W), np.uint8)
                m[int(y):int(y + h), int(x):int(x + w)] = 1
                rle = mask_utils.encode(np.asfortranarray(m))
                seg = {"size": [H, W], "counts": run_lengths(m)}
            else:
                poly = polygon_in_box(rng, x, y, w, h)
                shapes[next_id] = poly
                rle = mask_utils.merge(mask_utils.frPyObjects([poly], H, W))
                seg = [poly] if rng.random() < 0.7 else text(rle)
            area = float(mask_utils.area(rle))
            anns.append({"id": next_id, "image_id": img_id, "category_id": cat, "iscrowd": int(crowd),
                         "bbox": [round(v, 2) for v in (x, y, w, h)], "area": area, "segmentation": seg})
            next_id += int(rng.integers(1, 4))
    cats = [{"id": c, "name": f"class{c}", "supercategory": "thing"} for c in cat_ids]
    return {"images": images, "annotations": anns, "categories": cats}


def run_lengths(m):
    flat = m.ravel(order="F").astype(np.int64)
    edges = np.concatenate([[0], np.flatnonzero(np.diff(flat)) + 1, [flat.size]])
    runs = np.diff(edges).tolist()
    return [0] + runs if flat[0] == 1 else runs


def detection(rng, img, cat, box, score, like=None):
    """A detection of `box`; its mask is `like` (a polygon and its box) moved onto `box`, else a new polygon."""
    x, y, w, h = box
    H, W = img["height"], img["width"]
    if like is None:
        poly = polygon_in_box(rng, x, y, w, h)
    else:
        (px, py, pw, ph), xy = like[0], np.array(like[1]).reshape(-1, 2)
        poly = ((xy - [px, py]) / [pw, ph] * [w, h] + [x, y]).ravel().tolist()
    rle = mask_utils.merge(mask_utils.frPyObjects([poly], H, W))
    return {"image_id": img["id"], "category_id": cat, "bbox": [round(v, 3) for v in box], "score": score,
            "segmentation": text(rle)}


def make_detections(rng, gt, cat_ids, skip_images, shapes):
    imgs = {im["id"]: im for im in gt["images"]}
    dts = []
    score = lambda: float(round(rng.uniform(0.05, 1.0), 1 if rng.random() < 0.5 else 4))  # many ties
    for a in gt["annotations"]:
        if a["image_id"] in skip_images or rng.random() < 0.15:
            continue
        for _ in range(int(rng.integers(1, 3))):
            x, y, w, h = a["bbox"]
            j = rng.normal(0, 0.06, 4) * [w, h, w, h]
            box = [x + j[0], y + j[1], max(1.0, w + j[2]), max(1.0, h + j[3])]
            cat = a["category_id"] if rng.random() < 0.9 else int(rng.choice(cat_ids))
            like = (a["bbox"], shapes[a["id"]]) if a["id"] in shapes else None
            dts.append(detection(rng, imgs[a["image_id"]], cat, [float(v) for v in box], score(), like))
    free = [im for im in gt["images"] if im["id"] not in skip_images]
    for _ in range(len(gt["annotations"]) // 2):  # false positives anywhere, of any category
        im = free[int(rng.integers(0, len(free)))]
        w, h = random_size(rng)
        box = [float(rng.uniform(0, im["width"] - w)), float(rng.uniform(0, im["height"] - h)), w, h]
        dts.append(detection(rng, im, int(rng.choice(cat_ids)), box, score()))
    im = free[0]  # more than 100 detections of one category in one image: maxDets cuts them
    for _ in range(130):
        w, h = random_size(rng)
        box = [float(rng.uniform(0, im["width"] - w)), float(rng.uniform(0, im["height"] - h)), w, h]
        dts.append(detection(rng, im, cat_ids[0], box, score()))
    order = rng.permutation(len(dts))
    return [dts[i] for i in order]


def score(gt_path, res_path, iou_type):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        gt = COCO(gt_path)
        ev = COCOeval(gt, gt.loadRes(res_path), iou_type)
        ev.evaluate()
        ev.accumulate()
    summary = io.StringIO()
    with contextlib.redirect_stdout(summary):
        ev.summarize()
    cat_ap = []
    for k in range(len(ev.params.catIds)):
        p = ev.eval["precision"][:, :, k, 0, -1]
        p = p[p > -1]
        cat_ap.append(float(np.mean(p)) if p.size else None)
    return {"stats": [float(s) for s in ev.stats], "category_ap": cat_ap, "summary": summary.getvalue()}


def main():
    out_dir, seed, case = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    rng = np.random.default_rng(seed)
    cat_ids = [1, 3, 7, 8, 12]
    shapes = {}
    if case == "random":
        gt = make_gt(rng, 14, cat_ids, [1, 3, 7, 12], {4}, shapes)
        dts = make_detections(rng, gt, cat_ids, set(), shapes)
    else:
        gt = make_gt(rng, 8, cat_ids, [1, 3], {2, 5}, shapes)
        dts = make_detections(rng, gt, [1, 3, 8], {gt["images"][1]["id"], gt["images"][6]["id"]}, shapes)
    box_only = [{k: v for k, v in d.items() if k != "segmentation"} for d in dts]
    mask_only = [{k: v for k, v in d.items() if k != "bbox"} for d in dts]
    files = {"gt": gt, "results_box": box_only, "results_both": dts, "results_mask": mask_only}
    for name, doc in files.items():
        with open(os.path.join(out_dir, name + ".json"), "w") as f:
            json.dump(doc, f)
    ref = {}
    gt_path = os.path.join(out_dir, "gt.json")
    for res in ("results_box", "results_both", "results_mask"):
        for iou_type in ("bbox", "segm"):
            ref[f"{res}/{iou_type}"] = score(gt_path, os.path.join(out_dir, res + ".json"), iou_type)
    with open(os.path.join(out_dir, "reference.json"), "w") as f:
        json.dump(ref, f)


if __name__ == "__main__":
    main()
