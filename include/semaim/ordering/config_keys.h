// The ordering area's configuration keys (ordering.*): the strategy (choices from the strategy table) and
// its parameters (method.md §5-6).
#pragma once
#include "semaim/config/config.h"

namespace semaim::ordering {

// Section ordering.
void register_config_keys(config::Schema& schema);

}  // namespace semaim::ordering
