// Named weights <-> module, strict by key and shape.
#include "semaim/train/weights.h"

#include <map>

#include "semaim/config/errors.h"

namespace semaim::train {

io::NamedTensors module_weights(const torch::nn::Module& m) {
  io::NamedTensors out;
  for (const auto& p : m.named_parameters(/*recurse=*/true)) out.emplace_back(p.key(), p.value().detach());
  for (const auto& b : m.named_buffers(/*recurse=*/true)) out.emplace_back(b.key(), b.value().detach());
  return out;
}

void load_module_weights(torch::nn::Module& m, const io::NamedTensors& weights, const std::string& where,
                         bool allow_extra) {
  std::map<std::string, const at::Tensor*> given;
  for (const auto& [k, t] : weights) given[k] = &t;
  std::map<std::string, at::Tensor> wanted;
  for (const auto& p : m.named_parameters(true)) wanted[p.key()] = p.value();
  for (const auto& b : m.named_buffers(true)) wanted[b.key()] = b.value();
  for (const auto& [k, dst] : wanted) {
    auto it = given.find(k);
    if (it == given.end())
      throw InputError(where, "missing weight '" + k + "' (wrong model size or not a semaim checkpoint?)");
    if (it->second->sizes() != dst.sizes())
      throw InputError(where, "weight '" + k + "' has shape " + c10::str(it->second->sizes()) +
                                  " but the model needs " + c10::str(dst.sizes()) +
                                  " (checkpoint of a different model size?)");
  }
  if (!allow_extra)
    for (const auto& [k, t] : given)
      if (!wanted.count(k))
        throw InputError(where, "unexpected weight '" + k + "' (checkpoint of a different model?)");
  at::NoGradGuard ng;
  for (auto& [k, dst] : wanted) dst.copy_(*given[k]);
}

}  // namespace semaim::train
