// Named weights of a module as safetensors-ready tensors, and strict loading by key name.
#pragma once
#include <torch/nn/module.h>

#include <string>

#include "semaim/io/safetensors.h"

namespace semaim::train {

// Every parameter and buffer, keyed by its module path (timm names for the encoder).
io::NamedTensors module_weights(const torch::nn::Module& m);
// Copies `weights` into m. Strict: every key of m must be present with the same shape, and no extra key may
// exist unless allow_extra; a fault -> InputError naming `where` and the first offending key.
void load_module_weights(torch::nn::Module& m, const io::NamedTensors& weights, const std::string& where,
                         bool allow_extra = false);

}  // namespace semaim::train
