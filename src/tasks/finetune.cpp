// Classification fine-tuning on the shared engine (MAE main_finetune + engine_finetune.train_one_epoch /
// evaluate): per micro-batch the classifier's logits against hard labels (label smoothing) or mixup / cutmix
// soft targets; evaluation on the validation split sharded exactly across ranks.
#include "semaim/tasks/finetune.h"

#include <filesystem>
#include <optional>

#include <nlohmann/json.hpp>

#include "semaim/core/errors.h"
#include "semaim/core/log.h"
#include "semaim/core/rng.h"
#include "semaim/data/mixup.h"
#include "semaim/data/settings.h"
#include "semaim/dist/reducer.h"
#include "semaim/engine/autocast.h"
#include "semaim/engine/trainer.h"
#include "semaim/eval/classify.h"
#include "semaim/models/classifier.h"
#include "semaim/models/losses.h"
#include "semaim/tasks/init_weights.h"
#include "semaim/tasks/models.h"

namespace semaim::tasks {
namespace {

namespace fs = std::filesystem;

constexpr uint64_t kMixupStream = 0x6d69787570;  // "mixup"

// Every setting of a classification run, read once (num_classes may come from the dataset): fine-tuning
// (section finetune) or the reference linear probe (section linprobe, `probe`).
struct FinetuneSettings {
  std::string section;
  bool probe = false;
  engine::TrainSettings train;
  engine::CheckpointSettings checkpoint;
  engine::LogSettings log;
  models::ClassifierConfig model;
  std::string optimizer = "adamw";  // adamw | lars | sgd
  double momentum = 0.9;
  double layer_decay = 1.0, smoothing = 0.0;
  data::MixupConfig mixup;
  int64_t eval_every_epochs = 1, eval_batch = 256, eval_limit = 0, train_limit = 0;

  static FinetuneSettings read(const config::Config& cfg, bool probe, const data::Dataset& train_set) {
    FinetuneSettings s;
    s.section = probe ? "linprobe" : "finetune";
    s.probe = probe;
    const std::string p = s.section + ".";
    s.train = engine::TrainSettings::read(cfg, s.section);
    s.checkpoint = engine::CheckpointSettings::read(cfg);
    s.log = engine::LogSettings::read(cfg);
    s.model.vit = vit_config(cfg);
    s.model.num_classes = cfg.get_int(p + "num_classes");
    if (s.model.num_classes == 0) s.model.num_classes = data::count_classes(train_set);
    if (probe) {
      // MAE main_linprobe: the pooled token (cls after the final norm by default), BN + Linear (std 0.01).
      s.model.global_pool = cfg.get_string("linprobe.pool") == "mean" ? "avg" : "cls";
      s.model.head_bn = s.model.frozen_encoder = true;
      s.model.head_init_std = 0.01;
      s.optimizer = cfg.get_string("linprobe.optimizer");
      s.momentum = cfg.get_float("linprobe.momentum");
      s.eval_batch = cfg.get_int("linprobe.feature_batch");
      s.eval_limit = cfg.get_int("linprobe.test_limit");
      s.train_limit = cfg.get_int("linprobe.train_limit");
    } else {
      s.model.vit.drop_path_rate = cfg.get_float("finetune.drop_path");
      s.model.vit.learnable_pos_embed = true;  // timm / MAE fine-tune the position table
      s.model.global_pool = cfg.get_string("finetune.global_pool");
      s.layer_decay = cfg.get_float("finetune.layer_decay");
      s.smoothing = cfg.get_float("finetune.smoothing");
      s.mixup = mixup_config(cfg, s.model.num_classes);
      s.eval_every_epochs = cfg.get_int("finetune.eval_every_epochs");
      s.eval_batch = cfg.get_int("finetune.eval_batch_size");
      s.eval_limit = cfg.get_int("finetune.eval_limit");
    }
    const std::string where = cfg.path().empty() ? "config" : cfg.path();
    s.model.validate(where);
    if (s.mixing()) {
      s.mixup.validate(where);
      // Batch mode pairs image i with image B-1-i (timm requires an even batch).
      if (s.train.batch_size % 2 != 0)
        throw InputError(where, "finetune.batch_size must be even with mixup / cutmix, got " +
                                    std::to_string(s.train.batch_size));
    }
    return s;
  }

