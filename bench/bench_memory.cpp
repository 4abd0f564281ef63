// Memory per image of the pretraining step (issue 20 item 5): full SemAIM steps as bench_pretrain_step runs
// them (semantic no-grad pass, ordering, two-stream forward + backward, clip, AdamW) with activation
// checkpointing off and on (every block of both stacks), at two or more batches. Two figures per run: the
// process's peak RSS, and the peak bytes in live tensors (the CPU allocator's, or with --device cuda the CUDA
// caching allocator's peak allocated bytes). Per image = the slope between the smallest and the largest
// batch; then, on paper, the batch per GPU that fits in --budget-gib.
//
// usage: bench_memory [CONFIG.yaml] [--model NAME ...] [--batches 2,4] [--precision fp32,bf16] [--steps N]
//        [--device cpu|cuda] [--threads T] [--budget-gib G] [--set key=value ...]
// ru_maxrss is the lifetime maximum of a process, so each variant runs in a child process (this program
// re-executed with --child), which prints one JSON object.
#include <sys/resource.h>
#include <unistd.h>

#include <ATen/CPUGeneratorImpl.h>
#include <c10/core/Allocator.h>
#include <c10/util/ThreadLocalDebugInfo.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#ifdef SEMAIM_WITH_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#endif

#include "bench_common.h"
#include "semaim/config/config.h"
#include "semaim/core/errors.h"
#include "semaim/core/timing.h"
#include "semaim/engine/autocast.h"
#include "semaim/engine/optimizer.h"
#include "semaim/engine/settings.h"
#include "semaim/ordering/ordering.h"
#include "semaim/tasks/models.h"
#include "semaim/tasks/schema.h"
#include "semaim_paths.h"

using namespace semaim;

namespace {

constexpr double kMiB = 1024.0 * 1024.0;

struct Options {
  std::string config_path =
      std::string(SEMAIM_SOURCE_DIR) + "/configs/pretrain/aim-base-p16_8xb256-semantic-800e_in1k.yaml";
  std::vector<std::string> models, sets;
  std::vector<std::string> precisions{"fp32", "bf16"};
  std::vector<int64_t> batches{2, 4};
  std::string device = "cpu";
  int64_t steps = 2, threads = 0, budget_gib = 80, checkpoint = 0;
  bool child = false;
};

// "2,4" -> {2, 4}; anything but positive whole numbers is an InputError naming the option.
std::function<void(const std::string&)> int_list(std::vector<int64_t>* out, const std::string& option) {
  return [out, option](const std::string& list) {
    out->clear();
    size_t start = 0;
    while (start <= list.size()) {
      const size_t end = std::min(list.find(',', start), list.size());
      const std::string item = list.substr(start, end - start);
      size_t used = 0;
      int64_t v = 0;
      try {
        v = std::stoll(item, &used);
      } catch (const std::exception&) {
      }
      if (used == 0 || used != item.size() || v < 1)
        throw InputError(option, "positive whole numbers separated by commas, got '" + list + "'");
      out->push_back(v);
      start = end + 1;
    }
  };
}

Options parse(int argc, char** argv) {
  Options o;
  bench::parse_options(
      argc, argv,
      {{"--model", &o.models},
       {"--set", &o.sets},
       {"--batches", int_list(&o.batches, "--batches")},
       {"--precision", bench::precision_list(&o.precisions)},
       {"--steps", &o.steps},
       {"--device", &o.device},
       {"--threads", &o.threads},
       {"--budget-gib", &o.budget_gib},
       {"--child", &o.child},
       {"--checkpoint", &o.checkpoint}},
      &o.config_path,
      "usage: bench_memory [CONFIG.yaml] [--model NAME ...] [--batches 2,4] [--precision fp32,bf16] "
      "[--steps N] [--device cpu|cuda] [--threads T] [--budget-gib G] [--set key=value ...]");
  if (o.models.empty()) o.models = {"aim_base_patch16", "aim_large_patch16"};
  std::sort(o.batches.begin(), o.batches.end());
  o.batches.erase(std::unique(o.batches.begin(), o.batches.end()), o.batches.end());
  if (o.device != "cpu" && o.device != "cuda")
    throw InputError("--device", "cpu or cuda, got '" + o.device + "'");
  if (o.steps < 2)
    throw InputError("--steps", "at least 2 (the first step allocates what later steps reuse)");
  if (o.threads < 0 || o.budget_gib < 1 || o.checkpoint < 0) throw InputError("arguments", "negative value");
  if (o.child && (o.models.size() != 1 || o.batches.size() != 1 || o.precisions.size() != 1))
    throw InputError("--child", "one model, one batch and one precision");
  if (!o.child && o.batches.size() < 2) throw InputError("--batches", "at least two different batches");
  return o;
}

// The process's resident set now (bytes), from /proc/self/statm.
double rss_now_bytes() {
  std::ifstream statm("/proc/self/statm");
  long long pages = 0, resident = 0;
  statm >> pages >> resident;
  return static_cast<double>(resident) * static_cast<double>(::sysconf(_SC_PAGESIZE));
}

// The lifetime maximum of the resident set (bytes).
double peak_rss_bytes() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_maxrss) * 1024.0;
}

