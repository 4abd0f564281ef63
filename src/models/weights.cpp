// Loading named weights by key (timm load_state_dict strict / non-strict; the position table resampled as
// timm's vision_transformer checkpoint_filter_fn does with resample_abs_pos_embed).
#include "semaim/models/weights.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "semaim/core/errors.h"
#include "semaim/models/vit.h"

namespace semaim::models {
namespace {

bool is_pos_embed_key(const std::string& key) {
  const std::string name = "pos_embed";
  return key == name || (key.size() > name.size() && key.ends_with("." + name));
}

// The side of a square grid of `tokens` patches, or 0 when it is not a square.
int64_t square_side(int64_t tokens) {
  const auto side = static_cast<int64_t>(std::llround(std::sqrt(static_cast<double>(tokens))));
  return tokens > 0 && side * side == tokens ? side : 0;
}

// The grid the module's position table at `key` stands for: its encoder's configured grid, or a square.
std::optional<Grid> target_grid(const torch::nn::Module& m, const std::string& key, const at::Tensor& table) {
  const torch::nn::Module* owner = &m;
  if (key != "pos_embed") {
    // Without include_self, named_modules works on a module not held by a shared_ptr too.
    auto modules = m.named_modules("", /*include_self=*/false);
    const auto* found = modules.find(key.substr(0, key.size() - std::string(".pos_embed").size()));
    owner = found ? found->get() : nullptr;
  }
  if (const auto* vit = dynamic_cast<const VitEncoderImpl*>(owner)) return vit->vit_config().grid();
  const int64_t side = square_side(table.size(1) - 1);
  return side > 0 ? std::optional<Grid>(Grid{side, side}) : std::nullopt;
}

// The source table resampled to the module's grid (src itself when the grids agree), or undefined when the
// two differ in more than the grid.
// src, dst: (1, 1 + grid, D) -> (1, 1 + dst grid, D)
at::Tensor resampled_table(const torch::nn::Module& m, const std::string& key, const at::Tensor& src,
                           const at::Tensor& dst, const LoadOptions& options) {
  if (src.dim() != 3 || dst.dim() != 3 || src.size(0) != 1 || dst.size(0) != 1 || src.size(2) != dst.size(2))
    return {};
  const auto to = target_grid(m, key, dst);
  const int64_t side = square_side(src.size(1) - 1);
  const Grid from = options.source_grid ? *options.source_grid : Grid{side, side};
  if (!to || from.h <= 0 || from.w <= 0 || src.size(1) != 1 + from.h * from.w ||
      dst.size(1) != 1 + to->h * to->w)
    return {};
  return resample_abs_pos_embed(src, *to, from, 1);
}

// "'a', 'b', 'c' (and 4 more)"
std::string first_keys(const std::vector<std::string>& keys, size_t shown = 3) {
  std::string out;
  for (size_t i = 0; i < keys.size() && i < shown; ++i) out += (i ? ", '" : "'") + keys[i] + "'";
  if (keys.size() > shown) out += " (and " + std::to_string(keys.size() - shown) + " more)";
  return out;
}

// A source tensor must hold numbers of the module's kind (floating-point precisions convert, an integer or
// bool tensor of the right byte size does not) and, when floating, only finite values.
void check_source_values(const std::string& key, const at::Tensor& src, const at::Tensor& dst,
                         const LoadOptions& options) {
  const bool float_src = at::isFloatingType(src.scalar_type()),
             float_dst = at::isFloatingType(dst.scalar_type());
  if (float_src != float_dst || (!float_src && src.scalar_type() != dst.scalar_type()))
    throw InputError(options.where, "weight '" + key + "' has dtype " + c10::toString(src.scalar_type()) +
                                        " but the model needs " + c10::toString(dst.scalar_type()));
  if (float_src && !at::isfinite(src).all().item<bool>())
    throw InputError(options.where, "weight '" + key + "' holds NaN or Inf values");
}

void throw_if_strict_fault(const LoadReport& r, const LoadOptions& options) {
  std::vector<std::string> faults;
  if (!r.missing.empty() && !options.allow_missing)
    faults.push_back("missing weight " + first_keys(r.missing) +
                     " (wrong model size or not a semaim checkpoint?)");
  for (size_t i = 0; i < r.shape_mismatch.size() && i < 3; ++i) {
    const auto& s = r.shape_mismatch[i];
    faults.push_back("weight '" + s.key + "' has shape " + c10::str(at::IntArrayRef(s.source)) +
                     " but the model needs " + c10::str(at::IntArrayRef(s.target)) +
                     " (checkpoint of a different model size?)");
  }
  if (!options.allow_extra && !r.unexpected.empty())
    faults.push_back("unexpected weight " + first_keys(r.unexpected) + " (checkpoint of a different model?)");
  if (faults.empty()) return;
  std::string msg;
  for (const auto& f : faults) msg += (msg.empty() ? "" : "; ") + f;
  throw InputError(options.where, msg);
}

// "0-3,5,7-8"
std::string index_ranges(const std::set<int64_t>& indices) {
  std::string out;
  for (auto it = indices.begin(); it != indices.end();) {
    const int64_t first = *it;
    int64_t last = first;
    while (++it != indices.end() && *it == last + 1) last = *it;
    out +=
        (out.empty() ? "" : ",") + std::to_string(first) + (last > first ? "-" + std::to_string(last) : "");
  }
  return out;
}

// Keys folded by module, in first-appearance order: "cls_token, patch_embed.* (2), blocks.{0-11}.* (144)".
std::string fold_keys(const std::vector<std::string>& keys) {
  struct Group {
    std::string key;  // the only key, shown as is when the group holds one key
    std::set<int64_t> indices;
    size_t count = 0;
  };
  std::vector<std::string> order;
  std::map<std::string, Group> groups;
  for (const auto& k : keys) {
    const size_t dot = k.find('.');
    std::string name = k;
    std::optional<int64_t> index;
    if (dot != std::string::npos) {
      const size_t next = k.find('.', dot + 1);
      const std::string second =
          k.substr(dot + 1, next == std::string::npos ? std::string::npos : next - dot - 1);
      const bool numeric =
          !second.empty() && second.size() < 10 &&
          std::all_of(second.begin(), second.end(), [](unsigned char c) { return std::isdigit(c) != 0; });
      if (numeric) index = std::stoll(second);
      name = k.substr(0, dot) + (numeric ? ".{}.*" : ".*");
    }
    auto [it, fresh] = groups.try_emplace(name, Group{k, {}, 0});
    if (fresh) order.push_back(name);
    if (index) it->second.indices.insert(*index);
    ++it->second.count;
  }
  std::string out;
  for (const auto& name : order) {
    const Group& g = groups.at(name);
    std::string shown = g.key;
    if (g.count > 1 || !g.indices.empty()) {
      shown = name;
      if (!g.indices.empty()) shown.replace(shown.find("{}"), 2, "{" + index_ranges(g.indices) + "}");
      shown += " (" + std::to_string(g.count) + ")";
    }
    out += (out.empty() ? "" : ", ") + shown;
  }
  return out;
}

}  // namespace

std::string LoadReport::table() const {
  std::vector<std::string> mismatched;
  for (const auto& s : shape_mismatch)
    mismatched.push_back(s.key + " " + c10::str(at::IntArrayRef(s.source)) + " in the source, " +
                         c10::str(at::IntArrayRef(s.target)) + " in the model");
  std::string out;
  auto row = [&out](const char* what, const std::vector<std::string>& keys, const std::string& shown) {
    char head[48];
    std::snprintf(head, sizeof(head), "  %-12s %5zu", what, keys.size());
    out += head + (keys.empty() ? "" : "  " + shown) + "\n";
  };
  row("loaded", loaded, fold_keys(loaded));
  row("missing", missing, fold_keys(missing));
  row("unexpected", unexpected, fold_keys(unexpected));
  row("resampled", resampled, fold_keys(resampled));
  std::string joined;
  for (const auto& m : mismatched) joined += (joined.empty() ? "" : "; ") + m;
  row("mismatched", mismatched, joined);
  return out;
}

io::NamedTensors module_weights(const torch::nn::Module& m) {
  io::NamedTensors out;
  for (const auto& p : m.named_parameters(/*recurse=*/true)) out.emplace_back(p.key(), p.value().detach());
  for (const auto& b : m.named_buffers(/*recurse=*/true)) out.emplace_back(b.key(), b.value().detach());
  return out;
}

std::string LoadReport::summary() const {
  std::vector<std::string> mismatched;
  for (const auto& s : shape_mismatch) mismatched.push_back(s.key);
  auto part = [](const std::string& what, const std::vector<std::string>& keys) {
    return std::to_string(keys.size()) + " " + what + (keys.empty() ? "" : " (" + first_keys(keys) + ")");
  };
  return part("missing", missing) + ", " + part("unexpected", unexpected) + ", " +
         part("resampled", resampled) + ", " + part("shape mismatches", mismatched);
}

LoadReport load_weights(torch::nn::Module& m, const io::NamedTensors& weights, const LoadOptions& options) {
  std::map<std::string, const at::Tensor*> given;
  for (const auto& [k, t] : weights) given[k] = &t;
  LoadReport report;
  std::vector<std::pair<at::Tensor, at::Tensor>> copies;  // (module tensor, source tensor)
  std::set<std::string> wanted;
  for (auto& [key, dst] : module_weights(m)) {
    wanted.insert(key);
    auto it = given.find(key);
    if (it == given.end()) {
      report.missing.push_back(key);
      continue;
    }
    const at::Tensor& src = *it->second;
    check_source_values(key, src, dst, options);
    const bool same_shape = src.sizes() == dst.sizes();
    // An explicit source grid may differ from the target's even when the token counts agree.
    if (options.resample_pos_embed && is_pos_embed_key(key) && (!same_shape || options.source_grid)) {
      if (at::Tensor table = resampled_table(m, key, src, dst, options); table.defined()) {
        if (!table.is_same(src)) report.resampled.push_back(key);
        report.loaded.push_back(key);
        copies.emplace_back(dst, table);
        continue;
      }
    }
    if (same_shape) {
      report.loaded.push_back(key);
      copies.emplace_back(dst, src);
    } else {
      report.shape_mismatch.push_back({key, src.sizes().vec(), dst.sizes().vec()});
    }
  }
  for (const auto& [k, t] : weights)
    if (!wanted.count(k)) report.unexpected.push_back(k);
  if (options.strict) throw_if_strict_fault(report, options);
  at::NoGradGuard no_grad;
  for (auto& [dst, src] : copies) dst.copy_(src);
  return report;
}

}  // namespace semaim::models
