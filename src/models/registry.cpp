// Registry of named ViT encoder sizes (timm vit_tiny/small/base/large_patch16_224) and the AIM models built
// on them (reference aim_base / aim_large, method.md §3), timm @register_model style.
#include "semaim/models/registry.h"

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "semaim/config/config.h"
#include "semaim/core/errors.h"

namespace semaim::models {
namespace {

VitConfig vit(int64_t img, int64_t patch, int64_t chans, int64_t dim, int64_t depth, int64_t heads) {
  VitConfig c;
  c.img_size = img;
  c.patch_size = patch;
  c.in_chans = chans;
  c.embed_dim = dim;
  c.depth = depth;
  c.num_heads = heads;
  c.mlp_ratio = 4.0;
  return c;
}

const std::map<std::string, VitConfig>& vit_table() {
  static const std::map<std::string, VitConfig> kEncoders = {
      // Fashion-MNIST default: 28x28 grey images, 7x7 grid.
      {"vit_fmnist_patch4", vit(28, 4, 1, 128, 4, 4)},
      {"vit_tiny_patch16", vit(224, 16, 3, 192, 12, 3)},
      {"vit_small_patch16", vit(224, 16, 3, 384, 12, 6)},
      {"vit_base_patch16", vit(224, 16, 3, 768, 12, 12)},
      {"vit_large_patch16", vit(224, 16, 3, 1024, 24, 16)},
  };
  return kEncoders;
}

AimConfig aim(const std::string& encoder, int64_t decoder_depth) {
  AimConfig c;
  c.vit = vit_table().at(encoder);
  c.decoder_depth = decoder_depth;
  return c;
}

const std::map<std::string, AimConfig>& aim_table() {
  static const std::map<std::string, AimConfig> kModels = {
      {"aim_fmnist_patch4", aim("vit_fmnist_patch4", 4)},  {"aim_tiny_patch16", aim("vit_tiny_patch16", 12)},
      {"aim_small_patch16", aim("vit_small_patch16", 12)}, {"aim_base_patch16", aim("vit_base_patch16", 12)},
      {"aim_large_patch16", aim("vit_large_patch16", 12)},
  };
  return kModels;
}

template <typename Config>
const Config& lookup(const std::map<std::string, Config>& table, const std::string& name,
                     const std::string& what) {
  if (auto it = table.find(name); it != table.end()) return it->second;
  std::string closest;
  size_t best = SIZE_MAX;
  for (const auto& [known, cfg] : table) {
    const size_t dist = config::edit_distance(name, known);
    if (dist < best) best = dist, closest = known;
  }
  throw InputError("model", "unknown " + what + " '" + name + "'; did you mean '" + closest + "'?");
}

template <typename Config>
std::vector<std::string> names(const std::map<std::string, Config>& table) {
  std::vector<std::string> out;
  for (const auto& [name, cfg] : table) out.push_back(name);
  return out;
}

}  // namespace

AimConfig aim_config_by_name(const std::string& name) { return lookup(aim_table(), name, "model"); }

std::vector<std::string> registered_models() { return names(aim_table()); }

VitConfig vit_config_by_name(const std::string& name) { return lookup(vit_table(), name, "encoder"); }

std::vector<std::string> registered_encoders() { return names(vit_table()); }

}  // namespace semaim::models
