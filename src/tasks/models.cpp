// model.* / target.* keys -> typed settings; seeded model construction.
#include "semaim/tasks/models.h"

#include "semaim/core/errors.h"
#include "semaim/models/registry.h"

namespace semaim::tasks {

namespace {

// model.* overrides (0 = keep) and the checks every architecture needs.
void apply_overrides(const config::Config& cfg, models::VitConfig& v) {
  auto over = [&](const char* key, int64_t& field) {
    if (int64_t x = cfg.get_int(key); x > 0) field = x;
  };
  over("model.img_size", v.img_size);
  over("model.in_chans", v.in_chans);
  over("model.embed_dim", v.embed_dim);
  over("model.depth", v.depth);
  over("model.num_heads", v.num_heads);
  const std::string where = cfg.path().empty() ? "config" : cfg.path();
  if (v.embed_dim % v.num_heads != 0)
    throw InputError(where, "model.embed_dim " + std::to_string(v.embed_dim) +
                                " is not divisible by model.num_heads " + std::to_string(v.num_heads));
  if (v.img_size % v.patch_size != 0)
    throw InputError(where, "model.img_size " + std::to_string(v.img_size) +
                                " is not a multiple of the patch size " + std::to_string(v.patch_size));
}

}  // namespace

models::AimConfig aim_config(const config::Config& cfg) {
  models::AimConfig m = models::aim_config_by_name(cfg.get_string("model.name"));
  apply_overrides(cfg, m.vit);
  if (int64_t v = cfg.get_int("model.decoder_depth"); v > 0) m.decoder_depth = v;
  m.head = cfg.get_string("model.head");
  m.attention = cfg.get_string("model.attention");
  if (m.vit.depth % m.decoder_depth != 0)
    throw InputError(cfg.path().empty() ? "config" : cfg.path(),
                     "model.decoder_depth " + std::to_string(m.decoder_depth) +
                         " does not divide model.depth " + std::to_string(m.vit.depth));
  return m;
}

models::VitConfig vit_config(const config::Config& cfg) {
  const std::string name = cfg.get_string("model.name");
  if (name.rfind("aim_", 0) == 0) return aim_config(cfg).vit;
  models::VitConfig v = models::vit_config_by_name(name);
  apply_overrides(cfg, v);
  return v;
}

ordering::OrderingConfig ordering_config(const config::Config& cfg) {
  ordering::OrderingConfig o;
  o.strategy = ordering::parse_strategy(cfg.get_string("ordering.strategy"));
  o.source = ordering::parse_source(cfg.get_string("ordering.source"));
  o.center_windows = cfg.get_ints("ordering.center_windows");
  o.tie_noise = cfg.get_float("ordering.tie_noise");
  o.parts_k = cfg.get_int("ordering.parts_k");
  o.parts_iters = cfg.get_int("ordering.parts_iters");
  return o;
}

models::TargetConfig target_config(const config::Config& cfg) {
  models::TargetConfig t;
  t.blur_kernel = cfg.get_int("target.blur_kernel");
  t.blur_sigma = cfg.get_float("target.blur_sigma");
  t.norm_pix = cfg.get_bool("target.norm_pix");
  t.loss = cfg.get_string("target.loss");
  t.kind = cfg.get_string("target.kind");
  t.teacher_path = cfg.get_string("target.teacher_path");
  t.teacher_format = cfg.get_string("target.teacher_format");
  t.teacher_act = cfg.get_string("target.teacher_act");
  t.teacher_width = cfg.get_int("target.teacher_width");
  t.teacher_depth = cfg.get_int("target.teacher_depth");
  t.teacher_heads = cfg.get_int("target.teacher_heads");
  t.teacher_orders = cfg.get_bool("target.teacher_orders");
  return t;
}

models::AimVit build_aim(const config::Config& cfg) {
  at::manual_seed(static_cast<uint64_t>(cfg.get_int("run.seed")));
  return models::AimVit(aim_config(cfg));
}

std::vector<std::pair<std::string, at::Tensor>> trainable(const torch::nn::Module& m) {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (const auto& p : m.named_parameters(true))
    if (p.value().requires_grad()) out.emplace_back(p.key(), p.value());
  return out;
}

}  // namespace semaim::tasks