  bool mixing() const {
    return !probe && mixup.prob > 0 &&
           (mixup.mixup_alpha > 0 || mixup.cutmix_alpha > 0 || mixup.cutmix_minmax);
  }
};

std::map<std::string, std::string> weights_metadata(const config::Config& cfg,
                                                    const models::ClassifierConfig& m) {
  const nlohmann::json arch{
      {"img_size", m.vit.img_size},   {"patch_size", m.vit.patch_size}, {"in_chans", m.vit.in_chans},
      {"embed_dim", m.vit.embed_dim}, {"depth", m.vit.depth},           {"num_heads", m.vit.num_heads},
      {"mlp_ratio", m.vit.mlp_ratio}, {"num_classes", m.num_classes},   {"global_pool", m.global_pool}};
  return {{"format", "semaim-classifier"},
          {"model", cfg.get_string("model.name")},
          {"arch", arch.dump()},
          {"config", cfg.to_yaml()}};
}

// The task's optimizer over the trainable parameters: AdamW over MAE's layer-decay groups (fine-tuning), or
// LARS / SGD over the head (the reference linear probe, MAE main_linprobe).
std::unique_ptr<engine::Optimizer> make_optimizer(const FinetuneSettings& s,
                                                  const engine::NamedParams& params) {
  engine::GroupRule rule;
  rule.weight_decay = s.train.weight_decay;
  rule.no_decay_names = {"cls_token", "pos_embed"};
  if (s.optimizer == "adamw") {
    const int64_t depth = s.model.vit.depth;
    rule.layer_id = [depth](const std::string& n) { return engine::vit_layer_id(n, depth); };
    rule.num_layers = depth + 2;
    rule.layer_decay = s.layer_decay;
    return std::make_unique<engine::AdamW>(engine::make_param_groups(params, rule),
                                           engine::AdamWOptions{s.train.beta1, s.train.beta2, s.train.eps});
  }
  if (s.optimizer == "lars")
    return std::make_unique<engine::Lars>(engine::make_param_groups(params, rule),
                                          engine::LarsOptions{s.momentum, 0.001});
  return std::make_unique<engine::Sgd>(engine::make_param_groups(params, rule),
                                       engine::SgdOptions{s.momentum});
}

// The classifier (its encoder from `init` unless resuming) and its EMA copy, the task's optimizer, wired into
// the engine (reducer, step runner, train state).
struct Trainables {
  models::VitClassifier model{nullptr};
  std::optional<models::VitClassifier> ema_model;
  std::unique_ptr<engine::TrainWiring> w;

