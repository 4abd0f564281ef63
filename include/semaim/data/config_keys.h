// The data area's configuration keys (data.*): dataset kind and layout, decoding, loader, transforms.
#pragma once
#include "semaim/config/config.h"

namespace semaim::data {

// Section data.
void register_config_keys(config::Schema& schema);

}  // namespace semaim::data
