// The model.*, target.* and ordering.* sections as the tasks' typed settings, and the seeded model builder.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "semaim/config/config.h"
#include "semaim/models/aim.h"
#include "semaim/models/targets.h"
#include "semaim/ordering/ordering.h"

namespace semaim::tasks {

// Registered size plus the model.* overrides; checks heads | width, decoder depth | depth, patch | image
// size.
models::AimConfig aim_config(const config::Config& cfg);
models::TargetConfig target_config(const config::Config& cfg);
// The encoder of model.name with the model.* overrides: an aim_* name's encoder, or a vit_* encoder.
models::VitConfig vit_config(const config::Config& cfg);
ordering::OrderingConfig ordering_config(const config::Config& cfg);
// The model for the config, initialized from run.seed (deterministic across runs).
models::AimVit build_aim(const config::Config& cfg);
// (name, tensor) of every parameter that requires grad, in the module's order.
std::vector<std::pair<std::string, at::Tensor>> trainable(const torch::nn::Module& m);

}  // namespace semaim::tasks
