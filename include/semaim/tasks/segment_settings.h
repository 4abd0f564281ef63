// The segment.* section as the segmentation commands (train, predict) and bench_segment read it: model,
// recipe, datasets and test-time inference; the recipe's optimizer and a trained model from a checkpoint.
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "semaim/config/config.h"
#include "semaim/data/seg_dataset.h"
#include "semaim/engine/optimizer.h"
#include "semaim/engine/settings.h"
#include "semaim/eval/seg_inference.h"
#include "semaim/models/heads/upernet.h"

namespace semaim::tasks {

struct SegmentSettings {
  engine::TrainSettings train;
  engine::CheckpointSettings checkpoint;
  engine::LogSettings log;
  models::UperNetConfig model;
  double layer_decay = 0.65, poly_power = 1.0;
  int64_t iters = 0, warmup_iters = 0, eval_every = 0, eval_limit = 0;
  eval::SegEvalOptions eval;
  data::SegLayout train_layout, val_layout;

  // InputError naming the config (or the key) for values the section cannot hold together.
  static SegmentSettings read(const config::Config& cfg);
};

// AdamW over the encoder's layer-decay groups (MAE / BEiT: cls, position table and patch embedding 0, block i
// i+1) with every head parameter at scale 1; no decay on 1-D parameters, biases, cls_token and pos_embed.
// params: the model's trainable parameters by name.
std::unique_ptr<engine::Optimizer> make_segment_optimizer(const SegmentSettings& s, const engine::NamedParams& params);

// The trained UperNet of a segmentation checkpoint (a manifest, a weights file or a run's checkpoints
// directory) for the model `s` describes, in eval mode on `device`; strict: every key with its shape.
models::UperNet load_segmenter(const SegmentSettings& s, const std::string& checkpoint, const at::Device& device);

// The model's logits at its input's size (UperNet::predict_logits: the decode head's quarter-size map resized
// bilinearly, as mmseg's encode_decode) on `device`, under bf16 autocast when asked, back as float32 CPU.
eval::SegLogitsFn segmenter_logits(models::UperNet& model, const at::Device& device, bool bf16);

}  // namespace semaim::tasks
