"""pycocotools' COCOeval stats of a results file, for tests/tasks/test_detect.cpp.

Usage: pycocotools_score.py GT.json RESULTS.json bbox|segm -> prints the 12 stats as a JSON list on the last line.
Exit code 3: pycocotools is missing.
"""
import contextlib
import io
import json
import sys

try:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
except ImportError as e:  # the C++ test skips with this reason
    print(f"pycocotools is not importable: {e}")
    sys.exit(3)


def main():
    gt_path, results_path, iou_type = sys.argv[1], sys.argv[2], sys.argv[3]
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(gt_path)
        dt = gt.loadRes(results_path)
        ev = COCOeval(gt, dt, iou_type)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    print(json.dumps([float(v) for v in ev.stats]))


if __name__ == "__main__":
    main()
