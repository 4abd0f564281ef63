// The detect.* section (detect_settings.h).
#include "semaim/tasks/detect_settings.h"


#include <nlohmann/json.hpp>

#include "semaim/core/errors.h"
#include "semaim/data/settings.h"
#include "semaim/engine/checkpointer.h"
#include "semaim/io/safetensors.h"
#include "semaim/models/weights.h"
#include "semaim/tasks/models.h"

namespace semaim::tasks {

data::CocoLayout DetectSettings::read_layout(const config::Config& cfg, const std::string& split) {
  const std::string ann = config::expand_home(cfg.get_string("detect." + split + "_annotations"));
  const std::string img = config::expand_home(cfg.get_string("detect." + split + "_images"));
  data::CocoLayout l;
  if (ann.empty() || img.empty())
    l = data::coco_layout(config::expand_home(cfg.get_string("detect.data_root")), split);
  if (!ann.empty()) l.annotations = ann;
  if (!img.empty()) l.image_dir = img;
  return l;
}

namespace {

void read_model(const config::Config& cfg, int64_t num_classes, DetectSettings& s) {
  const int64_t size = cfg.get_int("data.lsj_size");
  models::MaskRcnnConfig& m = s.model;
  m.backbone.vit = vit_config(cfg);  // the encoder as pretrained: its table's grid is the pretraining size
  m.backbone.vit.drop_path_rate = cfg.get_float("detect.drop_path");
  m.backbone.input_size = size;
  m.backbone.window_size = cfg.get_int("detect.window_size");
  m.backbone.global_blocks = cfg.get_ints("detect.global_blocks");
  m.backbone.use_rel_pos = cfg.get_bool("detect.rel_pos");
  m.backbone.sincos_abs_pos = cfg.get_string("detect.abs_pos") == "sincos";  // the schema allows only these two
  m.fpn_channels = cfg.get_int("detect.fpn_channels");
  m.scale_factors = cfg.get_floats("detect.pyramid_scales");
  m.rpn.anchor_sizes = cfg.get_floats("detect.anchor_sizes");
  if (m.rpn.anchor_sizes.size() != m.scale_factors.size() + 1)
    throw InputError("detect.anchor_sizes", "needs one size per pyramid level (" +
                                                std::to_string(m.scale_factors.size() + 1) + " with the extra level)");
  m.rpn.batch_size_per_image = cfg.get_int("detect.rpn_batch_per_image");
  m.rpn.pre_nms_topk_train = cfg.get_int("detect.rpn_pre_nms_topk_train");
  m.rpn.post_nms_topk_train = cfg.get_int("detect.rpn_post_nms_topk_train");
  m.rpn.pre_nms_topk_test = cfg.get_int("detect.rpn_pre_nms_topk_test");
  m.rpn.post_nms_topk_test = cfg.get_int("detect.rpn_post_nms_topk_test");
  m.roi.batch_size_per_image = cfg.get_int("detect.roi_batch_per_image");
  m.roi.conv_dim = cfg.get_int("detect.head_conv_dim");
  m.roi.fc_dim = cfg.get_int("detect.head_fc_dim");
  m.roi.num_classes = num_classes;
  m.roi.mask_on = cfg.get_bool("detect.mask_on");
  m.roi.test_score_thresh = cfg.get_float("detect.score_thresh");
  m.roi.test_nms_thresh = cfg.get_float("detect.nms_thresh");
  m.roi.test_detections_per_img = cfg.get_int("detect.max_detections");
  if (size % m.backbone.vit.patch_size != 0)
    throw InputError("data.lsj_size", "must be a multiple of the patch size " +
                                              std::to_string(m.backbone.vit.patch_size));
  m.validate(cfg.path().empty() ? "detect" : cfg.path());
}

}  // namespace

DetectSettings DetectSettings::read(const config::Config& cfg, int64_t num_classes) {
  DetectSettings s;
  s.train = engine::TrainSettings::read(cfg, "detect");
  s.checkpoint = engine::CheckpointSettings::read(cfg);
  s.log = engine::LogSettings::read(cfg);
  s.train_layout = read_layout(cfg, "train");
  s.val_layout = read_layout(cfg, "val");
  read_model(cfg, num_classes, s);
  s.lsj = data::lsj_config(cfg);
  s.layer_decay = cfg.get_float("detect.layer_decay");
  s.iters = cfg.get_int("detect.iters");
  s.warmup_iters = cfg.get_int("detect.warmup_iters");
  s.milestones = cfg.get_ints("detect.milestones");
  for (size_t i = 0; i < s.milestones.size(); ++i)
    if (s.milestones[i] > s.iters || (i > 0 && s.milestones[i] <= s.milestones[i - 1]))
      throw InputError("detect.milestones", "must rise and lie within detect.iters (" + std::to_string(s.iters) + ")");
  s.eval_every = cfg.get_int("detect.eval_every_steps");
  s.eval_limit = cfg.get_int("detect.eval_limit");
  s.eval_batch = cfg.get_int("detect.eval_batch");
  s.mean = cfg.get_floats("data.mean");
  s.std = cfg.get_floats("data.std");
  s.fail_on_bad_image = cfg.get_string("data.on_bad_image") == "fail";
  return s;
}

std::unique_ptr<engine::Optimizer> make_detect_optimizer(const DetectSettings& s, const engine::NamedParams& params) {
  engine::GroupRule rule;
  rule.weight_decay = s.train.weight_decay;
  const std::string prefix = "backbone.net.";
  rule.no_decay_names = {prefix + "pos_embed", prefix + "cls_token"};
  // detectron2 get_default_optimizer_params: the parameters of normalization modules do not decay; biases do.
  rule.decay_if = [](const std::string& n, const at::Tensor&) {
    return n.find(".norm") == std::string::npos && n.find("simfp_2.1.") == std::string::npos;
  };
  const int64_t depth = s.model.backbone.vit.depth;
  rule.layer_id = [depth, prefix](const std::string& n) {
    return n.rfind(prefix, 0) == 0 ? engine::vit_layer_id(n.substr(prefix.size()), depth) : depth + 1;
  };
  rule.num_layers = depth + 2;
  rule.layer_decay = s.layer_decay;
  return std::make_unique<engine::AdamW>(engine::make_param_groups(params, rule),
                                         engine::AdamWOptions{s.train.beta1, s.train.beta2, s.train.eps});
}

DetectorCheckpoint read_detector_checkpoint(const std::string& checkpoint) {
  DetectorCheckpoint c;
  c.weights = engine::CheckpointManager::resolve(checkpoint).weights;
  c.file = io::load_safetensors(c.weights);
  const auto format = c.file.metadata.find("format");
  const auto cats = c.file.metadata.find("categories");
  if (format == c.file.metadata.end() || format->second != "semaim-maskrcnn" || cats == c.file.metadata.end())
    throw InputError(c.weights, "is not a semaim detection checkpoint (metadata format semaim-maskrcnn with "
                                "categories)");
  const nlohmann::json j = nlohmann::json::parse(cats->second, nullptr, /*allow_exceptions=*/false);
  if (!j.is_array() || j.empty())
    throw InputError(c.weights, "metadata 'categories' is not a non-empty JSON list");
  for (const auto& e : j) {
    if (!e.is_object() || !e.contains("id") || !e["id"].is_number_integer() || !e.contains("name") ||
        !e["name"].is_string())
      throw InputError(c.weights, "metadata 'categories' holds an entry without an integer id and a name");
    c.category_ids.push_back(e["id"].get<int64_t>());
    c.category_names.push_back(e["name"].get<std::string>());
  }
  return c;
}

models::MaskRcnn load_detector(const DetectSettings& s, const DetectorCheckpoint& ckpt, const at::Device& device) {
  models::MaskRcnn model(s.model);
  models::LoadOptions o;
  o.where = ckpt.weights;
  models::load_weights(*model, ckpt.file.tensors, o);
  model->to(device);
  model->eval();
  return model;
}

}  // namespace semaim::tasks
