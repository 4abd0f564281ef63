// The segmentation task's commands: `semaim segment evaluate` scores folders of label PNGs as mmseg does.
#pragma once
#include <string>

#include "semaim/eval/segmentation.h"

namespace semaim::tasks {

struct SegmentEvaluateOptions {
  eval::LabelFolders folders;
  std::string class_names;  // a text file, one class name per line ("" = indices)
  std::string out_csv, out_json;  // "" = not written
  bool quiet = false;
};

// Scores opts.folders, prints the per-class table (unless quiet) and writes the CSV / JSON asked for.
eval::SegScores segment_evaluate(const SegmentEvaluateOptions& opts);

}  // namespace semaim::tasks
