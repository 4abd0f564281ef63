"""An independent NumPy implementation of mmseg's IoUMetric formulas, for tests/eval/test_segmentation.cpp.

Reads every ground-truth PNG of GT_DIR and the prediction of the same stem in PRED_DIR with PIL (palette images
give their indices), optionally applies reduce_zero_label to the ground truth, and prints aAcc, mIoU, mAcc and
the per-class IoU / Acc in percent as JSON (NaN as null).
Usage: seg_metric_reference.py PRED_DIR GT_DIR NUM_CLASSES IGNORE_INDEX REDUCE_ZERO_LABEL(0|1)
"""
import json
import pathlib
import sys

import numpy as np
from PIL import Image


def main():
    pred_dir, gt_dir = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
    k, ignore, reduce_zero = int(sys.argv[3]), int(sys.argv[4]), sys.argv[5] == "1"
    inter = np.zeros(k, np.float64)
    area_pred = np.zeros(k, np.float64)
    area_label = np.zeros(k, np.float64)
    for gt_path in sorted(gt_dir.glob("*.png")):
        gt = np.array(Image.open(gt_path)).astype(np.int64)
        if reduce_zero:
            gt[gt == 0] = 255
            gt = gt - 1
            gt[gt == 254] = 255
        pred = np.array(Image.open(pred_dir / gt_path.name)).astype(np.int64)
        keep = gt != ignore
        p, g = pred[keep], gt[keep]

        def hist(x):
            x = x[(x >= 0) & (x < k)]
            return np.bincount(x, minlength=k).astype(np.float64)

        inter += hist(g[p == g])
        area_pred += hist(p)
        area_label += hist(g)
    union = area_pred + area_label - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = inter / union * 100
        acc = inter / area_label * 100
    out = {
        "aAcc": float(inter.sum() / area_label.sum() * 100),
        "mIoU": float(np.nanmean(iou)),
        "mAcc": float(np.nanmean(acc)),
        "IoU": [None if np.isnan(v) else float(v) for v in iou],
        "Acc": [None if np.isnan(v) else float(v) for v in acc],
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
