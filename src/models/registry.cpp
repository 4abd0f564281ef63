// Registry of named AIM sizes (timm @register_model style; reference aim_base / aim_large, SPEC §3).
#include "semaim/models/registry.h"

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "semaim/config/config.h"
#include "semaim/config/errors.h"

namespace semaim::models {
namespace {

AimConfig make(int64_t img, int64_t patch, int64_t chans, int64_t dim, int64_t depth, int64_t heads,
               int64_t decoder_depth) {
  AimConfig c;
  c.vit.img_size = img;
  c.vit.patch_size = patch;
  c.vit.in_chans = chans;
  c.vit.embed_dim = dim;
  c.vit.depth = depth;
  c.vit.num_heads = heads;
  c.vit.mlp_ratio = 4.0;
  c.decoder_depth = decoder_depth;
  return c;
}

const std::map<std::string, AimConfig>& table() {
  static const std::map<std::string, AimConfig> kModels = {
      // Fashion-MNIST default: 28x28 grey images, 7x7 grid.
      {"aim_fmnist_patch4", make(28, 4, 1, 128, 4, 4, 4)},
      {"aim_tiny_patch16", make(224, 16, 3, 192, 12, 3, 12)},
      {"aim_small_patch16", make(224, 16, 3, 384, 12, 6, 12)},
      {"aim_base_patch16", make(224, 16, 3, 768, 12, 12, 12)},
      {"aim_large_patch16", make(224, 16, 3, 1024, 24, 16, 12)},
  };
  return kModels;
}

}  // namespace

AimConfig aim_config_by_name(const std::string& name) {
  const auto& models = table();
  if (auto it = models.find(name); it != models.end()) return it->second;
  std::string closest;
  size_t best = SIZE_MAX;
  for (const auto& [known, cfg] : models) {
    const size_t dist = config::edit_distance(name, known);
    if (dist < best) best = dist, closest = known;
  }
  throw InputError("model", "unknown model '" + name + "'; did you mean '" + closest + "'?");
}

std::vector<std::string> registered_models() {
  std::vector<std::string> names;
  for (const auto& [name, cfg] : table()) names.push_back(name);
  return names;
}

}  // namespace semaim::models
