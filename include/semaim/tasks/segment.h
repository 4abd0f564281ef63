// The segmentation task's commands: `semaim segment train` (UperNet on the encoder, segment.* keys) and
// `semaim segment evaluate` (folders of label PNGs scored as mmseg does).
#pragma once
#include <cstdint>
#include <string>

#include "semaim/config/config.h"
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

struct SegmentTrainOptions {
  std::string resume;  // "" | "auto" | a checkpoint path
  bool quiet = false;
};

struct SegmentResult {
  std::string run_dir, last_checkpoint, best_checkpoint;
  int64_t steps = 0, skipped_steps = 0;
  double first_loss = 0, last_loss = 0, images_per_sec = 0, seconds = 0;
  eval::SegScores scores;  // the final evaluation on the validation split
  double best_miou = 0;     // over every evaluation whose checkpoint was kept
};

// `semaim segment train`: UperNet (segment.* model keys, encoder from segment.init) trained on the segment.*
// dataset with the segment.* recipe, evaluated every segment.eval_every_steps and at the end; the per-class
// table of the last evaluation is written to <run dir>/segment_classes.csv.
SegmentResult segment_train(const config::Config& cfg, const SegmentTrainOptions& opts);

}  // namespace semaim::tasks
