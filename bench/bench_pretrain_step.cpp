// Pretraining-step benchmark: images/s and peak RSS of one full SemAIM step (semantic no-grad pass, ordering,
// two-stream forward + backward, clip, AdamW) for a config, with the sorted-causal SDPA form side by side with the
// reference dense-mask form, and the semantic ordering side by side with a stochastic (SAIM) ordering.
//
// usage: bench_pretrain_step [CONFIG.yaml] [--set key=value ...] [--steps N] [--repeats R] [--batch B]
// Prints a Markdown table: one row per variant, median images/s over R repeats of N timed steps (after 2 warm-up
// steps), the ratio to the first row, and the process's peak RSS after the variant.
#include <sys/resource.h>

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "semaim/config/config.h"
#include "semaim/config/errors.h"
#include "semaim/ordering/ordering.h"
#include "semaim/train/autocast.h"
#include "semaim/train/builders.h"
#include "semaim/train/optim.h"

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

// Median images/s of `repeats` timings of `steps` full training steps.
double time_variant(const config::Config& cfg, int64_t steps, int64_t repeats) {
  train::configure_threads(cfg);
  auto mcfg = train::model_config(cfg);
  auto ocfg = train::ordering_config(cfg);
  auto tcfg = train::target_config(cfg);
  const int64_t batch = cfg.get_int("train.batch_size");
  const bool bf16 = cfg.get_bool("train.bf16");
  models::AimVit model = train::build_model(cfg);
  model->train();
  std::vector<std::pair<std::string, at::Tensor>> params;
  std::vector<at::Tensor> tensors;
  for (auto& p : model->named_parameters())
    if (p.value().requires_grad()) params.emplace_back(p.key(), p.value()), tensors.push_back(p.value());
  train::AdamW opt(params, train::AdamWConfig{1e-4, 0.9, 0.95, 1e-8, 0.05});
  const auto& v = mcfg.vit;
  auto imgs = at::randn({batch, v.in_chans, v.img_size, v.img_size});
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(0);
  auto one_step = [&] {
    at::Tensor tokens;
    if (ordering::needs_tokens(ocfg.strategy)) {
      at::NoGradGuard ng;
      train::AutocastGuard ac(at::kCPU, bf16);
      tokens = model->encode(imgs).to(at::kFloat);
    }
    auto keys = ordering::make_keys(ocfg, batch, v.grid_h(), v.grid_w(), tokens, gen, at::kCPU);
    at::Tensor loss;
    {
      train::AutocastGuard ac(at::kCPU, bf16);
      loss = model->forward_loss(imgs, keys, tcfg);
    }
    loss.backward();
    train::clip_grad_norm(tensors, 3.0);
    opt.step();
    opt.zero_grad();
  };
  for (int i = 0; i < 2; ++i) one_step();
  std::vector<double> rates;
  for (int64_t r = 0; r < repeats; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    for (int64_t s = 0; s < steps; ++s) one_step();
    double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    rates.push_back(steps * batch / dt);
  }
  std::sort(rates.begin(), rates.end());
  return rates[rates.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  try {
    std::string config_path;
    std::vector<std::string> sets;
    int64_t steps = 5, repeats = 3;
    for (int i = 1; i < argc; ++i) {
      std::string a = argv[i];
      auto next = [&]() -> std::string {
        if (i + 1 >= argc) throw InputError(a, "needs a value");
        return argv[++i];
      };
      if (a == "--set") sets.push_back(next());
      else if (a == "--steps") steps = std::stoll(next());
      else if (a == "--repeats") repeats = std::stoll(next());
      else if (a == "--batch") sets.push_back("train.batch_size=" + next());
      else if (a == "--help" || a == "-h") {
        std::cout << "usage: bench_pretrain_step [CONFIG.yaml] [--set key=value ...] [--steps N] [--repeats R] [--batch B]\n";
        return 0;
      } else if (a.rfind("--", 0) == 0) throw InputError(a, "unknown option");
      else config_path = a;
    }
    auto base = config_path.empty() ? config::Config::defaults() : config::Config::load(config_path);
    base.apply_overrides(sets);
    const std::vector<Variant> variants = {
        {"semantic, sorted-causal SDPA (default)", {"model.attention=causal", "ordering.strategy=semantic"}},
        {"semantic, dense-mask reference", {"model.attention=dense", "ordering.strategy=semantic"}},
        {"stochastic (SAIM), sorted-causal SDPA", {"model.attention=causal", "ordering.strategy=stochastic"}},
    };
    auto mc = train::model_config(base);
    std::printf("model %s (D %lld, depth %lld, decoder %lld, img %lld, patch %lld), batch %lld, bf16 %s, %d threads, "
                "%lld steps x %lld repeats\n\n",
                base.get_string("model.name").c_str(), (long long)mc.vit.embed_dim, (long long)mc.vit.depth,
                (long long)mc.decoder_depth, (long long)mc.vit.img_size, (long long)mc.vit.patch_size,
                (long long)base.get_int("train.batch_size"), base.get_bool("train.bf16") ? "on" : "off",
                at::get_num_threads(), (long long)steps, (long long)repeats);
    std::printf("| variant | images/s (median) | ratio to first | peak RSS after (MB) |\n|---|---|---|---|\n");
    double first = 0;
    for (const auto& v : variants) {
      auto cfg = base;
      cfg.apply_overrides(v.sets);
      double ips = time_variant(cfg, steps, repeats);
      if (first == 0) first = ips;
      std::printf("| %s | %.1f | %.2f | %.0f |\n", v.name.c_str(), ips, ips / first, peak_rss_mb());
      std::fflush(stdout);
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
