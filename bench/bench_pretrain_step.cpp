// Pretraining-step benchmark: images/s and peak RSS of one full SemAIM step (semantic no-grad pass, ordering,
// two-stream forward + backward, clip, AdamW) for a config, with the sorted-causal SDPA form side by side
// with the reference dense-mask form, and the semantic ordering side by side with a stochastic (SAIM)
// ordering.
//
// usage: bench_pretrain_step [CONFIG.yaml] [--set key=value ...] [--steps N] [--repeats R] [--batch B]
//        [--device cpu|cuda] [--variants K] [--peak-tflops P] [--profile]
// --profile: instead of the timing table, where the first variant's step time goes by category (step_profile.h)
// with this machine's GEMM and copy peaks measured in the same run.
// Prints a Markdown table: one row per variant (the first K), median (min, max) images/s over R repeats of N
// timed steps (after 2 warm-up steps; variants timed round-robin), the ratio to the first row, the model
// FLOP/s and, given the device's peak P, the model FLOP utilization; then the process's peak RSS.
#include <sys/resource.h>

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "semaim/config/config.h"
#include "semaim/core/errors.h"
#include "semaim/core/timing.h"
#include "semaim/engine/autocast.h"
#include "semaim/engine/optimizer.h"
#include "semaim/engine/settings.h"
#include "semaim/ordering/ordering.h"
#include "semaim/tasks/models.h"
#include "semaim/tasks/schema.h"
#include "step_profile.h"

using namespace semaim;

namespace {

double peak_rss_mb() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss / 1024.0;
}

struct Variant {
  std::string name;
  std::vector<std::string> sets;
};

// One variant's model, optimizer and inputs; step() runs one full training step.
class StepRunner {
 public:
  StepRunner(const config::Config& cfg, at::Device device)
      : device_(device),
        mcfg_(tasks::aim_config(cfg)),
        ocfg_(tasks::ordering_config(cfg)),
        tcfg_(tasks::target_config(cfg)),
        batch_(cfg.get_int("pretrain.batch_size")),
        bf16_(engine::TrainSettings::read(cfg, "pretrain").bf16),
        model_(tasks::build_aim(cfg)),
        gen_(at::make_generator<at::CPUGeneratorImpl>(0)) {
    model_->to(device_);
    model_->train();
    std::vector<std::pair<std::string, at::Tensor>> params;
    for (auto& p : model_->named_parameters())
      if (p.value().requires_grad()) params.emplace_back(p.key(), p.value()), tensors_.push_back(p.value());
    opt_ = std::make_unique<engine::AdamW>(engine::make_param_groups(params, engine::GroupRule{}),
                                           engine::AdamWOptions{0.9, 0.95, 1e-8});
    opt_->set_lr(1e-4);
    const auto& v = mcfg_.vit;
    imgs_ = at::randn({batch_, v.in_chans, v.img_size, v.img_size}).to(device_);
  }
  int64_t batch() const { return batch_; }
  // Waits for the device's queued work (reading the last loss), so a timed loop ends when its steps do.
  void sync() const { (void)last_loss_.item<float>(); }
  // Model FLOPs of one image's step: every weight matrix once per token (2 FLOPs per multiply-add) and dense
  // attention scores and sums, forward + backward (3x), plus the semantic pass's encoder forward when the
  // strategy reads tokens. Norms, activations and the optimizer are not counted.
  double flops_per_image() {
    const auto& v = mcfg_.vit;
    const double l = static_cast<double>(v.num_patches()), t = l + 1, d = static_cast<double>(v.embed_dim);
    double enc = 0, rest = 0;
    for (auto& p : model_->named_parameters()) {
      if (p.value().dim() < 2 || p.key().find("pos_embed") != std::string::npos ||
          p.key().find("token") != std::string::npos)
        continue;
      (models::AimVitImpl::is_encoder_key(p.key()) ? enc : rest) += static_cast<double>(p.value().numel());
    }
    const double enc_fwd = 2 * enc * t + 4 * t * t * d * static_cast<double>(v.depth);
    const double fwd = enc_fwd + 2 * rest * l + 4 * l * t * d * static_cast<double>(mcfg_.decoder_depth);
    return 3 * fwd + (ordering::needs_tokens(ocfg_.strategy) ? enc_fwd : 0.0);
  }
  void step() {
    const auto& v = mcfg_.vit;
    at::Tensor tokens;
    if (ordering::needs_tokens(ocfg_.strategy)) {
      RECORD_USER_SCOPE("phase::semantic pass (no-grad encoder)");
      at::NoGradGuard ng;
      engine::AutocastGuard ac(device_.type(), bf16_);
      tokens = model_->encode(imgs_).to(at::kFloat);
    }
    ordering::Ordering ord;
    {
      RECORD_USER_SCOPE("phase::ordering (keys and permutation)");
      ord = ordering::make_order(ocfg_, batch_, v.grid_h(), v.grid_w(), tokens, gen_, device_);
    }
    at::Tensor loss;
    {
      engine::AutocastGuard ac(device_.type(), bf16_);
      loss = model_->forward_loss_ordered(imgs_, ord.order, ord.inverse, tcfg_);
    }
    loss.backward();
    RECORD_USER_SCOPE("phase::optimizer (clip, AdamW, zero_grad)");
    engine::clip_grad_norm(tensors_, 3.0);
    opt_->step();
    opt_->zero_grad();
    last_loss_ = loss.detach();
  }

