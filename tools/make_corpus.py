#!/usr/bin/env python3
"""Builds semaim's sample image corpus from real photographs shipped in PyPI wheels.

Sources: the photographs inside the scikit-image and scikit-learn wheels (astronaut, cat, coffee, galaxy,
retina, rocket, motorcycles, temple, flower, cameraman), which tools/setup.sh fetches once with
`pip download --no-deps` into the cache. Nothing is downloaded here.

Output (ImageNet layout, deterministic for a given version):
  <out>/train/<class>/<class>_<k>.JPEG   about 2000 JPEGs at ImageNet-like sizes (~500x375), quality 90,
                                         including grayscale and CMYK JPEGs and PNGs named .JPEG
  <out>/val/<class>/...                  200 more for evaluation
  <out>/train.txt, <out>/val.txt         list files: "<path relative to <out>> <label>" per line
  <out>/broken.txt                       the broken files planted in train/, relative to <out>/train
  <out>/checks/                          decoder fixtures: a CMYK JPEG with its RGB original (PNG), a
                                         2400x1800 JPEG for the reduced-DCT test
  <out>/.complete                        written last; the corpus is built in a temporary directory and
                                         renamed into place, so a half-written corpus is never used.

Usage: make_corpus.py --wheels DIR --out DIR [--per-class 200] [--val-per-class 20]
"""
import argparse
import io
import os
import random
import shutil
import sys
import zipfile

from PIL import Image, ImageEnhance

# class name -> member paths inside the wheels (all real photographs)
CLASSES = {
    "astronaut": ["skimage/data/astronaut.png"],
    "cat": ["skimage/data/chelsea.png"],
    "coffee": ["skimage/data/coffee.png"],
    "galaxy": ["skimage/data/hubble_deep_field.jpg"],
    "retina": ["skimage/data/retina.jpg"],
    "rocket": ["skimage/data/rocket.jpg"],
    "motorcycle": ["skimage/data/motorcycle_left.png", "skimage/data/motorcycle_right.png"],
    "temple": ["sklearn/datasets/images/china.jpg"],
    "flower": ["sklearn/datasets/images/flower.jpg"],
    "cameraman": ["skimage/data/camera.png"],
}
SIZES = [(500, 375), (375, 500), (500, 333), (500, 400), (400, 500), (500, 500), (640, 480), (333, 500)]


def load_sources(wheels):
    members = {}
    for name in sorted(os.listdir(wheels)):
        if not name.endswith(".whl"):
            continue
        with zipfile.ZipFile(os.path.join(wheels, name)) as z:
            for m in z.namelist():
                members[m] = (os.path.join(wheels, name), m)
    sources = {}
    for cls, paths in CLASSES.items():
        imgs = []
        for p in paths:
            if p not in members:
                sys.exit(f"make_corpus: {p} not found in the wheels under {wheels}")
            whl, m = members[p]
            with zipfile.ZipFile(whl) as z:
                img = Image.open(io.BytesIO(z.read(m)))
                img.load()
            imgs.append(img.convert("RGB") if img.mode not in ("L", "RGB") else img)
        sources[cls] = imgs
    return sources


def variant(src, rng):
    """A random view of a photograph: crop, flip, brightness/contrast, resized to an ImageNet-like size."""
    w, h = src.size
    area = w * h * rng.uniform(0.35, 1.0)
    aspect = rng.uniform(0.75, 1.33)
    cw = max(32, min(w, int(round((area * aspect) ** 0.5))))
    ch = max(32, min(h, int(round((area / aspect) ** 0.5))))
    x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
    img = src.crop((x, y, x + cw, y + ch))
    if rng.random() < 0.5:
        img = img.transpose(Image.FLIP_LEFT_RIGHT)
    img = ImageEnhance.Brightness(img).enhance(rng.uniform(0.8, 1.2))
    img = ImageEnhance.Contrast(img).enhance(rng.uniform(0.8, 1.2))
    return img.resize(rng.choice(SIZES), Image.BICUBIC)


