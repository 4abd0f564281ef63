// The dist area's configuration keys (dist.*): backend, collective timeout, gradient buckets.
#pragma once
#include "semaim/config/config.h"

namespace semaim::dist {

// Section dist.
void register_config_keys(config::Schema& schema);

}  // namespace semaim::dist
