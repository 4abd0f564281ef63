// AdamW through at::_fused_adamw_ (one multi-tensor launch per group, as torch.optim.AdamW(fused=True)) and
// the warmup + half-cosine schedule.
#include "semaim/train/optim.h"

#include <cmath>

#include "semaim/config/errors.h"

namespace semaim::train {

bool decays(const std::string& name, const at::Tensor& p) {
  const bool is_bias = name.size() >= 5 && name.compare(name.size() - 5, 5, ".bias") == 0;
  return p.dim() >= 2 && !is_bias;
}

AdamW::AdamW(std::vector<std::pair<std::string, at::Tensor>> params, AdamWConfig cfg) : cfg_(cfg) {
  groups_.resize(2);
  groups_[0].weight_decay = cfg.weight_decay;
  groups_[1].weight_decay = 0.0;
  for (auto& [name, p] : params) {
    Group& g = groups_[decays(name, p) ? 0 : 1];
    g.names.push_back(name);
    g.params.push_back(p);
    g.exp_avg.push_back(at::zeros_like(p, at::MemoryFormat::Preserve));
    g.exp_avg_sq.push_back(at::zeros_like(p, at::MemoryFormat::Preserve));
    // Fused AdamW keeps a float step count per parameter.
    g.steps.push_back(at::zeros({}, p.options().dtype(at::kFloat)));
  }
}

void AdamW::step() {
  for (auto& g : groups_) {
    std::vector<at::Tensor> ps, grads, m, v, st;
    for (size_t i = 0; i < g.params.size(); ++i) {
      const at::Tensor& grad = g.params[i].grad();
      if (!grad.defined()) continue;
      ps.push_back(g.params[i]);
      grads.push_back(grad);
      m.push_back(g.exp_avg[i]);
      v.push_back(g.exp_avg_sq[i]);
      st.push_back(g.steps[i]);
    }
    if (ps.empty()) continue;
    at::_foreach_add_(st, 1.0);
    at::_fused_adamw_(ps, grads, m, v, /*max_exp_avg_sqs=*/{}, st, cfg_.lr, cfg_.beta1, cfg_.beta2,
                      g.weight_decay, cfg_.eps, /*amsgrad=*/false, /*maximize=*/false);
  }
  ++steps_;
}

void AdamW::zero_grad() {
  for (auto& g : groups_)
    for (auto& p : g.params)
      if (p.grad().defined()) p.mutable_grad().reset();
}

io::NamedTensors AdamW::state() const {
  io::NamedTensors out;
  for (const auto& g : groups_) {
    for (size_t i = 0; i < g.params.size(); ++i) {
      out.emplace_back("exp_avg." + g.names[i], g.exp_avg[i]);
      out.emplace_back("exp_avg_sq." + g.names[i], g.exp_avg_sq[i]);
      out.emplace_back("step." + g.names[i], g.steps[i]);
    }
  }
  out.emplace_back("optimizer_steps", at::full({}, steps_, at::kLong));
  return out;
}

void AdamW::load_state(const io::NamedTensors& state, const std::string& where) {
  std::map<std::string, const at::Tensor*> by_name;
  for (const auto& [n, t] : state) by_name[n] = &t;
  auto fetch = [&](const std::string& key, at::Tensor& dst) {
    auto it = by_name.find(key);
    if (it == by_name.end()) throw InputError(where, "optimizer state has no tensor '" + key + "'");
    if (it->second->sizes() != dst.sizes())
      throw InputError(where, "optimizer state '" + key + "' has shape " + c10::str(it->second->sizes()) +
                                  ", the model needs " + c10::str(dst.sizes()));
    at::NoGradGuard ng;
    dst.copy_(*it->second);
  };
  for (auto& g : groups_) {
    for (size_t i = 0; i < g.params.size(); ++i) {
      fetch("exp_avg." + g.names[i], g.exp_avg[i]);
      fetch("exp_avg_sq." + g.names[i], g.exp_avg_sq[i]);
      fetch("step." + g.names[i], g.steps[i]);
    }
  }
  auto it = by_name.find("optimizer_steps");
  if (it == by_name.end()) throw InputError(where, "optimizer state has no 'optimizer_steps'");
  steps_ = it->second->item<int64_t>();
}

double lr_at(double epoch, double lr, double min_lr, double warmup_epochs, double total_epochs) {
  if (epoch < warmup_epochs) return lr * epoch / warmup_epochs;
  const double span = std::max(total_epochs - warmup_epochs, 1e-12);
  const double t = std::min((epoch - warmup_epochs) / span, 1.0);
  return min_lr + (lr - min_lr) * 0.5 * (1.0 + std::cos(M_PI * t));
}

double clip_grad_norm(const std::vector<at::Tensor>& params, double max_norm) {
  std::vector<at::Tensor> grads;
  for (const auto& p : params)
    if (p.grad().defined()) grads.push_back(p.grad());
  if (grads.empty()) return 0.0;
  auto norms = at::_foreach_norm(grads, 2.0);
  const double total = at::stack(norms).to(at::kDouble).norm().item<double>();
  if (max_norm > 0 && std::isfinite(total) && total > max_norm) {
    at::_foreach_mul_(grads, max_norm / (total + 1e-6));
  }
  return total;
}

}  // namespace semaim::train