// Bytes in live tensors, now and at the peak since the last reset_peak: the CUDA caching allocator's
// allocated bytes on a GPU; on the CPU the same figure from the CPU allocator's reports to a memory profiler
// (this object stands in for one). The reports reach it from the thread that installed it and from the
// threads the autograd engine runs that thread's work on.
class TensorBytes : public c10::MemoryReportingInfoBase {
 public:
  explicit TensorBytes(bool cuda) : cuda_(cuda) {}
  void reportMemoryUsage(void* /*ptr*/, int64_t alloc_size, size_t /*total_allocated*/,
                         size_t /*total_reserved*/, c10::Device device) override {
    if (!device.is_cpu()) return;
    std::lock_guard<std::mutex> lock(mutex_);
    current_ += alloc_size;
    peak_ = std::max(peak_, current_);
  }
  bool memoryProfilingEnabled() const override { return !cuda_; }
  double current() {
#ifdef SEMAIM_WITH_CUDA
    if (cuda_) return cuda_stat(false);
#endif
    std::lock_guard<std::mutex> lock(mutex_);
    return static_cast<double>(current_);
  }
  double peak() {
#ifdef SEMAIM_WITH_CUDA
    if (cuda_) return cuda_stat(true);
#endif
    std::lock_guard<std::mutex> lock(mutex_);
    return static_cast<double>(peak_);
  }
  void reset_peak() {
#ifdef SEMAIM_WITH_CUDA
    if (cuda_) c10::cuda::CUDACachingAllocator::resetPeakStats(0);
#endif
    std::lock_guard<std::mutex> lock(mutex_);
    peak_ = current_;
  }

 private:
#ifdef SEMAIM_WITH_CUDA
  static double cuda_stat(bool peak) {
    const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(0);
    const auto& s = stats.allocated_bytes[static_cast<size_t>(c10::CachingAllocator::StatType::AGGREGATE)];
    return static_cast<double>(peak ? s.peak : s.current);
  }
#endif
  bool cuda_;
  std::mutex mutex_;
  int64_t current_ = 0, peak_ = 0;
};

