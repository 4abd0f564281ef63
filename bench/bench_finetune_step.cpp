// Fine-tuning-step benchmark: images/s of one optimizer step of the ViT classifier as `semaim finetune` runs
// it (src/tasks/finetune.cpp finetune_step, MAE engine_finetune.train_one_epoch): forward, soft-target
// cross-entropy on mixup targets, backward, gradient norm, AdamW over MAE's layer-decay groups; fp32 and bf16
// autocast, on a fixed random batch. tools/bench_timm_finetune.py times timm's VisionTransformer with the
// same recipe and tools/bench_finetune_compare.sh runs the two alternately.
//
// usage: bench_finetune_step [CONFIG.yaml] [--set key=value ...] [--model NAME] [--batch B] [--classes K]
//                            [--steps N] [--repeats R] [--warmup W] [--threads T] [--precision fp32,bf16]
// The model is the config's encoder (model.*) with finetune.drop_path, the avg pool + fc_norm head of
// finetune.global_pool and K classes (finetune.num_classes, else 1000); groups from finetune.layer_decay and
// finetune.weight_decay. Prints a Markdown table of median (min, max) images/s over R repeats of N steps
// (after W warm-up steps; the precisions timed round-robin) and one JSON line with every repeat's rate.
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bench_common.h"
#include "bench_step.h"
#include "semaim/config/config.h"
#include "semaim/core/errors.h"
#include "semaim/core/timing.h"
#include "semaim/data/mixup.h"
#include "semaim/engine/autocast.h"
#include "semaim/engine/optimizer.h"
#include "semaim/engine/step.h"
#include "semaim/models/classifier.h"
#include "semaim/models/losses.h"
#include "semaim/tasks/models.h"
#include "semaim/tasks/schema.h"

using namespace semaim;

namespace {

// What every step of the run shares: the classifier's shape and the optimizer's recipe.
struct Recipe {
  models::ClassifierConfig model;
  double layer_decay = 0.65, weight_decay = 0.05, beta1 = 0.9, beta2 = 0.999;
  int64_t batch = 0;
};

Recipe read_recipe(const config::Config& cfg, int64_t classes) {
  Recipe r;
  r.model.vit = tasks::vit_config(cfg);
  r.model.vit.drop_path_rate = cfg.get_float("finetune.drop_path");
  r.model.vit.learnable_pos_embed = true;  // as the finetune task builds it
  r.model.global_pool = cfg.get_string("finetune.global_pool");
  r.model.num_classes = classes > 0 ? classes : cfg.get_int("finetune.num_classes");
  if (r.model.num_classes == 0) r.model.num_classes = 1000;
  r.layer_decay = cfg.get_float("finetune.layer_decay");
  r.weight_decay = cfg.get_float("finetune.weight_decay");
  const auto betas = cfg.get_floats("finetune.betas");
  if (betas.size() != 2) throw InputError("finetune.betas", "needs two values");
  r.beta1 = betas[0], r.beta2 = betas[1];
  r.batch = cfg.get_int("finetune.batch_size");
  return r;
}

// One precision's classifier, optimizer and fixed batch; step() is the task's optimizer step.
class FinetuneStep {
 public:
  FinetuneStep(const Recipe& r, bool bf16) {
    at::manual_seed(0);
    model_ = models::VitClassifier(r.model);
    model_->train();
    const auto params = tasks::trainable(*model_);
    engine::GroupRule rule;
    rule.weight_decay = r.weight_decay;
    rule.no_decay_names = {"cls_token", "pos_embed"};
    const int64_t depth = r.model.vit.depth;
    rule.layer_id = [depth](const std::string& n) { return engine::vit_layer_id(n, depth); };
    rule.num_layers = depth + 2;
    rule.layer_decay = r.layer_decay;
    step_ = std::make_unique<bench::OptimizerStep>(
        params,
        std::make_unique<engine::AdamW>(engine::make_param_groups(params, rule),
                                        engine::AdamWOptions{r.beta1, r.beta2, 1e-8}),
        bf16);
    const auto& v = r.model.vit;
    imgs_ = at::randn({r.batch, v.in_chans, v.height(), v.width()});
    const at::Tensor labels = at::randint(r.model.num_classes, {r.batch}, at::kLong);
    soft_ = data::mixup_target(labels, r.model.num_classes, 0.7, 0.1);  // a mixup batch's targets
  }
  // One optimizer step on the fixed batch, as tasks/finetune.cpp finetune_step runs it with one micro-batch.
  void step() {
    step_->run([&] { return models::soft_target_cross_entropy(model_->forward(imgs_).to(at::kFloat), soft_); });
  }

