// The models area's configuration keys: model.* (registered size, overrides, head, attention form) and
// target.* (the pixel target, method.md §7).
#pragma once
#include "semaim/config/config.h"

namespace semaim::models {

// Sections model and target.
void register_config_keys(config::Schema& schema);

}  // namespace semaim::models