// One variant in this process: the model and AdamW built, `steps` full steps, the memory figures as JSON.
// The gradients stay allocated after the first step (zeroed in place, as the data-parallel reducer's bucket
// views keep them), so the later steps' peak is weights + gradients + AdamW moments + the step's transient
// bytes, and its growth with the batch is the activations alone.
nlohmann::json run_child(const config::Config& cfg, at::Device device, int64_t steps) {
  auto bytes = std::make_shared<TensorBytes>(device.is_cuda());
  const c10::DebugInfoGuard report_to(c10::DebugInfoKind::PROFILER_STATE, bytes);
  const engine::TrainSettings s = engine::TrainSettings::read(cfg, "pretrain");
  const models::AimConfig mcfg = tasks::aim_config(cfg);
  const ordering::OrderingConfig ocfg = tasks::ordering_config(cfg);
  const models::TargetConfig tcfg = tasks::target_config(cfg);
  models::AimVit model = tasks::build_aim(cfg);
  model->to(device);
  model->train();
  model->set_checkpoint_blocks(s.checkpoint_blocks);
  std::vector<std::pair<std::string, at::Tensor>> params;
  std::vector<at::Tensor> tensors;
  int64_t numel = 0;
  for (auto& p : model->named_parameters())
    if (p.value().requires_grad()) {
      params.emplace_back(p.key(), p.value());
      tensors.push_back(p.value());
      numel += p.value().numel();
    }
  engine::AdamW opt(engine::make_param_groups(params, engine::GroupRule{}),
                    engine::AdamWOptions{s.beta1, s.beta2, s.eps});
  opt.set_lr(1e-4);
  const auto& v = mcfg.vit;
  const at::Tensor imgs = at::randn({s.batch_size, v.in_chans, v.height(), v.width()}).to(device);
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(0);

  nlohmann::json out{{"params", numel}, {"threads", at::get_num_threads()}};
  out["rss_setup_bytes"] = rss_now_bytes();  // libraries, weights and AdamW moments (allocated up front)
  std::vector<double> seconds;
  double loss_value = 0, forward_end = 0;
  for (int64_t i = 0; i < steps; ++i) {
    if (i == 1) {  // from here on the gradients are part of the standing bytes
      out["tensor_static_bytes"] = bytes->current();
      bytes->reset_peak();
    }
    const auto t0 = core::Clock::now();
    at::Tensor tokens;
    if (ordering::needs_tokens(ocfg.strategy)) {
      at::NoGradGuard no_grad;
      engine::AutocastGuard ac(device.type(), s.bf16);
      tokens = model->encode(imgs).to(at::kFloat);
    }
    const ordering::Ordering ord =
        ordering::make_order(ocfg, s.batch_size, v.grid_h(), v.grid_w(), tokens, gen, device);
    tokens = at::Tensor();
    at::Tensor loss;
    {
      engine::AutocastGuard ac(device.type(), s.bf16);
      loss = model->forward_loss_ordered(imgs, ord.order, ord.inverse, tcfg);
    }
    if (i > 0) forward_end = std::max(forward_end, bytes->current());
    loss.backward();
    engine::clip_grad_norm(tensors, s.clip_grad > 0 ? s.clip_grad : 3.0);
    opt.step();
    for (auto& t : tensors)
      if (t.grad().defined()) t.mutable_grad().zero_();
    loss_value = loss.item<double>();  // waits for the device
    seconds.push_back(core::seconds_since(t0));
  }
  if (!std::isfinite(loss_value)) throw RuntimeFailure("non-finite loss in a memory benchmark step");
  out["tensor_peak_bytes"] = bytes->peak();
  out["tensor_forward_end_bytes"] = forward_end;
  out["tensor_after_bytes"] = bytes->current();
  out["rss_peak_bytes"] = peak_rss_bytes();
  out["seconds"] = seconds;
  out["loss"] = loss_value;
  return out;
}

