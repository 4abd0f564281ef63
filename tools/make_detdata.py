#!/usr/bin/env python3
"""Builds fmnist-det, semaim's small real detection / instance-segmentation dataset, in the COCO layout.

Each canvas holds 1-6 Fashion-MNIST items (from Debian's dataset-fashion-mnist: training items for the training
split, test items for validation) at random scales (20-90 px) and positions, later items covering earlier ones
(an earlier item's mask loses the covered pixels), over a dark canvas or a dimmed crop of a sample-corpus
photograph. An item's mask is its thresholded pixels with the holes inside filled; its segmentation is the
polygon(s) traced along the pixel edges of the visible mask (one per 4-connected part; pycocotools rasterizes
such a polygon back to exactly those pixels), or a compressed RLE when occlusion left a hole in it. bbox and area
are those of the segmentation's rasterization (pycocotools), as COCO's are. Some canvases also hold a crowd
region: a cluster of small items of one class under one iscrowd=1 annotation with an uncompressed RLE.
Nothing is downloaded.

Output (deterministic for a given version and seed):
  <out>/{train,val}/<id:012d>.jpg                RGB JPEG canvases, quality 95
  <out>/annotations/instances_{train,val}.json   COCO instances (categories 1..10: the Fashion-MNIST classes)
  <out>/.complete                                written last (built in a temp dir, then renamed)

Usage: make_detdata.py --out DIR [--corpus DIR] [--train 4000] [--val 500] [--size 128] [--seed 0]
"""
import argparse
import json
import os
import pathlib
import random
import shutil
import sys

import numpy as np
from PIL import Image
from pycocotools import mask as mask_util

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from make_segdata import FMNIST, photo_backgrounds, read_idx, silhouette  # noqa: E402

CLASSES = ["t-shirt/top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot"]
THRESHOLD = 24     # item pixels brighter than this belong to its mask (before hole filling)
MIN_VISIBLE = 12   # an item left with fewer visible pixels gets no annotation
CROWD_PROB = 0.12  # canvases with a crowd region


