// `semaim segment ...`: the segmentation task's commands on the shared engine and evaluator.
#include "semaim/tasks/segment.h"

#include <cmath>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "semaim/core/errors.h"
#include "semaim/io/atomic_file.h"

namespace semaim::tasks {
namespace {

std::vector<std::string> read_class_names(const std::string& path) {
  std::vector<std::string> names;
  if (path.empty()) return names;
  std::ifstream in(path);
  if (!in) throw InputError(path, "cannot open the class-name file");
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    names.push_back(line);
  }
  return names;
}

nlohmann::json number_or_null(double v) { return std::isnan(v) ? nlohmann::json(nullptr) : nlohmann::json(v); }

}  // namespace

eval::SegScores segment_evaluate(const SegmentEvaluateOptions& opts) {
  const auto names = read_class_names(opts.class_names);
  const eval::SegScores s = eval::evaluate_label_folders(opts.folders);
  if (!names.empty() && names.size() != s.iou.size())
    throw InputError(opts.class_names, std::to_string(names.size()) + " class names for " +
                                           std::to_string(s.iou.size()) + " classes");
  if (!opts.quiet) std::cout << eval::format_seg_table(s, names);
  if (!opts.out_csv.empty()) io::atomic_write(opts.out_csv, eval::seg_scores_csv(s, names));
  if (!opts.out_json.empty()) {
    nlohmann::json iou = nlohmann::json::array(), acc = nlohmann::json::array();
    for (size_t c = 0; c < s.iou.size(); ++c) {
      iou.push_back(number_or_null(s.iou[c]));
      acc.push_back(number_or_null(s.acc[c]));
    }
    const nlohmann::json j{{"aAcc", number_or_null(s.aacc)}, {"mIoU", number_or_null(s.miou)},
                           {"mAcc", number_or_null(s.macc)}, {"IoU", iou},
                           {"Acc", acc},                      {"images", s.images},
                           {"num_classes", s.iou.size()}};
    io::atomic_write(opts.out_json, j.dump(2) + "\n");
  }
  return s;
}

}  // namespace semaim::tasks