// Single-quoted for the shell.
std::string quoted(const std::string& s) {
  std::string out = "'";
  for (const char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

std::string self_path() {
  char buf[4096];
  const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) throw RuntimeFailure("cannot read /proc/self/exe");
  return std::string(buf, static_cast<size_t>(n));
}

// A straight line through (batch, bytes): the per-image slope between the smallest and the largest batch and
// the intercept at batch 0.
struct Line {
  double per_image = 0, intercept = 0;
};

struct Variant {
  std::string model, precision;
  bool checkpointed = false;
  std::map<int64_t, nlohmann::json> by_batch;  // batch -> the child's JSON
  Line rss, tensors;
};

Line fit(const std::map<int64_t, nlohmann::json>& by_batch, const char* key) {
  const auto& [b0, j0] = *by_batch.begin();
  const auto& [b1, j1] = *by_batch.rbegin();
  const double y0 = j0[key].get<double>(), y1 = j1[key].get<double>();
  Line l;
  l.per_image = (y1 - y0) / static_cast<double>(b1 - b0);
  l.intercept = y0 - l.per_image * static_cast<double>(b0);
  return l;
}

// Runs one child and returns its JSON (its stderr passes through).
nlohmann::json spawn(const Options& o, const std::string& model, const std::string& precision, int64_t batch,
                     int64_t checkpoint) {
  std::string cmd = quoted(self_path()) + " --child " + quoted(o.config_path) + " --model " + quoted(model) +
                    " --batches " + std::to_string(batch) + " --precision " + precision + " --checkpoint " +
                    std::to_string(checkpoint) + " --steps " + std::to_string(o.steps) + " --device " +
                    o.device;
  if (o.threads > 0) cmd += " --threads " + std::to_string(o.threads);
  for (const auto& s : o.sets) cmd += " --set " + quoted(s);
  return bench::run_python_json(cmd, "bench_memory child (" + model + ", " + precision + ", batch " +
                                         std::to_string(batch) + ", checkpoint " +
                                         std::to_string(checkpoint) + ")");
}

config::Config variant_config(const Options& o, const std::string& model) {
  auto cfg = config::Config::load(tasks::schema(), o.config_path);
  cfg.apply_overrides(o.sets);
  cfg.apply_overrides({"model.name=" + model, "run.device=" + o.device});
  return cfg;
}

// The median time of the steps after the first (which allocates the gradients).
double later_steps_median(const nlohmann::json& j) {
  auto s = j["seconds"].get<std::vector<double>>();
  s.erase(s.begin());
  return core::median(s);
}

void print_tables(const Options& o, std::vector<Variant>& variants) {
  const bool cuda = o.device == "cuda";
  const char* tensors = cuda ? "CUDA allocated" : "tensor bytes";
  auto ckpt = [](const Variant& v) { return v.checkpointed ? "all blocks" : "off"; };
  std::printf(
      "| model | precision | checkpointing | batch | peak RSS MiB | peak %s MiB | step s (median after the "
      "first) |\n"
      "|---|---|---|---|---|---|---|\n",
      tensors);
  for (const auto& v : variants)
    for (const auto& [b, j] : v.by_batch)
      std::printf("| %s | %s | %s | %lld | %.0f | %.0f | %.1f |\n", v.model.c_str(), v.precision.c_str(),
                  ckpt(v), (long long)b, j["rss_peak_bytes"].get<double>() / kMiB,
                  j["tensor_peak_bytes"].get<double>() / kMiB, later_steps_median(j));

  for (auto& v : variants) {
    v.rss = fit(v.by_batch, "rss_peak_bytes");
    v.tensors = fit(v.by_batch, "tensor_peak_bytes");
  }
  // Per image without checkpointing over per image with it, for the same model and precision.
  auto reduction = [&](const Variant& on, Line Variant::*line) {
    for (const auto& v : variants)
      if (!v.checkpointed && v.model == on.model && v.precision == on.precision && (on.*line).per_image > 0)
        return (v.*line).per_image / (on.*line).per_image;
    return 0.0;
  };
  auto ratio = [&](const Variant& v, Line Variant::*line) {
    char buf[32] = "1";
    if (v.checkpointed) std::snprintf(buf, sizeof(buf), "%.1fx", reduction(v, line));
    return std::string(buf);
  };
  std::printf(
      "\n| model | precision | checkpointing | params (M) | RSS before the steps MiB | peak RSS per image "
      "MiB "
      "| reduction | %s standing MiB | peak %s per image MiB | reduction |\n"
      "|---|---|---|---|---|---|---|---|---|---|\n",
      tensors, tensors);
  for (const auto& v : variants) {
    const auto& j = v.by_batch.begin()->second;
    std::printf("| %s | %s | %s | %.1f | %.0f | %.1f | %s | %.0f | %.1f | %s |\n", v.model.c_str(),
                v.precision.c_str(), ckpt(v), j["params"].get<double>() / 1e6,
                j["rss_setup_bytes"].get<double>() / kMiB, v.rss.per_image / kMiB,
                ratio(v, &Variant::rss).c_str(), j["tensor_static_bytes"].get<double>() / kMiB,
                v.tensors.per_image / kMiB, ratio(v, &Variant::tensors).c_str());
  }

  // On paper: the measured line of peak tensor bytes (its intercept holds the weights, gradients, AdamW
  // moments and, without checkpointing under bf16, the weights' bf16 copies) extended to the budget, less 10%
  // for the CUDA context, library workspaces and the caching allocator's fragmentation.
  const double budget = static_cast<double>(o.budget_gib) * 1024.0 * kMiB;
  std::printf(
      "\nOn paper, one %lld GiB GPU: the peak-%s line above extended to 90%% of it (10%% left for the CUDA "
      "context, library workspaces and fragmentation).\n\n"
      "| model | precision | checkpointing | intercept GiB (16 B/param: GiB) | per image MiB | batch that "
      "fits |\n"
      "|---|---|---|---|---|---|\n",
      (long long)o.budget_gib, tensors);
  for (const auto& v : variants) {
    const double params = v.by_batch.begin()->second["params"].get<double>();
    const double fits = v.tensors.per_image > 0
                            ? std::floor((0.9 * budget - v.tensors.intercept) / v.tensors.per_image)
                            : 0.0;
    std::printf("| %s | %s | %s | %.1f (%.1f) | %.1f | %.0f |\n", v.model.c_str(), v.precision.c_str(),
                ckpt(v), v.tensors.intercept / (1024.0 * kMiB), 16.0 * params / (1024.0 * kMiB),
                v.tensors.per_image / kMiB, fits);
  }
}

int run_parent(const Options& o) {
  std::vector<Variant> variants;
  std::printf("bench_memory: %s, config %s, batches", o.device == "cuda" ? "CUDA device 0" : "CPU",
              o.config_path.c_str());
  for (const int64_t b : o.batches) std::printf(" %lld", (long long)b);
  std::printf(", %lld steps per child, %s threads\n\n", (long long)o.steps,
              o.threads > 0 ? std::to_string(o.threads).c_str() : "default");
  std::fflush(stdout);
  for (const auto& model : o.models) {
    const int64_t depth = tasks::aim_config(variant_config(o, model)).vit.depth;  // >= the query stream's
    for (const auto& precision : o.precisions)
      for (const bool ckpt : {false, true}) {
        Variant v{model, precision, ckpt, {}, {}, {}};
        for (const int64_t b : o.batches) {
          v.by_batch[b] = spawn(o, model, precision, b, ckpt ? depth : 0);
          std::fprintf(stderr, "%s %s checkpoint %s batch %lld: %s\n", model.c_str(), precision.c_str(),
                       ckpt ? "all" : "off", (long long)b, v.by_batch[b].dump().c_str());
        }
        variants.push_back(std::move(v));
      }
  }
  print_tables(o, variants);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return bench::run_main("bench_memory", [&] {
    const Options o = parse(argc, argv);
    if (!o.child) return run_parent(o);
    if (o.threads > 0) at::set_num_threads(static_cast<int>(o.threads));
    auto cfg = variant_config(o, o.models.front());
    cfg.apply_overrides({"pretrain.batch_size=" + std::to_string(o.batches.front()),
                         "pretrain.precision=" + o.precisions.front(),
                         "pretrain.checkpoint_blocks=" + std::to_string(o.checkpoint)});
    const at::Device device = o.device == "cuda" ? at::Device(at::kCUDA, 0) : at::Device(at::kCPU);
#ifndef SEMAIM_WITH_CUDA
    if (device.is_cuda()) throw InputError("--device", "cuda: this build has SEMAIM_WITH_CUDA off");
#endif
    if (device.is_cuda() && !at::hasCUDA()) throw InputError("--device", "cuda asked for, no CUDA device");
    std::printf("%s\n", run_child(cfg, device, o.steps).dump().c_str());
    return 0;
  });
}
