// The one precompiled header: the heavy torch headers, parsed once per target.
#pragma once
#include <torch/torch.h>
#include <ATen/ATen.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>
