// AdamW over named parameters (no decay on biases and 1-D parameters) through ATen's multi-tensor fused
// kernel, and the per-iteration warmup + half-cosine learning-rate schedule (SPEC §8; MAE's
// lr_sched.adjust_learning_rate).
#pragma once
#include <ATen/ATen.h>

#include <string>
#include <utility>
#include <vector>

#include "semaim/io/safetensors.h"

namespace semaim::train {

struct AdamWConfig {
  double lr = 1e-3;
  double beta1 = 0.9, beta2 = 0.95;
  double eps = 1e-8;
  double weight_decay = 0.05;
};

// True for parameters that get weight decay: at least 2-D and not a bias (MAE's param_groups_weight_decay).
bool decays(const std::string& name, const at::Tensor& p);

class AdamW {
 public:
  // params: (name, tensor) of every trainable parameter, in a fixed order.
  AdamW(std::vector<std::pair<std::string, at::Tensor>> params, AdamWConfig cfg);
  void set_lr(double lr) { cfg_.lr = lr; }
  double lr() const { return cfg_.lr; }
  // One update of every parameter with a defined gradient.
  void step();
  void zero_grad();
  int64_t steps_taken() const { return steps_; }
  // Optimizer state as named tensors (`exp_avg.<name>`, `exp_avg_sq.<name>`, `step.<name>`), for checkpoints.
  io::NamedTensors state() const;
  // Restores state(); throws InputError naming `where` if a tensor is missing or has the wrong shape.
  void load_state(const io::NamedTensors& state, const std::string& where);

 private:
  struct Group {
    double weight_decay;
    std::vector<std::string> names;
    std::vector<at::Tensor> params, exp_avg, exp_avg_sq, steps;
  };
  std::vector<Group> groups_;
  AdamWConfig cfg_;
  int64_t steps_ = 0;
};

// Learning rate at (fractional) epoch `epoch`: linear warmup from 0 over warmup_epochs, then half-cosine from
// lr to min_lr at total_epochs (per iteration: epoch = step / steps_per_epoch).
double lr_at(double epoch, double lr, double min_lr, double warmup_epochs, double total_epochs);

// Global L2 norm of the gradients, clipped in place to max_norm when max_norm > 0. Returns the norm before
// clipping.
double clip_grad_norm(const std::vector<at::Tensor>& params, double max_norm);

}  // namespace semaim::train
