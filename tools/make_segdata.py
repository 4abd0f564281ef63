#!/usr/bin/env python3
"""Builds fmnist-seg, semaim's small real semantic-segmentation dataset, in the ADE20K layout.

Each canvas holds 2-4 Fashion-MNIST items (from Debian's dataset-fashion-mnist: training items for the training
split, test items for validation) at random scales and positions, later items covering earlier ones, over a
black background or over a crop of one of the sample corpus's photographs. A pixel's label is the class of the
item that covers it; the canvas around the items is "background"; the faint rim of an item (pixels too dark to
say whether the item covers them) is 0, "other", which reduce_zero_label turns into the ignore index as it does
for ADE20K. An item covers its silhouette: its visible pixels with the dark holes inside them filled.
Nothing is downloaded.

Output (deterministic for a given version and seed):
  <out>/images/{training,validation}/fseg_<k>.jpg      RGB JPEG canvases, quality 95
  <out>/annotations/{training,validation}/fseg_<k>.png 8-bit grayscale labels: 0 other, 1 background,
                                                        2..11 the Fashion-MNIST classes 0..9
  <out>/classes.txt                                     the 11 class names after reduce_zero_label
  <out>/.complete                                       written last (built in a temp dir, then renamed)

Usage: make_segdata.py --out DIR [--corpus DIR] [--train 4000] [--val 500] [--size 56] [--seed 0]
"""
import argparse
import gzip
import os
import pathlib
import random
import shutil
import sys

import numpy as np
from PIL import Image

FMNIST = pathlib.Path("/usr/share/datasets/fashion-mnist")
CLASSES = ["background", "t-shirt/top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker",
           "bag", "ankle boot"]
COVER, RIM = 40, 8  # pixels over RIM are visible; the silhouette's edge pixels up to COVER are "other"


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def shift_or(m):
    """m or'd with its four neighbours."""
    out = m.copy()
    out[1:] |= m[:-1]
    out[:-1] |= m[1:]
    out[:, 1:] |= m[:, :-1]
    out[:, :-1] |= m[:, 1:]
    return out


def silhouette(visible):
    """visible with every hole that the outside cannot reach filled in."""
    outside = ~visible
    reach = np.zeros_like(visible)
    reach[0], reach[-1], reach[:, 0], reach[:, -1] = outside[0], outside[-1], outside[:, 0], outside[:, -1]
    while True:
        grown = shift_or(reach) & outside
        if (grown == reach).all():
            return ~reach
        reach = grown


def photo_backgrounds(corpus):
    if not corpus or not (pathlib.Path(corpus) / "train").is_dir():
        return []
    paths = sorted(p for p in (pathlib.Path(corpus) / "train").rglob("*.JPEG"))[::40]
    out = []
    for p in paths:
        try:
            out.append(np.array(Image.open(p).convert("RGB")))
        except OSError:
            continue  # the corpus plants broken files on purpose
    return out


def canvas(rng, images, labels, photos, size):
    if photos and rng.random() < 0.5:
        photo = photos[rng.randrange(len(photos))]
        y, x = rng.randrange(photo.shape[0] - size), rng.randrange(photo.shape[1] - size)
        rgb = (photo[y:y + size, x:x + size].astype(np.float32) * 0.6).astype(np.uint8)
    else:
        rgb = np.zeros((size, size, 3), np.uint8)
    label = np.ones((size, size), np.uint8)
    for _ in range(rng.randint(2, 4)):
        i = rng.randrange(len(images))
        side = int(round(28 * rng.uniform(0.7, 1.5)))
        item = np.array(Image.fromarray(images[i]).resize((side, side), Image.BILINEAR))
        y, x = rng.randint(-side // 4, size - 3 * side // 4), rng.randint(-side // 4, size - 3 * side // 4)
        ys, xs = slice(max(y, 0), min(y + side, size)), slice(max(x, 0), min(x + side, size))
        shape = silhouette(item > RIM)
        rim_all = shape & shift_or(~shape) & (item <= COVER)
        crop = (slice(ys.start - y, ys.stop - y), slice(xs.start - x, xs.stop - x))
        patch, inside, rim = item[crop], shape[crop], rim_all[crop]
        rgb[ys, xs][inside] = patch[inside][:, None]
        label[ys, xs][inside] = 2 + labels[i]
        label[ys, xs][rim] = 0
    return rgb, label


def write_split(out, split, count, images, labels, photos, size, rng):
    (out / "images" / split).mkdir(parents=True)
    (out / "annotations" / split).mkdir(parents=True)
    for k in range(count):
        rgb, label = canvas(rng, images, labels, photos, size)
        Image.fromarray(rgb).save(out / "images" / split / f"fseg_{k:05d}.jpg", quality=95)
        Image.fromarray(label, mode="L").save(out / "annotations" / split / f"fseg_{k:05d}.png")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--corpus", default="")
    ap.add_argument("--train", type=int, default=4000)
    ap.add_argument("--val", type=int, default=500)
    ap.add_argument("--size", type=int, default=56)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    out = pathlib.Path(a.out)
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    rng = random.Random(a.seed)
    photos = photo_backgrounds(a.corpus)
    train = read_idx(FMNIST / "train-images-idx3-ubyte.gz"), read_idx(FMNIST / "train-labels-idx1-ubyte.gz")
    test = read_idx(FMNIST / "t10k-images-idx3-ubyte.gz"), read_idx(FMNIST / "t10k-labels-idx1-ubyte.gz")
    write_split(tmp, "training", a.train, *train, photos, a.size, rng)
    write_split(tmp, "validation", a.val, *test, photos, a.size, rng)
    (tmp / "classes.txt").write_text("\n".join(CLASSES) + "\n")
    (tmp / ".complete").write_text(f"fmnist-seg train={a.train} val={a.val} size={a.size} seed={a.seed}\n")
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    print(f"fmnist-seg: {a.train} training and {a.val} validation canvases of {a.size}x{a.size} at {out}")


if __name__ == "__main__":
    sys.exit(main())
