// Named model sizes, looked up by the config's model string (timm @register_model style).
#pragma once
#include <string>
#include <vector>

#include "semaim/models/aim.h"

namespace semaim::models {

// The AIM configuration registered under `name`; unknown names throw InputError naming the closest one.
AimConfig aim_config_by_name(const std::string& name);
// Every registered name, sorted.
std::vector<std::string> registered_models();

}  // namespace semaim::models