 private:
  at::Device device_;
  models::AimConfig mcfg_;
  ordering::OrderingConfig ocfg_;
  models::TargetConfig tcfg_;
  int64_t batch_;
  bool bf16_;
  models::AimVit model_;
  at::Generator gen_;
  std::vector<at::Tensor> tensors_;
  std::unique_ptr<engine::AdamW> opt_;
  at::Tensor imgs_, last_loss_;
};

struct Options {
  std::string config_path, device_name = "cpu";
  std::vector<std::string> sets;
  int64_t steps = 5, repeats = 3, num_variants = 3;
  double peak_tflops = 0;
  bool profile = false, help = false;
};

Options parse_options(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) throw InputError(a, "needs a value");
      return argv[++i];
    };
    if (a == "--set")
      o.sets.push_back(next());
    else if (a == "--steps")
      o.steps = std::stoll(next());
    else if (a == "--repeats")
      o.repeats = std::stoll(next());
    else if (a == "--batch")
      o.sets.push_back("pretrain.batch_size=" + next());
    else if (a == "--device")
      o.device_name = next();
    else if (a == "--variants")
      o.num_variants = std::stoll(next());
    else if (a == "--peak-tflops")
      o.peak_tflops = std::stod(next());
    else if (a == "--profile")
      o.profile = true;
    else if (a == "--help" || a == "-h")
      o.help = true;
    else if (a.rfind("--", 0) == 0)
      throw InputError(a, "unknown option");
    else
      o.config_path = a;
  }
  if (o.device_name != "cpu" && o.device_name != "cuda") throw InputError("--device", "must be cpu or cuda");
  if (o.device_name == "cuda" && !at::hasCUDA()) throw InputError("--device", "cuda asked for, no CUDA device");
  return o;
}

// --profile: the first variant's step, 2 warm-up steps, then `steps` profiled ones, and the peaks.
void run_profile(const config::Config& cfg, at::Device device, int64_t steps) {
  StepRunner runner(cfg, device);
  for (int i = 0; i < 2; ++i) runner.step();
  runner.sync();
  auto [cats, wall] = bench::profile_steps(
      [&] {
        runner.step();
        runner.sync();
      },
      steps);
  const bool bf16 = engine::TrainSettings::read(cfg, "pretrain").bf16;
  const double fp32 = bench::gemm_peak_tflops(at::kFloat), bf = bench::gemm_peak_tflops(at::kBFloat16);
  const double copy = bench::copy_peak_gbs(), cache_copy = bench::copy_peak_gbs(4LL << 20);
  std::printf("this machine, measured now: GEMM peak %.3f TFLOP/s fp32, %.3f TFLOP/s bf16; copy %.1f GB/s from DRAM "
              "(256 MB), %.1f GB/s in cache (4 MB)\n\n",
              fp32, bf, copy, cache_copy);
  bench::print_profile(cats, wall, steps, bf16 ? bf : fp32, bf16 ? "bf16" : "fp32", copy, cache_copy);
  std::printf("model FLOPs per image (analytic): %.3g; at the measured wall time %.3f TFLOP/s\n",
              runner.flops_per_image(),
              runner.flops_per_image() * static_cast<double>(runner.batch() * steps) / wall / 1e12);
}

