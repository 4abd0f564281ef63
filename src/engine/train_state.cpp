// Train state <-> the tensors of a checkpoint's state file.
#include "semaim/engine/train_state.h"

#include <ATen/CPUGeneratorImpl.h>

#include "semaim/core/errors.h"
#include "semaim/models/weights.h"

namespace semaim::engine {

io::NamedTensors TrainState::state_tensors() const {
  io::NamedTensors out;
  for (auto& [k, t] : optimizer->state()) out.emplace_back("optim." + k, t);
  if (ema != nullptr)
    for (auto& [k, t] : models::module_weights(*ema)) out.emplace_back("ema." + k, t);
  out.emplace_back("rng.cpu", at::detail::getDefaultCPUGenerator().get_state());
  return out;
}

void TrainState::load_state_tensors(const io::NamedTensors& tensors, const std::string& where) {
  io::NamedTensors opt_state, ema_state;
  const at::Tensor* rng = nullptr;
  for (const auto& [k, t] : tensors) {
    if (k.rfind("optim.", 0) == 0) opt_state.emplace_back(k.substr(6), t);
    if (k.rfind("ema.", 0) == 0) ema_state.emplace_back(k.substr(4), t);
    if (k == "rng.cpu") rng = &t;
  }
  optimizer->load_state(opt_state, where);
  if (ema != nullptr) {
    if (ema_state.empty())
      throw InputError(where, "the run keeps an EMA copy but the checkpoint has no EMA weights");
    models::load_weights(*ema, ema_state, {.where = where});
  }
  if (rng != nullptr) {
    at::Generator g = at::detail::getDefaultCPUGenerator();
    const at::Tensor now = g.get_state();
    if (rng->scalar_type() != now.scalar_type() || !rng->sizes().equals(now.sizes()))
      throw InputError(where, "'rng.cpu' has dtype " + std::string(c10::toString(rng->scalar_type())) +
                                  " and shape " + c10::str(rng->sizes()) +
                                  ", ATen's CPU generator state is " + c10::toString(now.scalar_type()) +
                                  " " + c10::str(now.sizes()));
    g.set_state(*rng);
  }
}

}  // namespace semaim::engine
