// Activation checkpointing as a custom autograd node, the reentrant form of PyTorch's torch.utils.checkpoint
// (CheckpointFunction: forward under no_grad, backward under fork_rng + the forward's autocast state).
#include "semaim/models/recompute.h"

#include <ATen/Context.h>
#include <ATen/autocast_mode.h>
#include <ATen/core/Generator.h>
#include <c10/core/GradMode.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/functions/utils.h>
#include <torch/csrc/autograd/saved_variable.h>

#include <algorithm>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "semaim/core/errors.h"

namespace semaim::models {
namespace {

using torch::autograd::variable_list;

// The CPU and every other device an input lives on: the generators a block may draw from.
std::vector<at::Device> generator_devices(const std::vector<at::Tensor>& inputs) {
  std::vector<at::Device> devices{at::Device(at::kCPU)};
  for (const auto& x : inputs)
    if (x.defined() && !x.is_cpu() && std::find(devices.begin(), devices.end(), x.device()) == devices.end())
      devices.push_back(x.device());
  return devices;
}

// Snapshots of default generators (torch.get_rng_state / get_device_states).
struct RngState {
  std::vector<std::pair<at::Device, at::Tensor>> states;

  static RngState capture(const std::vector<at::Device>& devices) {
    RngState s;
    for (const auto& d : devices) {
      at::Generator gen = at::globalContext().defaultGenerator(d);
      std::lock_guard<std::mutex> lock(gen.mutex());
      s.states.emplace_back(d, gen.get_state());
    }
    return s;
  }
  void restore() const {
    for (const auto& [d, state] : states) {
      at::Generator gen = at::globalContext().defaultGenerator(d);
      std::lock_guard<std::mutex> lock(gen.mutex());
      gen.set_state(state);
    }
  }
  std::vector<at::Device> devices() const {
    std::vector<at::Device> out;
    for (const auto& s : states) out.push_back(s.first);
    return out;
  }
};

// Puts the generators at `snapshot` for one scope and back where they were afterwards
// (torch.random.fork_rng), so a backward pass draws nothing from the stream training continues with.
class RngScope {
 public:
  explicit RngScope(const RngState& snapshot) : before_(RngState::capture(snapshot.devices())) {
    snapshot.restore();
  }
  ~RngScope() { before_.restore(); }
  RngScope(const RngScope&) = delete;
  RngScope& operator=(const RngScope&) = delete;

 private:
  RngState before_;
};

// The autocast switches of the device types semaim runs on (thread-local in ATen).
struct AutocastState {
  struct PerDevice {
    at::DeviceType type;
    bool enabled;
    at::ScalarType dtype;
  };
  std::vector<PerDevice> devices;
  bool cache_enabled = true;

  static AutocastState capture() {
    AutocastState s;
    for (const at::DeviceType t : {at::kCPU, at::kCUDA})
      s.devices.push_back({t, at::autocast::is_autocast_enabled(t), at::autocast::get_autocast_dtype(t)});
    s.cache_enabled = at::autocast::is_autocast_cache_enabled();
    return s;
  }
  void apply() const {
    for (const auto& d : devices) {
      at::autocast::set_autocast_enabled(d.type, d.enabled);
      at::autocast::set_autocast_dtype(d.type, d.dtype);
    }
    at::autocast::set_autocast_cache_enabled(cache_enabled);
  }
};

// Sets an autocast state for one scope, with the weight-cast cache off, and restores the previous state. Off
// because a cast cached here would outlive the scope: one made without grad (the checkpointed forward) would
// cut the recomputed graph off from the weight, one made in the recompute would be reused by a later forward
// after its graph was freed. A block reads each weight once, so the cache saves nothing inside it.
class AutocastScope {
 public:
  explicit AutocastScope(const AutocastState& s) : before_(AutocastState::capture()) {
    AutocastState uncached = s;
    uncached.cache_enabled = false;
    uncached.apply();
  }
  ~AutocastScope() { before_.apply(); }
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  AutocastState before_;
};

// The backward node of one checkpointed call: one output (the block's), one gradient edge per input.
class RecomputeBackward : public torch::autograd::Node {
 public:
  RecomputeBackward(RecomputeFn fn, const std::vector<at::Tensor>& inputs)
      : fn_(std::move(fn)),
        rng_(RngState::capture(generator_devices(inputs))),
        autocast_(AutocastState::capture()) {
    for (const auto& x : inputs) saved_.emplace_back(x, /*is_output=*/false);
  }
  std::string name() const override { return "semaim::RecomputeBackward"; }
  void release_variables() override {
    saved_.clear();
    released_ = true;
  }

  // grads: the output's gradient (one tensor, the output's shape) -> one gradient per input (undefined for
  // inputs that do not require grad)
  variable_list apply(variable_list&& grads) override {
    if (released_)
      throw RuntimeFailure(
          "recompute_in_backward: backward through a checkpointed block a second time (its inputs were "
          "freed by the first backward; pass retain_graph to keep them)");
    std::vector<at::Tensor> leaves;
    for (const auto& s : saved_) {
      const at::Tensor x = s.unpack();
      leaves.push_back(x.detach().requires_grad_(x.requires_grad()));
    }
    at::Tensor out;
    {
      RngScope rng(rng_);
      AutocastScope autocast(autocast_);
      at::AutoGradMode grad_on(true);
      out = fn_(leaves);
    }
    // The inner backward accumulates the parameters' .grad and the leaves' .grad, as PyTorch's reentrant
    // form.
    if (!grads.empty() && grads[0].defined() && out.requires_grad())
      torch::autograd::backward({out}, {grads[0]});
    variable_list result;
    for (const auto& leaf : leaves) result.push_back(leaf.requires_grad() ? leaf.grad() : at::Tensor());
    return result;
  }

 private:
  RecomputeFn fn_;
  RngState rng_;
  AutocastState autocast_;
  std::vector<torch::autograd::SavedVariable> saved_;
  bool released_ = false;
};

}  // namespace

bool recompute_applies(bool training, const std::vector<at::Tensor>& inputs) {
  if (!training || !c10::GradMode::is_enabled()) return false;
  return std::any_of(inputs.begin(), inputs.end(),
                     [](const at::Tensor& x) { return x.defined() && x.requires_grad(); });
}

// inputs: tensors of any shape -> fn(inputs)
at::Tensor recompute_in_backward(const RecomputeFn& fn, const std::vector<at::Tensor>& inputs) {
  for (const auto& x : inputs)
    if (!x.defined()) throw RuntimeFailure("recompute_in_backward: an input tensor is undefined");
  // Captured before fn draws anything, so the recompute sees the same random numbers.
  auto node =
      std::shared_ptr<RecomputeBackward>(new RecomputeBackward(fn, inputs), torch::autograd::deleteNode);
  node->set_next_edges(torch::autograd::collect_next_edges(inputs));
  at::Tensor out;
  {
    at::NoGradGuard no_grad;
    AutocastScope autocast(AutocastState::capture());
    out = fn(inputs);
    // An input or a view would carry another tensor's history; the node's output must be a tensor of its own.
    const bool is_input =
        std::any_of(inputs.begin(), inputs.end(), [&](const at::Tensor& x) { return x.is_same(out); });
    if (out.is_view() || is_input) out = out.clone();
  }
  torch::autograd::set_history(out, node);
  return out;
}

}  // namespace semaim::models
