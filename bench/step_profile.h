// Where a training step's time goes (issue 20, item 1): LibTorch's Kineto profiler around a few steps, every
// op's self time (its duration less its direct children's) put in one category -- by the phase scope it runs
// under (the semantic pass, the ordering, the optimizer) or else by its name (GEMMs, attention, norms, copies,
// elementwise, semaim's ops) -- and the machine's GEMM and copy peaks measured in the same process.
#pragma once
#include <ATen/ATen.h>
#include <ATen/record_function.h>
#include <torch/csrc/autograd/profiler_kineto.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "semaim/core/timing.h"

namespace bench {

// Phase scopes the step opens (RECORD_USER_SCOPE names); an op under one is counted as that phase.
inline constexpr const char* kPhasePrefix = "phase::";

struct CategoryTime {
  double self_ns = 0;
  double flops = 0;  // the profiler's FLOP estimate (GEMMs and convolutions); 0 where it has none
  double bytes = 0;    // memory traffic estimated from the leaf ATen ops' input shapes (event_bytes)
  double leaf_ns = 0;  // the self time of the leaf ATen ops (those whose bytes are counted)
};

// Bytes per element of a profiler dtype string ("float", "c10::BFloat16", "long int", ...); 0 for non-tensors.
inline double dtype_bytes(const std::string& t) {
  if (t.find("BFloat16") != std::string::npos || t.find("Half") != std::string::npos || t == "short int") return 2;
  if (t == "double" || t.find("long") != std::string::npos) return 8;
  if (t == "bool" || t.find("char") != std::string::npos) return 1;
  if (t == "float" || t == "int" || t == "unsigned int") return 4;
  return 0;
}

// Memory traffic of one op from its recorded inputs: every tensor input read once, plus one output the size of
// the largest input written (an in-place op, name ending in '_', writes an input and adds nothing). A floor:
// ops that read an input twice or reduce to a small output are counted at one pass.
inline double event_bytes(const std::string& name, const std::vector<std::vector<int64_t>>& shapes,
                          const std::vector<std::string>& dtypes) {
  // Views, allocations and metadata move no bytes; counting their inputs inflated the elementwise row's GB/s
  // several-fold (a view of a 40 MB tensor in a microsecond).
  static const std::set<std::string> kNoTraffic = {
      "aten::view", "aten::_unsafe_view", "aten::reshape", "aten::_reshape_alias", "aten::as_strided",
      "aten::expand", "aten::expand_as", "aten::transpose", "aten::t", "aten::permute", "aten::unsqueeze",
      "aten::squeeze", "aten::slice", "aten::select", "aten::narrow", "aten::alias", "aten::detach",
      "aten::empty", "aten::empty_strided", "aten::empty_like", "aten::split", "aten::split_with_sizes",
      "aten::chunk", "aten::unbind", "aten::unflatten", "aten::flatten", "aten::lift_fresh", "aten::to",
      "aten::contiguous", "aten::resolve_conj", "aten::resolve_neg", "aten::result_type", "aten::item",
      "aten::_local_scalar_dense", "aten::is_nonzero", "aten::size", "aten::stride", "aten::numel",
      "aten::set_", "aten::resize_"};
  if (kNoTraffic.count(name) != 0) return 0;
  double sum = 0, largest = 0;
  for (size_t i = 0; i < shapes.size() && i < dtypes.size(); ++i) {
    const double b = dtype_bytes(dtypes[i]);
    if (b == 0 || shapes[i].empty()) continue;
    double n = b;
    for (const int64_t d : shapes[i]) n *= static_cast<double>(d);
    sum += n;
    largest = std::max(largest, n);
  }
  return name.back() == '_' ? sum : sum + largest;
}

inline bool has(const std::string& s, const char* part) { return s.find(part) != std::string::npos; }

inline std::string op_category(const std::string& name) {
  if (has(name, "scaled_dot_product") || has(name, "flash_attention") || has(name, "softmax"))
    return "attention (SDPA kernels, softmax)";
  if (has(name, "layer_norm")) return "norms (LayerNorm fwd + bwd)";
  if (name == "aten::mm" || name == "aten::addmm" || name == "aten::bmm" || name == "aten::baddbmm" ||
      name == "aten::_addmm_activation" || has(name, "convolution") || has(name, "mkldnn_"))
    return "GEMMs and convolutions";
  if (has(name, "copy_") || has(name, "clone") || has(name, "contiguous") || name == "aten::cat" ||
      name == "aten::stack" || has(name, "index") || has(name, "gather") || has(name, "scatter"))
    return "layout copies, gathers, cat";
  if (name.rfind("semaim::", 0) == 0) return "semaim ops in the model (permute_rows)";
  if (name.rfind("aten::", 0) == 0) return "elementwise and reductions";
  return "autograd and dispatch overhead";
}

// Self time per category over the profiled events. Events nest per thread by time; a phase scope's name
// ("phase::x") becomes the category of everything under it.
// `ops`, when given, gets the same totals per "category / op name".
inline std::map<std::string, CategoryTime> categorize(
    const std::vector<torch::autograd::profiler::KinetoEvent>& events,
    std::map<std::string, CategoryTime>* ops = nullptr) {
  struct Ev {
    uint64_t start, end, flops;
    std::string name;
    double bytes = 0;
    bool leaf = true;
    double self = 0;
    std::string phase;
  };
  std::map<uint64_t, std::vector<Ev>> by_thread;
  for (const auto& e : events) {
    if (e.deviceType() != c10::DeviceType::CPU || e.isAsync() || e.endNs() <= e.startNs()) continue;
    const auto shapes = e.shapes();
    const auto dtypes = e.dtypes();
    by_thread[e.startThreadId()].push_back(
        {e.startNs(), e.endNs(), e.flops(), e.name(),
         event_bytes(e.name(), {shapes.begin(), shapes.end()}, {dtypes.begin(), dtypes.end()})});
  }
  std::map<std::string, CategoryTime> out;
  for (auto& [tid, evs] : by_thread) {
    std::sort(evs.begin(), evs.end(),
              [](const Ev& a, const Ev& b) { return a.start != b.start ? a.start < b.start : a.end > b.end; });
    std::vector<int64_t> stack;
    for (int64_t i = 0; i < static_cast<int64_t>(evs.size()); ++i) {
      Ev& e = evs[static_cast<size_t>(i)];
      while (!stack.empty() && evs[static_cast<size_t>(stack.back())].end <= e.start) stack.pop_back();
      e.self = static_cast<double>(e.end - e.start);
      if (!stack.empty()) {
        Ev& p = evs[static_cast<size_t>(stack.back())];
        p.self -= static_cast<double>(e.end - e.start);
        p.leaf = false;
        e.phase = p.phase;
      }
      if (e.name.rfind(kPhasePrefix, 0) == 0) e.phase = e.name.substr(std::string(kPhasePrefix).size());
      stack.push_back(i);
    }
    for (const Ev& e : evs) {
      const std::string cat = e.phase.empty() ? op_category(e.name) : e.phase;
      for (CategoryTime* c : {&out[cat], ops ? &(*ops)[cat + " / " + e.name] : nullptr}) {
        if (!c) continue;
        c->self_ns += std::max(0.0, e.self);
        c->flops += static_cast<double>(e.flops);
        // Only ATen ops without children: a parent's inputs are its children's again (to -> _to_copy -> copy_),
        // and autograd nodes record their inputs without moving them.
        if (e.leaf && e.name.rfind("aten::", 0) == 0) {
          c->bytes += e.bytes;
          c->leaf_ns += std::max(0.0, e.self);
        }
      }
    }
  }
  return out;
}

// Runs `step` `steps` times under the profiler, with or without the ops' input shapes. -> the events' categories
// (and per op when `ops` is given), and the wall seconds of the steps
inline std::pair<std::map<std::string, CategoryTime>, double> profile_run(
    const std::function<void()>& step, int64_t steps, bool shapes, std::map<std::string, CategoryTime>* ops) {
  namespace prof = torch::autograd::profiler;
  using torch::profiler::impl::ActivityType;
  using torch::profiler::impl::ProfilerConfig;
  using torch::profiler::impl::ProfilerState;
  const ProfilerConfig cfg(ProfilerState::KINETO, /*report_input_shapes=*/shapes, /*profile_memory=*/false,
                           /*with_stack=*/false, /*with_flops=*/true);
  const std::set<ActivityType> activities{ActivityType::CPU};
  prof::prepareProfiler(cfg, activities);
  prof::enableProfiler(cfg, activities);
  const auto t0 = semaim::core::Clock::now();
  for (int64_t s = 0; s < steps; ++s) step();
  const double wall = semaim::core::seconds_since(t0);
  const auto result = prof::disableProfiler();
  return {categorize(result->events(), ops), wall};
}

// Runs `step` 2 x `steps` times under the profiler: first for the times (without input shapes: recording them
// slows some ops several-fold, which inflated the elementwise and copy rows of earlier tables), then with input
// shapes for the FLOPs and bytes of each category. -> self time, FLOPs and bytes per category (the times from the first
// run), and the wall seconds of the first run's steps
inline std::pair<std::map<std::string, CategoryTime>, double> profile_steps(const std::function<void()>& step,
                                                                           int64_t steps) {
  std::map<std::string, CategoryTime> ops;
  auto [cats, wall] = profile_run(step, steps, /*shapes=*/false, &ops);
  std::map<std::string, CategoryTime> ops_shapes;
  const auto with_shapes = profile_run(step, steps, /*shapes=*/true, &ops_shapes).first;
  for (auto& [name, c] : cats) {
    const auto it = with_shapes.find(name);
    // The FLOP counts come from the input shapes too.
    c.bytes = it == with_shapes.end() ? 0 : it->second.bytes;
    c.flops = it == with_shapes.end() ? 0 : it->second.flops;
  }
  // The ops that take the most self time, for finding what to cut.
  std::vector<std::pair<std::string, CategoryTime>> top(ops.begin(), ops.end());
  std::sort(top.begin(), top.end(), [](const auto& a, const auto& b) { return a.second.self_ns > b.second.self_ns; });
  std::printf("top ops by self time (category / op: ms per step, and estimated GB/s where the op moves bytes):\n");
  for (size_t i = 0; i < std::min<size_t>(top.size(), 25); ++i) {
    const CategoryTime& c = top[i].second;
    const auto it = ops_shapes.find(top[i].first);
    char gb[48] = "";
    if (it != ops_shapes.end() && it->second.bytes > 0 && c.leaf_ns > 0 &&
        top[i].first.rfind("GEMMs", 0) != 0)
      std::snprintf(gb, sizeof(gb), "  (%.1f GB/s)", it->second.bytes / c.leaf_ns);
    std::printf("  %8.1f  %s%s\n", c.self_ns / 1e6 / static_cast<double>(steps), top[i].first.c_str(), gb);
  }
  std::printf("\n");
  return {cats, wall};
}

// The machine's peaks, measured now: GEMM TFLOP/s of a (2048 x 1024) @ (1024 x 1024) product in `dtype`,
// and copy GB/s (read + write) of a 256 MB float buffer; medians of 5.
inline double gemm_peak_tflops(at::ScalarType dtype) {
  const at::Tensor a = at::randn({2048, 1024}).to(dtype), b = at::randn({1024, 1024}).to(dtype);
  std::vector<double> r;
  for (int k = 0; k < 6; ++k) {
    const auto t0 = semaim::core::Clock::now();
    for (int i = 0; i < 10; ++i) (void)at::mm(a, b);
    if (k > 0) r.push_back(10 * 2.0 * 2048 * 1024 * 1024 / semaim::core::seconds_since(t0) / 1e12);
  }
  return semaim::core::median(r);
}

// Copy GB/s (read + write) of a `bytes` float buffer: 256 MB streams from DRAM; 4 MB (8 MB of traffic) stays in
// this CPU's 32 MB L3, as the step's activations of a few MB do between one op and the next.
inline double copy_peak_gbs(int64_t bytes = 256LL << 20) {
  const int64_t n = bytes / 4;
  const int reps = static_cast<int>(std::max<int64_t>(1, (256LL << 20) / bytes));  // ~256 MB per sample
  const at::Tensor src = at::ones({n}), dst = at::empty({n});
  dst.copy_(src);
  std::vector<double> r;
  for (int k = 0; k < 6; ++k) {
    const auto t0 = semaim::core::Clock::now();
    for (int i = 0; i < reps; ++i) dst.copy_(src);
    if (k > 0) r.push_back(2.0 * static_cast<double>(n) * 4 * reps / semaim::core::seconds_since(t0) / 1e9);
  }
  return semaim::core::median(r);
}

// The table: one row per category, largest first; FLOP/s where the profiler counts FLOPs, against the peak.
inline void print_profile(const std::map<std::string, CategoryTime>& cats, double wall, int64_t steps,
                          double peak_tflops, const char* peak_name, double copy_gbs, double cache_copy_gbs) {
  double total = 0;
  for (const auto& [k, c] : cats) total += c.self_ns;
  std::vector<std::pair<std::string, CategoryTime>> rows(cats.begin(), cats.end());
  std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a.second.self_ns > b.second.self_ns; });
  std::printf("| category | ms per step | share | achieved TFLOP/s | of the %s GEMM peak | estimated GB/s | of the "
              "DRAM copy | of the in-cache copy |\n|---|---|---|---|---|---|---|---|\n",
              peak_name);
  for (const auto& [name, c] : rows) {
    char tf[32] = "-", of[32] = "-";
    const double t = c.self_ns > 0 ? c.flops / c.self_ns / 1e3 : 0;
    // The profiler also counts the FLOPs of a few elementwise ops; below 1% of the peak they say nothing.
    if (t >= 0.01 * peak_tflops) {
      std::snprintf(tf, sizeof(tf), "%.3f", t);
      std::snprintf(of, sizeof(of), "%.0f%%", 100 * t / peak_tflops);
    }
    // Bandwidth where FLOPs say nothing: the leaf ops' estimated bytes over their self time.
    char gb[32] = "-", ofc[32] = "-", ofl3[32] = "-";
    if (t < 0.01 * peak_tflops && c.leaf_ns > 0 && c.bytes > 0) {
      const double g = c.bytes / c.leaf_ns;
      std::snprintf(gb, sizeof(gb), "%.1f", g);
      std::snprintf(ofc, sizeof(ofc), "%.0f%%", 100 * g / copy_gbs);
      std::snprintf(ofl3, sizeof(ofl3), "%.0f%%", 100 * g / cache_copy_gbs);
    }
    std::printf("| %s | %.1f | %.1f%% | %s | %s | %s | %s | %s |\n", name.c_str(),
                c.self_ns / 1e6 / static_cast<double>(steps), 100 * c.self_ns / total, tf, of, gb, ofc, ofl3);
  }
  std::printf("\nprofiled: %lld steps, %.1f ms per step wall (%.1f ms per step in op self times; the rest is the "
              "profiler's own cost and time outside ops)\n",
              static_cast<long long>(steps), 1e3 * wall / static_cast<double>(steps),
              total / 1e6 / static_cast<double>(steps));
}

}  // namespace bench
