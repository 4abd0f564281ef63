// What a training run must keep to resume exactly: the model, the optimizer, the EMA copy, the step counters
// (the data position follows from them: data order and augmentation are pure functions of (seed, epoch,
// index)) and the RNG states.
#pragma once
#include <ATen/ATen.h>
#include <torch/nn/module.h>

#include <string>

#include "semaim/engine/optimizer.h"
#include "semaim/io/safetensors.h"

namespace semaim::engine {

struct TrainState {
  torch::nn::Module* model = nullptr;
  Optimizer* optimizer = nullptr;
  torch::nn::Module* ema = nullptr;  // optional
  int64_t step = 0;                  // optimizer steps taken (skipped ones included)
  int64_t skipped_total = 0;
  int64_t steps_per_epoch = 1;
  int64_t accum_steps = 1;

  int64_t epoch() const { return step / steps_per_epoch; }
  // Micro-batches of the current epoch already consumed: where the loader resumes.
  int64_t batch_in_epoch() const { return (step % steps_per_epoch) * accum_steps; }

  // State-file tensors: `optim.*`, `ema.*`, `rng.cpu` (ATen's default CPU generator).
  io::NamedTensors state_tensors() const;
  // Restores state_tensors(); InputError naming `where` for a missing or mismatched tensor.
  void load_state_tensors(const io::NamedTensors& tensors, const std::string& where);
};

}  // namespace semaim::engine