def edge_loops(mask):
    """Closed loops of pixel-edge vertices (x, y) around the 4-connected parts of mask: outer loops run with
    negative shoelace area (y down), hole loops with positive. -> list of (n, 2) int arrays, corners only."""
    rows, cols = np.nonzero(mask.any(1))[0], np.nonzero(mask.any(0))[0]
    if rows.size == 0:
        return []
    y_off, x_off = rows[0], cols[0]
    m = mask[y_off:rows[-1] + 1, x_off:cols[-1] + 1]
    stride = m.shape[1] + 1  # vertex (x, y) of the crop is y * stride + x
    p = np.pad(m, 1)
    inside = p[1:-1, 1:-1]
    starts, ends = [], []
    for outside, (sx, sy, ex, ey) in ((p[:-2, 1:-1], (1, 0, 0, 0)),  # top edges walk left
                                      (p[2:, 1:-1], (0, 1, 1, 1)),   # bottom edges walk right
                                      (p[1:-1, :-2], (0, 0, 0, 1)),  # left edges walk down
                                      (p[1:-1, 2:], (1, 1, 1, 0))):  # right edges walk up
        ys, xs = np.nonzero(inside & ~outside)
        starts.append((ys + sy) * stride + xs + sx)
        ends.append((ys + ey) * stride + xs + ex)
    starts, ends = np.concatenate(starts).tolist(), np.concatenate(ends).tolist()
    out = {}
    for a, b in zip(starts, ends):
        out.setdefault(a, []).append(b)
    used = set()
    loops = []
    for a, b in zip(starts, ends):
        if (a, b) in used:
            continue
        prev, cur = a, b
        used.add((a, b))
        pts = [a]
        while cur != a:
            d = cur - prev
            options = out[cur]
            if len(options) == 1:
                nxt = options[0]
            else:  # two parts touch at this corner: turn toward the inside, so the parts stay apart
                dx, dy = (d, 0) if abs(d) == 1 else (0, d // stride)
                turn = cur + dy - dx * stride
                nxt = turn if turn in options and (cur, turn) not in used else next(
                    n for n in options if (cur, n) not in used)
            if nxt - cur != d:
                pts.append(cur)
            used.add((cur, nxt))
            prev, cur = cur, nxt
        v = np.array(pts, np.int64)
        loops.append(np.stack([v % stride + x_off, v // stride + y_off], 1))
    return loops


def signed_area(loop):
    x, y = loop[:, 0], loop[:, 1]
    return 0.5 * float(np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y))


def segmentation(mask):
    """COCO segmentation of a visible mask: polygons when it has no hole, else a compressed RLE."""
    loops = edge_loops(mask)
    if any(signed_area(loop) > 0 for loop in loops):
        rle = mask_util.encode(np.asfortranarray(mask.astype(np.uint8)))
        return {"size": rle["size"], "counts": rle["counts"].decode("ascii")}
    return [loop.reshape(-1).astype(float).tolist() for loop in loops]


def to_rle(segm, h, w):
    if isinstance(segm, list):
        return mask_util.merge(mask_util.frPyObjects(segm, h, w))
    if isinstance(segm["counts"], list):
        return mask_util.frPyObjects(segm, h, w)
    return {"size": segm["size"], "counts": segm["counts"].encode("ascii")}


def uncompressed_rle(mask):
    """pycocotools' uncompressed form: run lengths in column-major order, zeros first."""
    flat = mask.T.reshape(-1).astype(np.int8)
    change = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat[0] == 1:
        counts = [0] + counts
    return {"size": list(mask.shape), "counts": counts}


def background(rng, photos, size):
    if photos and rng.random() < 0.5:
        photo = Image.fromarray(photos[rng.randrange(len(photos))])
        if min(photo.size) < size:
            f = size / min(photo.size)
            photo = photo.resize((max(size, round(photo.size[0] * f)), max(size, round(photo.size[1] * f))))
        ph = np.array(photo)
        y, x = rng.randrange(ph.shape[0] - size + 1), rng.randrange(ph.shape[1] - size + 1)
        return (ph[y:y + size, x:x + size].astype(np.float32) * 0.5).astype(np.uint8)
    return np.full((size, size, 3), rng.randrange(0, 40), np.uint8)


def place(image, side, y, x, size):
    """A resized item and its mask on the canvas with its top-left corner at (y, x) (it may reach past the
    edges). -> item (size, size) uint8, mask (size, size) bool"""
    item = np.array(Image.fromarray(image).resize((side, side), Image.BILINEAR))
    mask = silhouette(item > THRESHOLD)
    canvas_item = np.zeros((size, size), np.uint8)
    canvas_mask = np.zeros((size, size), bool)
    ys, xs = slice(max(y, 0), min(y + side, size)), slice(max(x, 0), min(x + side, size))
    if ys.start < ys.stop and xs.start < xs.stop:
        crop = (slice(ys.start - y, ys.stop - y), slice(xs.start - x, xs.stop - x))
        canvas_item[ys, xs], canvas_mask[ys, xs] = item[crop], mask[crop]
    return canvas_item, canvas_mask


def draw(rgb, item, mask, tint):
    rgb[mask] = (item[mask][:, None].astype(np.float32) * tint).astype(np.uint8)


def canvas(rng, images, labels, photos, size):
    """-> rgb (size, size, 3) and [(category_id, mask, iscrowd)], masks as visible after occlusion."""
    rgb = background(rng, photos, size)
    layers = []
    if rng.random() < CROWD_PROB:  # a cluster of small items of one class, annotated as one crowd region
        cls = rng.randrange(10)
        pool = np.flatnonzero(labels == cls)
        cy, cx = rng.randrange(size // 4, 3 * size // 4), rng.randrange(size // 4, 3 * size // 4)
        crowd = np.zeros((size, size), bool)
        for _ in range(rng.randint(4, 7)):
            side = rng.randint(12, 20)
            item, m = place(images[pool[rng.randrange(len(pool))]], side, cy + rng.randint(-16, 16) - side // 2,
                            cx + rng.randint(-16, 16) - side // 2, size)
            draw(rgb, item, m, 1.0)
            crowd |= m
        layers.append((cls + 1, crowd, 1))
    for _ in range(rng.randint(1, 6)):
        i = rng.randrange(len(images))
        side = rng.randint(20, 90)
        y, x = rng.randint(-side // 4, size - 3 * side // 4), rng.randint(-side // 4, size - 3 * side // 4)
        item, m = place(images[i], side, y, x, size)
        draw(rgb, item, m, np.array([rng.uniform(0.6, 1.0) for _ in range(3)], np.float32))
        for layer in layers:
            layer[1][m] = False  # the new item covers what it overlaps
        layers.append((int(labels[i]) + 1, m, 0))
    return rgb, layers


def annotations(layers, size, image_id, next_id):
    """COCO annotations of a canvas's visible layers (bbox and area from the segmentation's rasterization)."""
    out = []
    for cat, m, crowd in layers:
        if m.sum() < MIN_VISIBLE:
            continue
        segm = uncompressed_rle(m) if crowd else segmentation(m)
        rle = to_rle(segm, size, size)
        out.append({"id": next_id + len(out), "image_id": image_id, "category_id": cat,
                    "bbox": [float(v) for v in mask_util.toBbox(rle)], "area": float(mask_util.area(rle)),
                    "iscrowd": crowd, "segmentation": segm})
    return out


def write_split(out, split, count, images, labels, photos, size, rng):
    (out / split).mkdir(parents=True)
    coco = {"info": {"description": "fmnist-det: Fashion-MNIST items on 128x128 canvases (tools/make_detdata.py)"},
            "images": [], "annotations": [],
            "categories": [{"id": k + 1, "name": n, "supercategory": "fashion"} for k, n in enumerate(CLASSES)]}
    for k in range(count):
        rgb, layers = canvas(rng, images, labels, photos, size)
        image_id = k + 1
        name = f"{image_id:012d}.jpg"
        Image.fromarray(rgb).save(out / split / name, quality=95)
        coco["images"].append({"id": image_id, "file_name": name, "height": size, "width": size})
        coco["annotations"] += annotations(layers, size, image_id, len(coco["annotations"]) + 1)
    (out / "annotations").mkdir(exist_ok=True)
    (out / "annotations" / f"instances_{split}.json").write_text(json.dumps(coco, separators=(",", ":")))
    return len(coco["annotations"])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--corpus", default="")
    ap.add_argument("--train", type=int, default=4000)
    ap.add_argument("--val", type=int, default=500)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    out = pathlib.Path(a.out)
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    rng = random.Random(a.seed)
    photos = photo_backgrounds(a.corpus)
    train = read_idx(FMNIST / "train-images-idx3-ubyte.gz"), read_idx(FMNIST / "train-labels-idx1-ubyte.gz")
    test = read_idx(FMNIST / "t10k-images-idx3-ubyte.gz"), read_idx(FMNIST / "t10k-labels-idx1-ubyte.gz")
    n_train = write_split(tmp, "train", a.train, *train, photos, a.size, rng)
    n_val = write_split(tmp, "val", a.val, *test, photos, a.size, rng)
    (tmp / ".complete").write_text(f"fmnist-det train={a.train} val={a.val} size={a.size} seed={a.seed}\n")
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    print(f"fmnist-det: {a.train} training ({n_train} annotations) and {a.val} validation ({n_val}) canvases of "
          f"{a.size}x{a.size} at {out}")


if __name__ == "__main__":
    sys.exit(main())