 private:
  models::VitClassifier model_{nullptr};
  std::unique_ptr<bench::OptimizerStep> step_;
  at::Tensor imgs_, soft_;
};

struct Options {
  std::string config_path;
  std::vector<std::string> sets;
  std::vector<std::string> precisions{"fp32", "bf16"};
  int64_t steps = 3, repeats = 3, warmup = 2, threads = 2, classes = 0;
};

Options parse(int argc, char** argv) {
  Options o;
  auto set = [&o](const std::string& key) {
    return [&o, key](const std::string& v) { o.sets.push_back(key + "=" + v); };
  };
  bench::parse_options(argc, argv,
                       {{"--set", &o.sets},
                        {"--model", set("model.name")},
                        {"--batch", set("finetune.batch_size")},
                        {"--classes", &o.classes},
                        {"--steps", &o.steps},
                        {"--repeats", &o.repeats},
                        {"--warmup", &o.warmup},
                        {"--threads", &o.threads},
                        {"--precision", bench::precision_list(&o.precisions)}},
                       &o.config_path,
                       "usage: bench_finetune_step [CONFIG.yaml] [--set key=value ...] [--model NAME] "
                       "[--batch B] [--classes K] [--steps N] [--repeats R] [--warmup W] [--threads T] "
                       "[--precision fp32,bf16]");
  if (o.steps < 1 || o.repeats < 1 || o.warmup < 0 || o.threads < 1 || o.precisions.empty())
    throw InputError("arguments", "steps, repeats and threads must be positive, warmup not negative");
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  return bench::run_main("bench_finetune_step", [&] {
    const Options o = parse(argc, argv);
    auto cfg = o.config_path.empty() ? config::Config::defaults(tasks::schema())
                                     : config::Config::load(tasks::schema(), o.config_path);
    cfg.apply_overrides(o.sets);
    const Recipe r = read_recipe(cfg, o.classes);
    at::set_num_threads(static_cast<int>(o.threads));
    const auto& v = r.model.vit;
    std::printf(
        "semaim %s (D %lld, depth %lld, heads %lld, %lldx%lldx%lld, patch %lld), %lld classes, batch %lld, "
        "drop path %.2f, layer decay %.2f, %d threads, %lld steps x %lld repeats after %lld warm-up\n\n",
        cfg.get_string("model.name").c_str(), (long long)v.embed_dim, (long long)v.depth,
        (long long)v.num_heads, (long long)v.height(), (long long)v.width(), (long long)v.in_chans,
        (long long)v.patch_size, (long long)r.model.num_classes, (long long)r.batch, v.drop_path_rate,
        r.layer_decay, at::get_num_threads(), (long long)o.steps, (long long)o.repeats, (long long)o.warmup);
    std::vector<std::unique_ptr<FinetuneStep>> runners;
    for (const auto& p : o.precisions) {
      runners.push_back(std::make_unique<FinetuneStep>(r, p == "bf16"));
      for (int64_t i = 0; i < o.warmup; ++i) runners.back()->step();
    }
    // Round-robin: repeat k of every precision before repeat k+1, so the machine's drift spreads over both.
    std::vector<std::vector<double>> rates(runners.size());
    for (int64_t k = 0; k < o.repeats; ++k)
      for (size_t i = 0; i < runners.size(); ++i) {
        const auto t0 = core::Clock::now();
        for (int64_t s = 0; s < o.steps; ++s) runners[i]->step();
        rates[i].push_back(static_cast<double>(o.steps * r.batch) / core::seconds_since(t0));
      }
    std::printf("| precision | images/s (median) | min | max |\n|---|---|---|---|\n");
    nlohmann::json out{{"bench", "finetune_step"},
                       {"impl", "semaim"},
                       {"model", cfg.get_string("model.name")},
                       {"batch", r.batch},
                       {"threads", at::get_num_threads()},
                       {"rates", nlohmann::json::object()}};
    for (size_t i = 0; i < runners.size(); ++i) {
      const auto [mn, mx] = std::minmax_element(rates[i].begin(), rates[i].end());
      std::printf("| %s | %.1f | %.1f | %.1f |\n", o.precisions[i].c_str(), core::median(rates[i]), *mn, *mx);
      out["rates"][o.precisions[i]] = rates[i];
    }
    std::printf("%s\n", out.dump().c_str());
    return 0;
  });
}
