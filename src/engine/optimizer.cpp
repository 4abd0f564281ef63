// Parameter groups by rule, AdamW through at::_fused_adamw_ (one multi-tensor launch per group, as
// torch.optim.AdamW(fused=True)), SGD with momentum as torch.optim.SGD, LARS as MAE's util/lars.py, and
// global-norm clipping.
#include "semaim/engine/optimizer.h"

#include <cmath>
#include <map>

#include "semaim/core/errors.h"

namespace semaim::engine {
namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

bool decays(const std::string& name, const at::Tensor& p, const GroupRule& rule) {
  for (const auto& n : rule.no_decay_names)
    if (n == name) return false;
  if (rule.decay_if) return rule.decay_if(name, p);
  return p.dim() >= 2 && !ends_with(name, ".bias");
}

std::vector<ParamGroup> make_param_groups(const NamedParams& params, const GroupRule& rule) {
  std::vector<ParamGroup> groups;
  std::map<std::string, size_t> index;
  // With layer decay, groups are created in the order their first parameter appears (as timm and MAE do);
  // without it the decayed group comes first ([decay, no_decay], the order torch users write by hand).
  for (int pass = 0; pass < 2; ++pass) {
    for (const auto& [name, p] : params) {
      if (!p.requires_grad()) continue;
      const bool decay = decays(name, p, rule);
      if (pass == 0 && !decay && !rule.layer_id) continue;
      if (pass == 1 && (decay || rule.layer_id)) continue;
      std::string key = decay ? "decay" : "no_decay";
      double scale = 1.0;
      if (rule.layer_id) {
        const int64_t id = rule.layer_id(name);
        key = "layer_" + std::to_string(id) + "_" + key;
        scale = std::pow(rule.layer_decay, static_cast<double>(rule.num_layers - 1 - id));
      }
      auto it = index.find(key);
      if (it == index.end()) {
        it = index.emplace(key, groups.size()).first;
        groups.push_back(ParamGroup{key, decay ? rule.weight_decay : 0.0, scale, {}});
      }
      groups[it->second].params.emplace_back(name, p);
    }
  }
  return groups;
}

int64_t vit_layer_id(const std::string& name, int64_t depth) {
  if (name == "cls_token" || name == "pos_embed" || name.rfind("patch_embed.", 0) == 0) return 0;
  if (name.rfind("blocks.", 0) == 0) {
    const size_t dot = name.find('.', 7);
    return std::stoll(name.substr(7, dot - 7)) + 1;
  }
  return depth + 1;
}

Optimizer::Optimizer(std::vector<ParamGroup> groups) : groups_(std::move(groups)) {}

void Optimizer::add_slot(const std::string& name, const std::function<at::Tensor(const at::Tensor&)>& make) {
  Slot s{name, {}};
  for (const auto& g : groups_) {
    s.per_group.emplace_back();
    for (const auto& [n, p] : g.params) s.per_group.back().push_back(make(p));
  }
  slots_.push_back(std::move(s));
}

void Optimizer::step() {
  for (size_t g = 0; g < groups_.size(); ++g) {
    std::vector<size_t> idx;
    for (size_t i = 0; i < groups_[g].params.size(); ++i)
      if (groups_[g].params[i].second.grad().defined()) idx.push_back(i);
    if (!idx.empty()) step_group(g, idx, groups_[g].lr_scale == 1.0 ? lr_ : lr_ * groups_[g].lr_scale);
  }
  ++steps_;
}

void Optimizer::zero_grad() {
  for (auto& g : groups_)
    for (auto& [n, p] : g.params)
      if (p.grad().defined()) p.mutable_grad().reset();
}

std::vector<at::Tensor> Optimizer::parameters() const {
  std::vector<at::Tensor> out;
  for (const auto& g : groups_)
    for (const auto& [n, p] : g.params) out.push_back(p);
  return out;
}

io::NamedTensors Optimizer::state() const {
  io::NamedTensors out;
  for (size_t g = 0; g < groups_.size(); ++g)
    for (size_t i = 0; i < groups_[g].params.size(); ++i)
      for (const auto& s : slots_)
        out.emplace_back(s.name + "." + groups_[g].params[i].first, s.per_group[g][i]);
  out.emplace_back("optimizer_steps", at::full({}, steps_, at::kLong));
  return out;
}

void Optimizer::load_state(const io::NamedTensors& state, const std::string& where) {
  std::map<std::string, const at::Tensor*> by_name;
  for (const auto& [n, t] : state) by_name[n] = &t;
  at::NoGradGuard ng;
  for (size_t g = 0; g < groups_.size(); ++g) {
    for (size_t i = 0; i < groups_[g].params.size(); ++i) {
      for (auto& s : slots_) {
        const std::string key = s.name + "." + groups_[g].params[i].first;
        at::Tensor& dst = s.per_group[g][i];
        auto it = by_name.find(key);
        if (it == by_name.end()) throw InputError(where, "optimizer state has no tensor '" + key + "'");
        const at::Tensor& src = *it->second;
        if (src.sizes() != dst.sizes())
          throw InputError(where, "optimizer state '" + key + "' has shape " + c10::str(src.sizes()) +
                                      ", the model needs " + c10::str(dst.sizes()));
        if (src.is_floating_point() != dst.is_floating_point())
          throw InputError(where, "optimizer state '" + key + "' has dtype " +
                                      c10::toString(src.scalar_type()) + ", the optimizer needs " +
                                      c10::toString(dst.scalar_type()));
        if (src.is_floating_point() && !at::isfinite(src).all().item<bool>())
          throw InputError(where, "optimizer state '" + key + "' holds NaN or Inf values");
        dst.copy_(src);
      }
    }
  }
  auto it = by_name.find("optimizer_steps");
  if (it == by_name.end()) throw InputError(where, "optimizer state has no 'optimizer_steps'");
  if (it->second->numel() != 1 || it->second->is_floating_point())
    throw InputError(where, "'optimizer_steps' must be one integer");
  steps_ = it->second->item<int64_t>();
}

AdamW::AdamW(std::vector<ParamGroup> groups, AdamWOptions opts) : Optimizer(std::move(groups)), opts_(opts) {
  auto zeros = [](const at::Tensor& p) { return at::zeros_like(p, at::MemoryFormat::Preserve); };
  add_slot("exp_avg", zeros);
  add_slot("exp_avg_sq", zeros);
  // The fused kernel keeps a float step count per parameter.
  add_slot("step", [](const at::Tensor& p) { return at::zeros({}, p.options().dtype(at::kFloat)); });
}

void AdamW::step_group(size_t g, const std::vector<size_t>& idx, double lr) {
  std::vector<at::Tensor> ps, grads, m, v, st;
  for (size_t i : idx) {
    ps.push_back(groups_[g].params[i].second);
    grads.push_back(ps.back().grad());
    m.push_back(slot(0).per_group[g][i]);
    v.push_back(slot(1).per_group[g][i]);
    st.push_back(slot(2).per_group[g][i]);
  }
  at::_foreach_add_(st, 1.0);
  at::_fused_adamw_(ps, grads, m, v, /*max_exp_avg_sqs=*/{}, st, lr, opts_.beta1, opts_.beta2,
                    groups_[g].weight_decay, opts_.eps, /*amsgrad=*/false, /*maximize=*/false);
}

Sgd::Sgd(std::vector<ParamGroup> groups, SgdOptions opts) : Optimizer(std::move(groups)), opts_(opts) {
  if (opts.nesterov && (opts.momentum <= 0 || opts.dampening != 0))
    throw InputError("optimizer", "Nesterov momentum needs momentum > 0 and dampening 0");
  add_slot("momentum_buffer",
           [](const at::Tensor& p) { return at::zeros_like(p, at::MemoryFormat::Preserve); });
  add_slot("step", [](const at::Tensor& p) { return at::zeros({}, p.options().dtype(at::kFloat)); });
}

void Sgd::step_group(size_t g, const std::vector<size_t>& idx, double lr) {
  at::NoGradGuard ng;
  const double wd = groups_[g].weight_decay;
  for (size_t i : idx) {
    at::Tensor& p = groups_[g].params[i].second;
    at::Tensor d = wd != 0 ? p.grad().add(p, wd) : p.grad();
    if (opts_.momentum != 0) {
      at::Tensor& buf = slot(0).per_group[g][i];
      at::Tensor& count = slot(1).per_group[g][i];
      if (count.item<float>() == 0)
        buf.copy_(d);  // torch initialises the buffer with the first gradient, undamped
      else
        buf.mul_(opts_.momentum).add_(d, 1.0 - opts_.dampening);
      d = opts_.nesterov ? d.add(buf, opts_.momentum) : buf;
      count.add_(1.0);
    }
    p.add_(d, -lr);
  }
}

Lars::Lars(std::vector<ParamGroup> groups, LarsOptions opts) : Optimizer(std::move(groups)), opts_(opts) {
  if (!(opts.momentum >= 0) || !(opts.trust_coefficient > 0))
    throw InputError("optimizer", "LARS needs momentum >= 0 and trust_coefficient > 0");
  add_slot("mu", [](const at::Tensor& p) { return at::zeros_like(p, at::MemoryFormat::Preserve); });
}

void Lars::step_group(size_t g, const std::vector<size_t>& idx, double lr) {
  at::NoGradGuard ng;
  const double wd = groups_[g].weight_decay;
  for (size_t i : idx) {
    at::Tensor& p = groups_[g].params[i].second;
    at::Tensor d = p.grad();
    if (p.dim() > 1) {
      d = d.add(p, wd);
      // The trust ratio stays a device tensor (no host sync), built with MAE's ops in MAE's order.
      const at::Tensor p_norm = at::norm(p), d_norm = at::norm(d), one = at::ones_like(p_norm);
      const at::Tensor q =
          at::where(p_norm > 0, at::where(d_norm > 0, p_norm * opts_.trust_coefficient / d_norm, one), one);
      d = d.mul(q);
    }
    at::Tensor& mu = slot(0).per_group[g][i];
    mu.mul_(opts_.momentum).add_(d);
    p.add_(mu, -lr);
  }
}

double clip_grad_norm(const std::vector<at::Tensor>& params, double max_norm) {
  std::vector<at::Tensor> grads;
  for (const auto& p : params)
    if (p.grad().defined()) grads.push_back(p.grad());
  if (grads.empty()) return 0.0;
  auto norms = at::_foreach_norm(grads, 2.0);
  const double total = at::stack(norms).to(at::kDouble).norm().item<double>();
  if (max_norm > 0 && std::isfinite(total) && total > max_norm)
    at::_foreach_mul_(grads, max_norm / (total + 1e-6));
  return total;
}

}  // namespace semaim::engine
