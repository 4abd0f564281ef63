// The segment.* section (segment_settings.h).
#include "semaim/tasks/segment_settings.h"

#include <fstream>

#include "semaim/core/errors.h"
#include "semaim/engine/autocast.h"
#include "semaim/engine/checkpointer.h"
#include "semaim/io/safetensors.h"
#include "semaim/models/weights.h"
#include "semaim/tasks/models.h"

namespace semaim::tasks {
namespace {

std::vector<std::string> read_lines(const std::string& path) {
  std::vector<std::string> out;
  if (path.empty()) return out;
  std::ifstream in(path);
  if (!in) throw InputError(path, "cannot open the class-name file (segment.classes_file)");
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) out.push_back(line);
  return out;
}

data::SegLayout layout(const config::Config& cfg, const std::string& split) {
  data::SegLayout l;
  if (cfg.get_string("segment.layout") == "ade20k") {
    l = data::ade20k_layout(config::expand_home(cfg.get_string("segment.data_root")),
                            split == "train" ? "training" : "validation");
  } else {
    l.img_dir = config::expand_home(cfg.get_string("segment." + split + "_img_dir"));
    l.ann_dir = config::expand_home(cfg.get_string("segment." + split + "_ann_dir"));
    l.img_suffix = cfg.get_string("segment.img_suffix");
    l.seg_suffix = cfg.get_string("segment.seg_suffix");
    l.reduce_zero_label = cfg.get_bool("segment.reduce_zero_label");
    l.num_classes = cfg.get_int("segment.num_classes");
    l.classes = read_lines(cfg.get_string("segment.classes_file"));
  }
  l.ignore_index = cfg.get_int("segment.ignore_index");
  l.skip_unpaired = cfg.get_bool("segment.skip_unpaired");
  return l;
}

}  // namespace

SegmentSettings SegmentSettings::read(const config::Config& cfg) {
  SegmentSettings s;
  s.train = engine::TrainSettings::read(cfg, "segment");
  s.checkpoint = engine::CheckpointSettings::read(cfg);
  s.log = engine::LogSettings::read(cfg);
  s.train_layout = layout(cfg, "train");
  s.val_layout = layout(cfg, "val");
  const int64_t crop = cfg.get_int("segment.crop_size");
  s.model.vit = vit_config(cfg);
  s.model.vit.img_size = crop;
  s.model.vit.img_h = s.model.vit.img_w = 0;
  s.model.vit.learnable_pos_embed = true;
  s.model.vit.drop_path_rate = cfg.get_float("segment.drop_path");
  s.model.out_indices = cfg.get_ints("segment.out_indices");
  s.model.channels = cfg.get_int("segment.channels");
  s.model.pool_scales = cfg.get_ints("segment.pool_scales");
  s.model.num_classes = s.train_layout.num_classes;
  s.model.aux_head = cfg.get_bool("segment.aux_head");
  s.model.aux_channels = cfg.get_int("segment.aux_channels");
  s.model.aux_weight = cfg.get_float("segment.aux_weight");
  s.model.ignore_index = cfg.get_int("segment.ignore_index");
  s.model.validate(cfg.path().empty() ? "segment" : cfg.path());
  s.layer_decay = cfg.get_float("segment.layer_decay");
  s.poly_power = cfg.get_float("segment.poly_power");
  s.iters = cfg.get_int("segment.iters");
  s.warmup_iters = cfg.get_int("segment.warmup_iters");
  s.eval_every = cfg.get_int("segment.eval_every_steps");
  s.eval_limit = cfg.get_int("segment.eval_limit");
  s.eval.infer.mode = cfg.get_string("segment.mode");
  s.eval.infer.crop = cfg.get_int("segment.slide_crop");
  s.eval.infer.stride = cfg.get_int("segment.slide_stride");
  s.eval.infer.patch = s.model.vit.patch_size;
  const auto scale = cfg.get_floats("segment.scale");
  if (scale.size() != 2) throw InputError("segment.scale", "needs two edges [long, short]");
  s.eval.test_scale = {scale[0], scale[1]};
  s.eval.mean = cfg.get_floats("data.mean");
  s.eval.std = cfg.get_floats("data.std");
  s.eval.fail_on_bad_image = cfg.get_string("data.on_bad_image") == "fail";
  s.eval.ratios = cfg.get_floats("segment.aug_ratios");
  if (s.eval.ratios.empty()) throw InputError("segment.aug_ratios", "needs at least one ratio (1.0 = single scale)");
  s.eval.flip = cfg.get_bool("segment.aug_flip");
  return s;
}

std::unique_ptr<engine::Optimizer> make_segment_optimizer(const SegmentSettings& s, const engine::NamedParams& params) {
  engine::GroupRule rule;
  rule.weight_decay = s.train.weight_decay;
  rule.no_decay_names = {"backbone.cls_token", "backbone.pos_embed"};
  const int64_t depth = s.model.vit.depth;
  const std::string prefix = "backbone.";
  rule.layer_id = [depth, prefix](const std::string& n) {
    return n.rfind(prefix, 0) == 0 ? engine::vit_layer_id(n.substr(prefix.size()), depth) : depth + 1;
  };
  rule.num_layers = depth + 2;
  rule.layer_decay = s.layer_decay;
  return std::make_unique<engine::AdamW>(engine::make_param_groups(params, rule),
                                         engine::AdamWOptions{s.train.beta1, s.train.beta2, s.train.eps});
}

models::UperNet load_segmenter(const SegmentSettings& s, const std::string& checkpoint, const at::Device& device) {
  models::UperNet model(s.model);
  const std::string weights = engine::CheckpointManager::resolve(checkpoint).weights;
  models::LoadOptions o;
  o.where = weights;
  models::load_weights(*model, io::load_safetensors(weights).tensors, o);
  model->to(device);
  model->eval();
  return model;
}

eval::SegLogitsFn segmenter_logits(models::UperNet& model, const at::Device& device, bool bf16) {
  return [model, device, bf16](const at::Tensor& imgs) mutable {
    engine::AutocastGuard ac(device.type(), bf16);
    return model->predict_logits(imgs.to(device)).to(at::kFloat).cpu();
  };
}

}  // namespace semaim::tasks
