// `semaim detect evaluate`: load the two JSON files, run the COCO evaluation (src/eval/coco_eval.cpp) and
// report it as pycocotools' COCOeval.summarize() prints it, plus the per-category AP detectron2 reports.
#include "semaim/tasks/detect_evaluate.h"

#include <nlohmann/json.hpp>

#include <cmath>
#include <iostream>

#include "semaim/io/atomic_file.h"

namespace semaim::tasks {

namespace {

const char* const kStatNames[12] = {"AP",  "AP50", "AP75",  "APs", "APm", "APl",
                                    "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"};

nlohmann::json number_or_null(double v) {
  return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr);
}

}  // namespace

eval::CocoEvalResult detect_evaluate(const DetectEvaluateOptions& opts) {
  const eval::CocoIouType type = eval::parse_coco_iou_type(opts.iou_type, "--iou-type");
  const eval::CocoGroundTruth gt = eval::load_coco_ground_truth(opts.annotations, type);
  const std::vector<eval::CocoDetection> dt = eval::load_coco_results(opts.results, gt, type);
  const eval::CocoEvalResult r = eval::coco_evaluate(gt, dt, type);
  if (!opts.quiet) std::cout << eval::coco_summary_text(r) << eval::coco_category_ap_text(r) << std::flush;
  if (!opts.out_json.empty()) {
    nlohmann::json stats = nlohmann::json::object(), cats = nlohmann::json::array();
    for (size_t i = 0; i < r.stats.size(); ++i) stats[kStatNames[i]] = r.stats[i];
    for (size_t k = 0; k < r.categories.size(); ++k)
      cats.push_back({{"id", r.categories[k].id},
                      {"name", r.categories[k].name},
                      {"AP", number_or_null(r.category_ap[k])}});
    const nlohmann::json j{{"iou_type", opts.iou_type},
                           {"stats", r.stats},
                           {"summary", stats},
                           {"categories", cats},
                           {"detections", dt.size()}};
    io::atomic_write(opts.out_json, j.dump(2) + "\n");
  }
  return r;
}

}  // namespace semaim::tasks
