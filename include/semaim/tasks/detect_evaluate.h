// `semaim detect evaluate`: scores a COCO results JSON against a COCO instances JSON as pycocotools' COCOeval
// does and prints its 12 summary lines and the per-category AP.
#pragma once
#include <string>

#include "semaim/eval/coco_eval.h"

namespace semaim::tasks {

struct DetectEvaluateOptions {
  std::string annotations;  // ground truth: instances JSON (images, annotations, categories)
  std::string results;      // results JSON: a list of {image_id, category_id, score, bbox | segmentation}
  std::string iou_type = "bbox";  // "bbox" | "segm"
  std::string out_json;           // "" = not written; else the stats, their names and the per-category AP
  bool quiet = false;
};

// Prints (unless quiet) the summary exactly as COCOeval.summarize() does, then one line per category with its
// AP, and writes opts.out_json atomically. Bad files or options throw InputError.
eval::CocoEvalResult detect_evaluate(const DetectEvaluateOptions& opts);

}  // namespace semaim::tasks