  Trainables(const config::Config& cfg, const FinetuneSettings& s, engine::RunContext& ctx,
             int64_t steps_per_epoch, const std::string& init) {
    at::manual_seed(ctx.run.seed);
    model = models::VitClassifier(s.model);
    if (!init.empty()) load_init_encoder(*model, init);
    model->to(ctx.device);
    model->train();
    model->set_checkpoint_blocks(s.train.checkpoint_blocks);
    if (s.train.ema) {
      ema_model.emplace(s.model);
      (*ema_model)->to(ctx.device);
      (*ema_model)->eval();
    }
    const auto params = trainable(*model);
    w = std::make_unique<engine::TrainWiring>(*model, ema_model ? ema_model->get() : nullptr,
                                              make_optimizer(s, params), params, s.train, cfg, ctx,
                                              steps_per_epoch);
  }
};

// timm SoftTargetCrossEntropy with mixup / cutmix targets, else LabelSmoothingCrossEntropy (MAE
// main_finetune's choice). logits: (B, K) -> scalar
at::Tensor classification_loss(const at::Tensor& logits, const data::Batch& b, double smoothing) {
  const at::Tensor lg = logits.to(at::kFloat);
  if (b.soft_labels.defined()) return models::soft_target_cross_entropy(lg, b.soft_labels.to(lg.device()));
  return models::label_smoothing_cross_entropy(lg, b.labels.to(lg.device()), smoothing);
}

engine::StepResult finetune_step(const FinetuneSettings& s, const engine::RunContext& ctx, Trainables& t,
                                 data::Loader& data, double lr) {
  return engine::accumulate_step(*t.w, data, s.train.accum_steps, ctx.device.type(), s.train.bf16, lr,
                                 [&](const data::Batch& b) {
                                   return classification_loss(t.model->forward(b.images.to(ctx.device, true)), b,
                                                              s.smoothing);
                                 });
}

// Top-1 / top-5 / loss of `model` on this rank's shard of the validation split, summed over ranks.
eval::ClassifyCounts evaluate(models::VitClassifier& model, const engine::RunContext& ctx, bool bf16,
                              const std::shared_ptr<const data::Dataset>& shard,
                              const data::AugmentConfig& eval_tf, int64_t batch, const config::Config& cfg) {
  const bool was_training = model->is_training();
  model->eval();
  eval::ClassifyCounts c = eval::evaluate_classifier(
      [&](const at::Tensor& imgs) {
        engine::AutocastGuard ac(ctx.device.type(), bf16);
        return model->forward(imgs.to(ctx.device, true)).to(at::kFloat);
      },
      shard, eval_tf, batch, cfg.get_int("data.num_workers"), cfg.get_string("data.on_bad_image") == "fail");
  model->train(was_training);
  c.loss_sum = ctx.sum_over_ranks(c.loss_sum);
  c.correct1 = static_cast<int64_t>(ctx.sum_over_ranks(static_cast<double>(c.correct1)));
  c.correct5 = static_cast<int64_t>(ctx.sum_over_ranks(static_cast<double>(c.correct5)));
  c.count = static_cast<int64_t>(ctx.sum_over_ranks(static_cast<double>(c.count)));
  return c;
}

// <run dir>/<section>_summary.json and the closing log line.
void write_summary(const engine::RunContext& ctx, const engine::TrainSummary& sum, const FinetuneResult& r,
                   const std::string& section) {
  nlohmann::json j = engine::summary_json(ctx.run.dir, sum);
  j.update({{"top1", r.top1},
            {"top5", r.top5},
            {"val_loss", r.val_loss},
            {"n_val", r.n_val},
            {"best_top1", r.best_top1},
            {"best_checkpoint", r.best_checkpoint}});
  if (r.ema_top1 >= 0) j["ema_top1"] = r.ema_top1;
  engine::write_summary(ctx, section, j);
  core::log_info(section + " done: " + std::to_string(r.steps) + " steps, top-1 " + std::to_string(r.top1) +
                 "% (best " + std::to_string(r.best_top1) + "%), top-5 " + std::to_string(r.top5) + "% on " +
                 std::to_string(r.n_val) + " validation images");
}

// Mixup / CutMix on the loader's worker threads, its draws keyed by (seed, epoch, batch, rank) so a resumed
// run mixes as an uninterrupted one; empty when the run does not mix.
std::function<void(data::Batch&)> make_mixing(const FinetuneSettings& s, const engine::RunContext& ctx) {
  if (!s.mixing()) return {};
  auto mixer = std::make_shared<const data::Mixup>(s.mixup);
  const uint64_t seed = ctx.run.seed, rank = static_cast<uint64_t>(ctx.rank()), world = ctx.world();
  return [mixer, seed, rank, world](data::Batch& b) {
    std::mt19937_64 rng(core::mix_seed(seed, kMixupStream, static_cast<uint64_t>(b.epoch),
                                       static_cast<uint64_t>(b.index) * world + rank));
    mixer->apply(b, rng);
  };
}

// The evaluation on this rank's shard of the validation split (the EMA model too), recorded into `result`.
engine::EvalHook make_eval_hook(const config::Config& cfg, const FinetuneSettings& s,
                                const engine::RunContext& ctx, Trainables& t, FinetuneResult& result) {
  const models::VitConfig& vit = s.model.vit;
  const auto shard = data::take_shard(
      data::take_first(data::load_dataset(cfg, "test", vit.in_chans), s.eval_limit), ctx.rank(), ctx.world());
  const data::AugmentConfig eval_tf = data::augment_config(cfg, vit.img_size, vit.in_chans, /*random=*/false);
  engine::EvalHook hook;
  hook.every_epochs = s.eval_every_epochs;
  hook.run = [&cfg, &s, &ctx, &t, &result, shard, eval_tf](int64_t) {
    const eval::ClassifyCounts c = evaluate(t.model, ctx, s.train.bf16, shard, eval_tf, s.eval_batch, cfg);
    nlohmann::json m{{"top1", c.top1()}, {"top5", c.top5()}, {"val_loss", c.loss()}, {"n_val", c.count}};
    result.top1 = c.top1(), result.top5 = c.top5(), result.val_loss = c.loss(), result.n_val = c.count;
    if (t.ema_model) {
      const eval::ClassifyCounts e =
          evaluate(*t.ema_model, ctx, s.train.bf16, shard, eval_tf, s.eval_batch, cfg);
      m["ema_top1"] = result.ema_top1 = e.top1();
      m["ema_top5"] = e.top5();
    }
    return m;
  };
  return hook;
}

void log_start(const config::Config& cfg, const FinetuneSettings& s, const engine::RunContext& ctx,
               const data::Loader& loader, const engine::LoopSettings& loop, const std::string& init) {
  core::log_info(std::string(s.probe ? "linear probe (reference protocol) of " : "fine-tuning ") +
                 cfg.get_string("model.name") + " (" + std::to_string(s.model.num_classes) + " classes, " +
                 s.model.global_pool + " pool, " + s.optimizer + ") on " + ctx.device.str() + ": " +
                 std::to_string(loader.size()) + " images, " + std::to_string(loop.total_steps) +
                 " steps, effective batch " + std::to_string(loop.images_per_step) + ", lr " +
                 std::to_string(loop.schedule.base_lr) + ", layer decay " + std::to_string(s.layer_decay) +
                 (s.mixing() ? ", mixup/cutmix" : "") + ", init " + (init.empty() ? "random" : init) + ", " +
                 s.train.precision_reason + ", run dir " + ctx.run.dir);
}

// The classification task of `probe` (false: fine-tuning) from encoder weights `init`, in `subdir` of the
// run directory.
FinetuneResult train_classifier(const config::Config& cfg, bool probe, const std::string& init,
                                const std::string& subdir, const FinetuneOptions& opts) {
  engine::RunContext ctx = engine::RunContext::open(cfg, opts.quiet);
  if (!subdir.empty()) {
    ctx.run.dir = (fs::path(ctx.run.dir) / subdir).string();
    if (ctx.rank0()) fs::create_directories(ctx.run.dir);
    ctx.barrier();
  }
  ctx.lock_run_dir();  // a second process on this run fails here, before loading anything
  const models::VitConfig vit = vit_config(cfg);
  auto train_set = data::load_dataset(cfg, "train", vit.in_chans);
  const FinetuneSettings s = FinetuneSettings::read(cfg, probe, *train_set);
  data::Loader loader = engine::make_train_loader(
      cfg, ctx, s.train.batch_size, data::augment_config(cfg, vit.img_size, vit.in_chans, /*random=*/true),
      data::take_first(train_set, s.train_limit), make_mixing(s, ctx));
  const int64_t eff_batch = s.train.batch_size * s.train.accum_steps * ctx.world();
  const int64_t steps_per_epoch = engine::steps_per_epoch(loader, s.train, eff_batch, cfg);
  engine::Checkpointer ckpt(
      engine::CheckpointManager((fs::path(ctx.run.dir) / "checkpoints").string(), s.checkpoint.keep_last,
                                engine::BestMetric{"top1", true}),
      weights_metadata(cfg, s.model));
  const auto from = ckpt.resume_from(opts.resume, ctx.run.dir);
  Trainables t(cfg, s, ctx, steps_per_epoch, from ? std::string() : init);
  if (from) ckpt.restore(t.w->state, *from);
  FinetuneResult result;
  engine::Sinks sinks = engine::open_run_sinks(ctx, cfg, s.log, s.section, t.w->state.step);
  const engine::LoopSettings loop =
      engine::loop_settings(s.train, s.checkpoint, s.log, steps_per_epoch, eff_batch);
  engine::ConsoleSink console(s.log.progress, ctx.quiet, loop.total_steps);
  log_start(cfg, s, ctx, loader, loop, init);
  engine::Trainer trainer(ctx, t.w->state, ckpt, sinks, console, loop);
  trainer.add_eval(make_eval_hook(cfg, s, ctx, t, result));
  const engine::TrainSummary sum =
      trainer.run(loader, [&](data::Loader& data, double lr) { return finetune_step(s, ctx, t, data, lr); });
  result.best_top1 = engine::finish_trained_run(result, ctx.run.dir, sum, ckpt.manager(), "top1", result.top1);
  write_summary(ctx, sum, result, s.section);
  return result;
}

}  // namespace

data::MixupConfig mixup_config(const config::Config& cfg, int64_t classes) {
  data::MixupConfig m;
  m.mixup_alpha = cfg.get_float("finetune.mixup");
  m.cutmix_alpha = cfg.get_float("finetune.cutmix");
  const std::vector<double> minmax = cfg.get_floats("finetune.cutmix_minmax");
  if (!minmax.empty()) {
    if (minmax.size() != 2 || !(minmax[0] < minmax[1]))
      throw InputError(cfg.path().empty() ? "config" : cfg.path(),
                       "finetune.cutmix_minmax must be [] or two increasing fractions");
    m.cutmix_minmax = std::array<double, 2>{minmax[0], minmax[1]};
  }
  m.prob = cfg.get_float("finetune.mixup_prob");
  m.switch_prob = cfg.get_float("finetune.mixup_switch_prob");
  m.label_smoothing = cfg.get_float("finetune.smoothing");
  m.num_classes = classes;
  return m;
}

FinetuneResult finetune(const config::Config& cfg, const FinetuneOptions& opts) {
  return train_classifier(cfg, /*probe=*/false, cfg.get_string("finetune.init"), "", opts);
}

FinetuneResult linear_probe_reference(const config::Config& cfg, const LinearProbeRun& probe,
                                      const FinetuneOptions& opts) {
  return train_classifier(cfg, /*probe=*/true, probe.init, probe.subdir, opts);
}

}  // namespace semaim::tasks
