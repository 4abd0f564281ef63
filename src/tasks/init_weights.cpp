// finetune.init: resolve run directories and manifests to a weights file, then the models area's
// pretrained-encoder loader.
#include "semaim/tasks/init_weights.h"

#include <filesystem>

#include "semaim/core/errors.h"
#include "semaim/core/log.h"
#include "semaim/engine/checkpointer.h"
#include "semaim/models/pretrained.h"
#include "semaim/tasks/models.h"

namespace semaim::tasks {

models::LoadReport load_init_encoder(models::VitEncoderImpl& enc, const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::exists(path, ec)) throw InputError(path, "finetune.init: no such file or directory");
  std::string file = path;
  // A run directory, its checkpoints/ directory or a manifest: that checkpoint's weights file.
  if (fs::is_directory(path, ec) || fs::path(path).extension() == ".json")
    file = engine::CheckpointManager::resolve(path).weights;
  // The task's own head (head.*, fc_norm.*) is new; every other key of the model must come from the file.
  models::PretrainedOptions options;
  options.allow_missing = true;
  models::LoadReport r = models::load_pretrained_encoder(enc, file, options);
  for (const std::string& k : r.missing)
    if (k.rfind("head.", 0) != 0 && k.rfind("fc_norm.", 0) != 0 && k.rfind("head_bn.", 0) != 0)
      throw InputError(file, "finetune.init: encoder weight '" + k + "' is missing (" +
                                 std::to_string(r.missing.size()) + " keys missing in all)");
  core::log_info("initial weights from " + file + ":\n" + r.table());
  return r;
}

models::LoadReport load_init_backbone(models::VitDetBackboneImpl& net, const models::VitConfig& vit,
                                      const std::string& path) {
  models::VitConfig enc_cfg = vit;
  enc_cfg.drop_path_rate = 0.0;
  models::VitEncoder enc(enc_cfg);
  load_init_encoder(*enc, path);
  models::LoadOptions o;
  o.where = path;
  o.allow_extra = true;    // the encoder's final norm: ViTDet's pyramid reads the last block's output
  o.allow_missing = true;  // the relative position tables
  models::LoadReport r = models::load_weights(net, models::module_weights(*enc), o);
  for (const std::string& k : r.missing)
    if (k.find(".rel_pos_") == std::string::npos)
      throw InputError(path, "detect.init: backbone weight '" + k + "' has no counterpart in the encoder");
  return r;
}

models::VitEncoder frozen_encoder(const config::Config& cfg, bool random_init, const std::string& path,
                                  std::string& source) {
  at::manual_seed(static_cast<uint64_t>(cfg.get_int("run.seed")));
  models::VitEncoder enc(vit_config(cfg));
  if (!random_init) {
    load_init_encoder(*enc, path);
    source = path;
  } else {
    source = "random init (seed " + std::to_string(cfg.get_int("run.seed")) + ")";
    if (cfg.get_string("model.name").rfind("aim_", 0) == 0) {
      const models::AimVit aim = build_aim(cfg);
      io::NamedTensors w;
      for (auto& [k, t] : models::module_weights(*aim))
        if (models::AimVitImpl::is_encoder_key(k)) w.emplace_back(k, t);
      models::load_weights(*enc, w, {.where = "the initial two-stream model"});
    }
  }
  enc->eval();
  return enc;
}

}  // namespace semaim::tasks
