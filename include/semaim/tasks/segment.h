// The segmentation task's commands: `semaim segment train` (UperNet on the encoder, segment.* keys) and
// `semaim segment evaluate` (folders of label PNGs scored as mmseg does).
#pragma once
#include <cstdint>
#include <string>

#include "semaim/config/config.h"
#include "semaim/engine/trained_run.h"
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

struct SegmentResult : engine::TrainedRun {
  eval::SegScores scores;  // the final evaluation on the validation split
  double best_miou = 0;     // over every evaluation whose checkpoint was kept
};

struct SegmentPredictOptions {
  std::string checkpoint;  // a segmentation checkpoint: manifest, weights file or a run's checkpoints directory
  std::string images;      // a folder (searched recursively) or one image file
  std::string out_dir;     // <out_dir>/<path relative to images, extension .png>
  bool quiet = false;
};

// `semaim segment predict`: the class of every pixel of each image at its original size (the segment.*
// test settings: scale, whole / slide, aug_ratios, aug_flip), written atomically as a palette PNG of class
// indices 0..K-1 (class_palette colours), the form `segment evaluate --pred` scores. A file that does not
// decode is skipped with a warning, or fails with data.on_bad_image: fail. -> the number of PNGs written
int64_t segment_predict(const config::Config& cfg, const SegmentPredictOptions& opts);

// `semaim segment train`: UperNet (segment.* model keys, encoder from segment.init) trained on the segment.*
// dataset with the segment.* recipe, evaluated every segment.eval_every_steps and at the end; the per-class
// table of the last evaluation is written to <run dir>/segment_classes.csv.
SegmentResult segment_train(const config::Config& cfg, const SegmentTrainOptions& opts);

}  // namespace semaim::tasks