void print_header(const config::Config& base, const at::Device& device, const Options& o) {
  const auto mc = tasks::aim_config(base);
  std::printf(
      "model %s (D %lld, depth %lld, decoder %lld, img %lld, patch %lld), batch %lld, precision %s, %s, %d threads, "
      "%lld steps x %lld repeats\n\n",
      base.get_string("model.name").c_str(), (long long)mc.vit.embed_dim, (long long)mc.vit.depth,
      (long long)mc.decoder_depth, (long long)mc.vit.img_size, (long long)mc.vit.patch_size,
      (long long)base.get_int("pretrain.batch_size"), engine::TrainSettings::read(base, "pretrain").precision_reason.c_str(),
      device.str().c_str(), at::get_num_threads(), (long long)o.steps, (long long)o.repeats);
}

// Variants are timed round-robin (repeat r of every variant before repeat r+1) so drift in the machine's speed
// spreads over all of them; each gets 2 warm-up steps first.
void run_timing(const config::Config& base, at::Device device, const Options& o, const std::vector<Variant>& variants) {
  std::vector<std::unique_ptr<StepRunner>> runners;
  for (const auto& v : variants) {
    auto cfg = base;
    cfg.apply_overrides(v.sets);
    runners.push_back(std::make_unique<StepRunner>(cfg, device));
    for (int i = 0; i < 2; ++i) runners.back()->step();
    runners.back()->sync();
  }
  const double rss = peak_rss_mb();
  std::vector<std::vector<double>> rates(variants.size());
  for (int64_t r = 0; r < o.repeats; ++r) {
    for (size_t i = 0; i < runners.size(); ++i) {
      const auto t0 = core::Clock::now();
      for (int64_t s = 0; s < o.steps; ++s) runners[i]->step();
      runners[i]->sync();
      rates[i].push_back(static_cast<double>(o.steps * runners[i]->batch()) / core::seconds_since(t0));
    }
  }
  std::printf(
      "| variant | images/s (median) | min | max | ratio to first | model TFLOP/s | MFU |\n"
      "|---|---|---|---|---|---|---|\n");
  const double first = core::median(rates[0]);
  for (size_t i = 0; i < variants.size(); ++i) {
    const auto [mn, mx] = std::minmax_element(rates[i].begin(), rates[i].end());
    const double tflops = core::median(rates[i]) * runners[i]->flops_per_image() / 1e12;
    char mfu[32] = "n/a";
    if (o.peak_tflops > 0) std::snprintf(mfu, sizeof(mfu), "%.1f%%", 100 * tflops / o.peak_tflops);
    std::printf("| %s | %.1f | %.1f | %.1f | %.2f | %.3g | %s |\n", variants[i].name.c_str(), core::median(rates[i]),
                *mn, *mx, core::median(rates[i]) / first, tflops, mfu);
  }
  std::printf("\npeak RSS of the process (all variants built and warmed up): %.0f MB; after timing: %.0f MB\n", rss,
              peak_rss_mb());
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Options o = parse_options(argc, argv);
    if (o.help) {
      std::cout << "usage: bench_pretrain_step [CONFIG.yaml] [--set key=value ...] [--steps N] [--repeats R] "
                   "[--batch B] [--device cpu|cuda] [--variants K] [--peak-tflops P] [--profile]\n";
      return 0;
    }
    auto base = o.config_path.empty() ? config::Config::defaults(tasks::schema())
                                      : config::Config::load(tasks::schema(), o.config_path);
    base.apply_overrides(o.sets);
    std::vector<Variant> variants = {
        {"semantic, sorted-causal SDPA (default)", {"model.attention=causal", "ordering.strategy=semantic"}},
        {"semantic, dense-mask reference", {"model.attention=dense", "ordering.strategy=semantic"}},
        {"stochastic (SAIM), sorted-causal SDPA", {"model.attention=causal", "ordering.strategy=stochastic"}},
    };
    if (o.num_variants < 1 || o.num_variants > static_cast<int64_t>(variants.size()))
      throw InputError("--variants", "must be 1.." + std::to_string(variants.size()));
    variants.resize(static_cast<size_t>(o.num_variants));
    const at::Device device(o.device_name == "cuda" ? at::kCUDA : at::kCPU);
    print_header(base, device, o);
    if (o.profile) {
      auto cfg = base;
      cfg.apply_overrides(variants[0].sets);
      run_profile(cfg, device, o.steps);
    } else {
      run_timing(base, device, o, variants);
    }
    return 0;
  } catch (const InputError& e) {
    std::cerr << "bench_pretrain_step: error: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "bench_pretrain_step: failed: " << e.what() << "\n";
    return 1;
  }
}