def write_split(root, split, sources, count, rng, special):
    lines = []
    for label, cls in enumerate(sorted(sources)):
        d = os.path.join(root, split, cls)
        os.makedirs(d)
        for k in range(count):
            img = variant(rng.choice(sources[cls]), rng)
            path = os.path.join(d, f"{cls}_{k:05d}.JPEG")
            kind = special.get((cls, k), "rgb")
            if kind == "gray":
                img.convert("L").save(path, "JPEG", quality=90)
            elif kind == "cmyk":
                img.convert("RGB").convert("CMYK").save(path, "JPEG", quality=90)
            elif kind == "png":
                img.convert("RGB").save(path, "PNG")  # a PNG named .JPEG, as ImageNet has
            else:
                img.save(path, "JPEG", quality=90)
            lines.append(f"{split}/{cls}/{cls}_{k:05d}.JPEG {label}\n")
    with open(os.path.join(root, f"{split}.txt"), "w") as f:
        f.writelines(lines)


def plant_broken(root, rng):
    """A few broken files inside train/ (and its list file): what ImageNet-scale crawls contain."""
    good = os.path.join(root, "train", "rocket", "rocket_00000.JPEG")
    data = open(good, "rb").read()
    broken = {
        "cat/broken_empty.JPEG": b"",
        "coffee/broken_truncated.JPEG": data[: len(data) * 2 // 5],
        "flower/broken_text.JPEG": b"<html><body>404 Not Found</body></html>\n",
        "galaxy/broken_header.JPEG": b"\xff\xd8\xff" + bytes(rng.randrange(256) for _ in range(3000)),
        "temple/broken_truncated_png.JPEG": b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\x0dIHDR" + b"\x00" * 5,
    }
    labels = {cls: i for i, cls in enumerate(sorted(CLASSES))}
    with open(os.path.join(root, "train.txt"), "a") as lst:
        for rel, payload in broken.items():
            with open(os.path.join(root, "train", rel), "wb") as f:
                f.write(payload)
            lst.write(f"train/{rel} {labels[rel.split('/')[0]]}\n")
    with open(os.path.join(root, "broken.txt"), "w") as f:
        f.writelines(f"{rel}\n" for rel in broken)


def write_checks(root, sources):
    d = os.path.join(root, "checks")
    os.makedirs(d)
    photo = sources["temple"][0].convert("RGB")
    photo.save(os.path.join(d, "cmyk_source.png"))
    photo.convert("CMYK").save(os.path.join(d, "cmyk.jpg"), "JPEG", quality=95)
    photo.convert("L").save(os.path.join(d, "gray.jpg"), "JPEG", quality=95)
    sources["astronaut"][0].convert("RGB").resize((2400, 1800), Image.BICUBIC).save(
        os.path.join(d, "large.jpg"), "JPEG", quality=90)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--wheels", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--per-class", type=int, default=200)
    ap.add_argument("--val-per-class", type=int, default=20)
    args = ap.parse_args()
    if os.path.exists(os.path.join(args.out, ".complete")):
        return
    sources = load_sources(args.wheels)
    tmp = args.out + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    rng = random.Random(20261122)
    # per class: a few grayscale JPEGs, CMYK JPEGs and PNGs named .JPEG (cameraman is grayscale throughout)
    special = {}
    for i, cls in enumerate(sorted(CLASSES)):
        for k in range(args.per_class):
            if cls == "cameraman":
                special[(cls, k)] = "gray"
        special[(cls, 3)] = "gray"
        special[(cls, 5)] = "cmyk" if i % 2 == 0 else "png"
    write_split(tmp, "train", sources, args.per_class, rng, special)
    write_split(tmp, "val", sources, args.val_per_class, rng, {})
    plant_broken(tmp, rng)
    write_checks(tmp, sources)
    open(os.path.join(tmp, ".complete"), "w").write("semaim sample corpus v1\n")
    shutil.rmtree(args.out, ignore_errors=True)
    os.rename(tmp, args.out)


if __name__ == "__main__":
    main()
