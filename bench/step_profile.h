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
#include <string>
#include <vector>

#include "semaim/core/timing.h"

namespace bench {

// Phase scopes the step opens (RECORD_USER_SCOPE names); an op under one is counted as that phase.
inline constexpr const char* kPhasePrefix = "phase::";

struct CategoryTime {
  double self_ns = 0;
  double flops = 0;  // the profiler's FLOP estimate (GEMMs and convolutions); 0 where it has none
};

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
inline std::map<std::string, CategoryTime> categorize(
    const std::vector<torch::autograd::profiler::KinetoEvent>& events) {
  struct Ev {
    uint64_t start, end, flops;
    std::string name;
    int64_t parent = -1;
    double self = 0;
    std::string phase;
  };
  std::map<uint64_t, std::vector<Ev>> by_thread;
  for (const auto& e : events) {
    if (e.deviceType() != c10::DeviceType::CPU || e.isAsync() || e.endNs() <= e.startNs()) continue;
    by_thread[e.startThreadId()].push_back({e.startNs(), e.endNs(), e.flops(), e.name()});
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
        e.phase = p.phase;
      }
      if (e.name.rfind(kPhasePrefix, 0) == 0) e.phase = e.name.substr(std::string(kPhasePrefix).size());
      stack.push_back(i);
    }
    for (const Ev& e : evs) {
      CategoryTime& c = out[e.phase.empty() ? op_category(e.name) : e.phase];
      c.self_ns += std::max(0.0, e.self);
      c.flops += static_cast<double>(e.flops);
    }
  }
  return out;
}

// Runs `step` `steps` times under the profiler. -> self time per category, and the wall seconds of the steps
inline std::pair<std::map<std::string, CategoryTime>, double> profile_steps(const std::function<void()>& step,
                                                                           int64_t steps) {
  namespace prof = torch::autograd::profiler;
  using torch::profiler::impl::ActivityType;
  using torch::profiler::impl::ProfilerConfig;
  using torch::profiler::impl::ProfilerState;
  const ProfilerConfig cfg(ProfilerState::KINETO, /*report_input_shapes=*/true, /*profile_memory=*/false,
                           /*with_stack=*/false, /*with_flops=*/true);
  const std::set<ActivityType> activities{ActivityType::CPU};
  prof::prepareProfiler(cfg, activities);
  prof::enableProfiler(cfg, activities);
  const auto t0 = semaim::core::Clock::now();
  for (int64_t s = 0; s < steps; ++s) step();
  const double wall = semaim::core::seconds_since(t0);
  const auto result = prof::disableProfiler();
  return {categorize(result->events()), wall};
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

inline double copy_peak_gbs() {
  const int64_t n = 64LL << 20;
  const at::Tensor src = at::ones({n}), dst = at::empty({n});
  std::vector<double> r;
  for (int k = 0; k < 6; ++k) {
    const auto t0 = semaim::core::Clock::now();
    dst.copy_(src);
    if (k > 0) r.push_back(2.0 * static_cast<double>(n) * 4 / semaim::core::seconds_since(t0) / 1e9);
  }
  return semaim::core::median(r);
}

// The table: one row per category, largest first; FLOP/s where the profiler counts FLOPs, against the peak.
inline void print_profile(const std::map<std::string, CategoryTime>& cats, double wall, int64_t steps,
                          double peak_tflops, const char* peak_name) {
  double total = 0;
  for (const auto& [k, c] : cats) total += c.self_ns;
  std::vector<std::pair<std::string, CategoryTime>> rows(cats.begin(), cats.end());
  std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a.second.self_ns > b.second.self_ns; });
  std::printf("| category | ms per step | share | achieved TFLOP/s | of the %s GEMM peak |\n|---|---|---|---|---|\n",
              peak_name);
  for (const auto& [name, c] : rows) {
    char tf[32] = "-", of[32] = "-";
    const double t = c.self_ns > 0 ? c.flops / c.self_ns / 1e3 : 0;
    // The profiler also counts the FLOPs of a few elementwise ops; below 1% of the peak they say nothing.
    if (t >= 0.01 * peak_tflops) {
      std::snprintf(tf, sizeof(tf), "%.3f", t);
      std::snprintf(of, sizeof(of), "%.0f%%", 100 * t / peak_tflops);
    }
    std::printf("| %s | %.1f | %.1f%% | %s | %s |\n", name.c_str(), c.self_ns / 1e6 / static_cast<double>(steps),
                100 * c.self_ns / total, tf, of);
  }
  std::printf("\nprofiled: %lld steps, %.1f ms per step wall (%.1f ms per step in op self times; the rest is the "
              "profiler's own cost and time outside ops)\n",
              static_cast<long long>(steps), 1e3 * wall / static_cast<double>(steps),
              total / 1e6 / static_cast<double>(steps));
}

}  // namespace bench
