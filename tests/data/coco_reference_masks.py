#!/usr/bin/env python3
"""pycocotools' masks of a COCO instances file, for tests/data/test_coco_dataset.cpp: annToMask of every
`every`-th annotation and of every annotation that is not a polygon, written as <out>/<annotation id>.bin
((height, width) uint8 0/1, row-major). Exit 3 when pycocotools is not importable."""
import os
import sys

try:
    from pycocotools.coco import COCO
except ImportError as e:
    print(f"pycocotools is not importable: {e}")
    sys.exit(3)


def main():
    path, out, every = sys.argv[1], sys.argv[2], int(sys.argv[3])
    os.makedirs(out, exist_ok=True)
    coco = COCO(path)
    for k, ann_id in enumerate(sorted(coco.anns)):
        ann = coco.anns[ann_id]
        if k % every and isinstance(ann.get("segmentation"), list):
            continue
        coco.annToMask(ann).astype("uint8").tofile(os.path.join(out, f"{ann_id}.bin"))


if __name__ == "__main__":
    sys.exit(main())
