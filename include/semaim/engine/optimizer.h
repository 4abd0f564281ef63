// Optimizers over parameter groups built by a rule (MAE's util/lr_decay.param_groups_lrd and timm's
// param_groups_layer_decay): weight decay on or off per parameter, an lr scale per group, so layer-wise lr
// decay is a rule and not a new optimizer. AdamW runs ATen's fused multi-tensor kernel; SGD has momentum and
// Nesterov; LARS is MAE's (util/lars.py) for the linear probe.
#pragma once
#include <ATen/ATen.h>

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "semaim/io/safetensors.h"

namespace semaim::engine {

using NamedParams = std::vector<std::pair<std::string, at::Tensor>>;

struct ParamGroup {
  std::string name;  // e.g. "decay", "no_decay", "layer_3_decay"
  double weight_decay = 0.0;
  double lr_scale = 1.0;  // the group's lr = the schedule's lr x lr_scale
  NamedParams params;
};

// How parameters are grouped. Parameters keep their order inside a group. With layer decay, groups appear in
// the order their first parameter does (timm's and MAE's order); without it, [decay, no_decay].
struct GroupRule {
  double weight_decay = 0.05;
  // Names (exact) that never decay besides biases and 1-D parameters (MAE: cls_token, pos_embed).
  std::vector<std::string> no_decay_names;
  // Layer-wise lr decay: scale = layer_decay^(num_layers - 1 - layer_id(name)); off when layer_id is empty.
  std::function<int64_t(const std::string&)> layer_id;
  int64_t num_layers = 1;
  double layer_decay = 1.0;
  // Replaces the default decay test (at least 2-D, not a bias) when set; no_decay_names still apply. detectron2's
  // recipes decay biases and exempt only normalization parameters.
  std::function<bool(const std::string& name, const at::Tensor& p)> decay_if;
};

// True for parameters that get weight decay under `rule`: not listed, and rule.decay_if (default: at least 2-D,
// not a bias).
bool decays(const std::string& name, const at::Tensor& p, const GroupRule& rule = {});

// The groups of `params` under `rule`; parameters that do not require grad are left out.
std::vector<ParamGroup> make_param_groups(const NamedParams& params, const GroupRule& rule);

// MAE's get_layer_id_for_vit: cls_token, pos_embed and patch_embed -> 0, blocks.i -> i + 1, the rest -> depth
// + 1 (so a ViT has depth + 2 layers).
int64_t vit_layer_id(const std::string& name, int64_t depth);

class Optimizer {
 public:
  explicit Optimizer(std::vector<ParamGroup> groups);
  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  // The schedule's lr; each group steps with lr x its lr_scale.
  void set_lr(double lr) { lr_ = lr; }
  double lr() const { return lr_; }
  // One update of every parameter with a defined gradient.
  void step();
  void zero_grad();
  int64_t steps_taken() const { return steps_; }
  const std::vector<ParamGroup>& groups() const { return groups_; }
  // Every parameter of every group, in group order.
  std::vector<at::Tensor> parameters() const;

  // Optimizer state as named tensors (`<slot>.<param name>` plus `optimizer_steps`), for checkpoints.
  io::NamedTensors state() const;
  // Restores state(); InputError naming `where` when a tensor is missing or has the wrong shape.
  void load_state(const io::NamedTensors& state, const std::string& where);

 protected:
  // Per-parameter state slots, in a fixed order (e.g. exp_avg, exp_avg_sq, step).
  struct Slot {
    std::string name;
    std::vector<std::vector<at::Tensor>> per_group;  // [group][param]
  };
  // Adds a slot created lazily-free: one tensor per parameter from `make`.
  void add_slot(const std::string& name, const std::function<at::Tensor(const at::Tensor&)>& make);
  Slot& slot(size_t i) { return slots_[i]; }
  // Updates group g's parameters that have gradients; `idx` are their positions in the group.
  virtual void step_group(size_t g, const std::vector<size_t>& idx, double lr) = 0;

  std::vector<ParamGroup> groups_;

 private:
  std::vector<Slot> slots_;
  double lr_ = 0.0;
  int64_t steps_ = 0;
};

struct AdamWOptions {
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
};

// torch.optim.AdamW(fused=True) per group (decoupled weight decay, bias correction from a per-parameter
// count).
class AdamW final : public Optimizer {
 public:
  AdamW(std::vector<ParamGroup> groups, AdamWOptions opts);

 private:
  void step_group(size_t g, const std::vector<size_t>& idx, double lr) override;
  AdamWOptions opts_;
};

struct SgdOptions {
  double momentum = 0.0, dampening = 0.0;
  bool nesterov = false;
};

// torch.optim.SGD per group: L2 weight decay added to the gradient, then momentum (buffer initialised with
// the first gradient) and optionally Nesterov.
class Sgd final : public Optimizer {
 public:
  Sgd(std::vector<ParamGroup> groups, SgdOptions opts);

 private:
  void step_group(size_t g, const std::vector<size_t>& idx, double lr) override;
  SgdOptions opts_;
};

struct LarsOptions {
  double momentum = 0.9;
  double trust_coefficient = 0.001;  // eta
};

// LARS as MAE's util/lars.py defines it. A parameter with more than one dimension steps with
// d = grad + weight_decay x p scaled by the trust ratio eta ||p|| / ||d|| (1 when either norm is 0);
// 1-D parameters (biases, norm weights) step with the plain gradient, without weight decay or adaptation.
// Then mu = momentum x mu + d (mu starts at zero) and p -= lr x mu.
class Lars final : public Optimizer {
 public:
  Lars(std::vector<ParamGroup> groups, LarsOptions opts);

 private:
  void step_group(size_t g, const std::vector<size_t>& idx, double lr) override;
  LarsOptions opts_;
};

// Global L2 norm of the gradients, clipped in place to max_norm when max_norm > 0. Returns the norm before
// clipping.
double clip_grad_norm(const std::vector<at::Tensor>& params, double max_norm);

}  // namespace semaim::engine
