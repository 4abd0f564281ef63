// The detection task's commands: `semaim detect train` (ViTDet Mask R-CNN on the encoder, detect.* keys) and
// `semaim detect predict` (a results JSON and drawn PNGs for a folder of images). `detect evaluate` (any results
// JSON scored as pycocotools does) is in detect_evaluate.h.
#pragma once
#include <cstdint>
#include <string>

#include "semaim/config/config.h"
#include "semaim/engine/trained_run.h"
#include "semaim/eval/coco_eval.h"

namespace semaim::tasks {

struct DetectTrainOptions {
  std::string resume;  // "" | "auto" | a checkpoint path
  bool quiet = false;
};

struct DetectResult : engine::TrainedRun {
  eval::CocoEvalResult box, mask;  // the final evaluation on the validation split (mask: with detect.mask_on)
  double best_box_ap = 0;     // over every evaluation whose checkpoint was kept
};

struct DetectPredictOptions {
  std::string checkpoint;  // a detection checkpoint: manifest, weights file or a run's checkpoints directory
  std::string images;      // a folder (searched recursively) or one image file
  std::string out_dir;     // <out_dir>/results.json and <out_dir>/<path relative to images, extension .png>
  double draw_threshold = 0.5;  // detections drawn on the PNGs score at least this (all go into the JSON)
  bool quiet = false;
};

// `semaim detect train`: Mask R-CNN (detect.* model keys, encoder from detect.init) trained on the detect.* dataset
// with the detect.* recipe, evaluated (box and mask AP) every detect.eval_every_steps and at the end; the last
// evaluation's results JSON is <run dir>/coco_instances_results.json and its per-category AP detect_classes.csv.
DetectResult detect_train(const config::Config& cfg, const DetectTrainOptions& opts);

// `semaim detect predict`: detections of every image at its original size in <out_dir>/results.json (COCO results;
// image_id = the image's index in sorted path order, listed with its file in <out_dir>/images.json; category_id =
// the training set's ids, from the checkpoint) and a PNG per image with the boxes, classes, scores and masks drawn.
// -> the number of images predicted
int64_t detect_predict(const config::Config& cfg, const DetectPredictOptions& opts);

}  // namespace semaim::tasks
