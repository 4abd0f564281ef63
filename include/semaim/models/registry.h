// Named model sizes, looked up by the config's model string (timm @register_model style): ViT encoders for
// fine-tuning (vit_*) and two-stream pretraining models (aim_*) built on them.
#pragma once
#include <string>
#include <vector>

#include "semaim/models/aim.h"
#include "semaim/models/vit.h"

namespace semaim::models {

// The AIM configuration registered under `name`; unknown names throw InputError naming the closest one.
AimConfig aim_config_by_name(const std::string& name);
// Every registered AIM name, sorted.
std::vector<std::string> registered_models();

// The ViT encoder registered under `name` (vit_tiny_patch16 ...); aim_<size> uses vit_<size>'s encoder.
// Unknown names throw InputError naming the closest one.
VitConfig vit_config_by_name(const std::string& name);
// Every registered encoder name, sorted.
std::vector<std::string> registered_encoders();

}  // namespace semaim::models
