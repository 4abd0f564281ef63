// The detect.* section as the detection commands (train, predict) and bench_detect read it: model, recipe,
// datasets and test settings; the recipe's optimizer, a trained model from a checkpoint, and inference on
// decoded images.
#pragma once
#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "semaim/config/config.h"
#include "semaim/data/coco_dataset.h"
#include "semaim/data/det_transforms.h"
#include "semaim/engine/optimizer.h"
#include "semaim/engine/settings.h"
#include "semaim/io/safetensors.h"
#include "semaim/models/heads/mask_rcnn.h"

namespace semaim::tasks {

struct DetectSettings {
  engine::TrainSettings train;
  engine::CheckpointSettings checkpoint;
  engine::LogSettings log;
  models::MaskRcnnConfig model;
  data::LsjConfig lsj;
  double layer_decay = 0.7;
  int64_t iters = 0, warmup_iters = 0, eval_every = 0, eval_limit = 0, eval_batch = 1;
  std::vector<int64_t> milestones;
  data::CocoLayout train_layout, val_layout;
  std::vector<double> mean, std;
  bool fail_on_bad_image = false;

  // InputError naming the config (or the key) for values the section cannot hold together. num_classes comes
  // from the training annotations or a checkpoint's metadata, read by the caller.
  static DetectSettings read(const config::Config& cfg, int64_t num_classes);
  // The annotations and images of `split` (train | val): detect.<split>_annotations / _images, else the COCO
  // layout under detect.data_root.
  static data::CocoLayout read_layout(const config::Config& cfg, const std::string& split);
};

// detectron2's ViTDet optimizer: AdamW with the encoder's layer-decay groups (get_vit_lr_decay_rate: position
// table and patch embedding 0, block i i+1, pyramid and heads at scale 1) and weight decay on every parameter
// but normalization layers' and the position table (weight_decay_norm 0, overrides pos_embed 0).
std::unique_ptr<engine::Optimizer> make_detect_optimizer(const DetectSettings& s, const engine::NamedParams& params);

// A detection checkpoint's weights file (from a manifest, a weights file or a run's checkpoints directory), read,
// with the categories its training set had (metadata "categories": [{id, name}]).
struct DetectorCheckpoint {
  std::string weights;
  io::SafetensorsFile file;
  std::vector<int64_t> category_ids;
  std::vector<std::string> category_names;
};
// InputError naming the weights file when it is not a semaim detection checkpoint.
DetectorCheckpoint read_detector_checkpoint(const std::string& checkpoint);

// The trained model of `ckpt` for the model `s` describes, in eval mode on `device`; strict: every key with its
// shape.
models::MaskRcnn load_detector(const DetectSettings& s, const DetectorCheckpoint& ckpt, const at::Device& device);

}  // namespace semaim::tasks
