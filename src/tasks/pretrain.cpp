// SemAIM pretraining on the shared engine: per micro-batch the ordering from a no-grad encoder pass
// (method.md §6), then the two-stream loss in that order against pixel or feature targets (§3-4, §7;
// reference engine_pretrain.train_one_epoch with predict_feature).
#include "semaim/tasks/pretrain.h"

#include <ATen/CPUGeneratorImpl.h>

#include <filesystem>
#include <optional>

#include "semaim/core/errors.h"
#include "semaim/core/log.h"
#include "semaim/core/rng.h"
#include "semaim/data/settings.h"
#include "semaim/dist/reducer.h"
#include "semaim/engine/autocast.h"
#include "semaim/engine/trainer.h"
#include "semaim/models/teacher.h"
#include "semaim/models/weights.h"
#include "semaim/ordering/ordering.h"
#include "semaim/tasks/models.h"
#include "semaim/tasks/visualize.h"

namespace semaim::tasks {
namespace {

namespace fs = std::filesystem;

// Every pretraining setting, read once.
struct PretrainSettings {
  engine::TrainSettings train;
  engine::CheckpointSettings checkpoint;
  engine::LogSettings log;
  models::AimConfig model;
  models::TargetConfig target;
  ordering::OrderingConfig ordering;
  bool pass_bf16 = false, ema_source = false;

  static PretrainSettings read(const config::Config& cfg) {
    PretrainSettings s;
    s.train = engine::TrainSettings::read(cfg, "pretrain");
    s.checkpoint = engine::CheckpointSettings::read(cfg);
    s.log = engine::LogSettings::read(cfg);
    s.model = aim_config(cfg);
    s.target = target_config(cfg);
    s.ordering = ordering_config(cfg);
    s.pass_bf16 = cfg.get_string("ordering.pass_dtype") == "bf16";
    s.ema_source = cfg.get_string("ordering.source_model") == "ema";
    const std::string where = cfg.path().empty() ? "config" : cfg.path();
    if (s.ema_source && !s.train.ema)
      throw InputError(where, "ordering.source_model is 'ema' but pretrain.ema is false");
    if (s.target.kind == "ema" && !s.train.ema)
      throw InputError(where,
                       "target.kind is 'ema' but pretrain.ema is false (the EMA encoder gives the targets)");
    if (s.target.kind == "teacher" && s.target.teacher_path.empty())
      throw InputError(where, "target.kind is 'teacher' but target.teacher_path is empty");
    if (s.target.kind == "inference" || s.target.kind == "ema") s.model.target_dim = s.model.vit.embed_dim;
    return s;
  }
};

// The frozen teacher of target.kind 'teacher', on the run's device, features at the student's grid.
std::optional<models::Teacher> load_teacher(const PretrainSettings& s, at::Device device) {
  if (s.target.kind != "teacher") return std::nullopt;
  models::TeacherOptions o;
  o.format = s.target.teacher_format;
  o.act = s.target.teacher_act;
  o.width = s.target.teacher_width;
  o.depth = s.target.teacher_depth;
  o.heads = s.target.teacher_heads;
  std::optional<models::Teacher> t(std::in_place, s.target.teacher_path, o, s.model.vit.grid());
  t->to(device);
  return t;
}

// Weights-file metadata: the format, the model name, its architecture and the resolved config.
std::map<std::string, std::string> weights_metadata(const config::Config& cfg, const models::AimConfig& m) {
  const nlohmann::json arch{{"img_size", m.vit.img_size},
                            {"patch_size", m.vit.patch_size},
                            {"in_chans", m.vit.in_chans},
                            {"embed_dim", m.vit.embed_dim},
                            {"depth", m.vit.depth},
                            {"num_heads", m.vit.num_heads},
                            {"mlp_ratio", m.vit.mlp_ratio},
                            {"decoder_depth", m.decoder_depth},
                            {"head", m.head}};
  nlohmann::json a = arch;
  if (m.target_dim > 0) a["target_dim"] = m.target_dim;  // the prediction head's width for feature targets
  return {{"format", "semaim-aim"},
          {"model", cfg.get_string("model.name")},
          {"arch", a.dump()},
          {"config", cfg.to_yaml()}};
}

void write_summary(const engine::RunContext& ctx, const config::Config& cfg,
                   const engine::TrainSummary& sum) {
  nlohmann::json summary = engine::summary_json(ctx.run.dir, sum);
  summary["bad_images"] = sum.bad_images;
  summary["model"] = cfg.get_string("model.name");
  summary["ordering"] = cfg.get_string("ordering.strategy");
  engine::write_summary(ctx, "pretrain", summary);
  core::log_info("pretraining done: " + std::to_string(sum.steps) + " steps, loss " +
                 std::to_string(sum.first_loss) + " -> " + std::to_string(sum.last_loss) + ", " +
                 std::to_string(sum.images_per_sec) + " img/s");
}

// The model and its EMA copy, AdamW over them, wired into the engine (reducer, step runner, train state), and
// the frozen teacher of teacher targets (re-read from its file on resume, never saved).
struct Trainables {
  models::AimVit model{nullptr};
  std::optional<models::AimVit> ema_model;
  std::optional<models::Teacher> teacher;
  std::unique_ptr<engine::TrainWiring> w;

  Trainables(const config::Config& cfg, PretrainSettings& s, engine::RunContext& ctx,
             int64_t steps_per_epoch) {
    teacher = load_teacher(s, ctx.device);
    if (teacher) s.model.target_dim = teacher->out_dim();  // the head predicts the teacher's width
    if (s.model.target_dim > 0) {
      at::manual_seed(static_cast<uint64_t>(cfg.get_int("run.seed")));  // as build_aim, with the feature head
      model = models::AimVit(s.model);
    } else {
      model = build_aim(cfg);
    }
    model->to(ctx.device);
    model->train();
    model->set_checkpoint_blocks(s.train.checkpoint_blocks);
    if (s.train.ema) {
      ema_model.emplace(s.model);
      (*ema_model)->to(ctx.device);
    }
    const auto params = trainable(*model);
    engine::GroupRule rule;
    rule.weight_decay = s.train.weight_decay;
    auto opt =
        std::make_unique<engine::AdamW>(engine::make_param_groups(params, rule),
                                        engine::AdamWOptions{s.train.beta1, s.train.beta2, s.train.eps});
    w = std::make_unique<engine::TrainWiring>(*model, ema_model ? ema_model->get() : nullptr, std::move(opt),
                                              params, s.train, cfg, ctx, steps_per_epoch);
  }
};

// Whether the semantic pass's tokens are the feature targets themselves: the online or EMA encoder that
// ordering.source_model names, or the teacher unless target.teacher_orders is off.
bool ordering_reuses_targets(const PretrainSettings& s) {
  const std::string& k = s.target.kind;
  return (k == "inference" && !s.ema_source) || (k == "ema" && s.ema_source) ||
         (k == "teacher" && s.target.teacher_orders);
}

// The feature targets of one micro-batch, no grad, in the semantic pass's precision (the reference runs its
// teacher under the step's autocast); undefined for pixel targets. imgs: (N, C, H, W) -> (N, L+1, K) float32
at::Tensor feature_targets(const PretrainSettings& s, const engine::RunContext& ctx, Trainables& t,
                           const at::Tensor& imgs) {
  if (!s.target.features()) return {};
  at::NoGradGuard ng;
  engine::AutocastGuard ac(ctx.device.type(), s.pass_bf16 || s.train.bf16);
  if (s.target.kind == "teacher") return t.teacher->forward(imgs).to(at::kFloat);
  models::AimVit& src = s.target.kind == "ema" ? *t.ema_model : t.model;
  return src->encode(imgs).to(at::kFloat);
}

// One optimizer step: per micro-batch the ordering from a no-grad encoder pass, then the two-stream loss in
// that order.
engine::StepResult pretrain_step(const PretrainSettings& s, const engine::RunContext& ctx, Trainables& t,
                                 const PretrainOptions& opts, data::Loader& data, double lr) {
  const int64_t accum = s.train.accum_steps, gh = s.model.vit.grid_h(), gw = s.model.vit.grid_w();
  for (int64_t micro = 0; micro < accum; ++micro) {
    auto b = data.next();
    if (!b) throw RuntimeFailure("data loader ended the epoch early (internal error)");
    at::Tensor imgs = b->images.to(ctx.device, /*non_blocking=*/true);
    // The global micro-batch index: W ranks draw the orderings one rank with W times the accumulation would.
    const auto counter = static_cast<uint64_t>((t.w->state.step * accum + micro) * ctx.world() + ctx.rank());
    t.w->runner->begin_micro(micro);
    at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(core::step_seed(ctx.run.seed, counter));
    const at::Tensor features = feature_targets(s, ctx, t, imgs);
    at::Tensor tokens;
    if (ordering::needs_tokens(s.ordering.strategy)) {
      if (features.defined() && ordering_reuses_targets(s)) {
        tokens = features;  // one no-grad pass gives the targets and the order, as in the reference
      } else {
        at::NoGradGuard ng;
        engine::AutocastGuard ac(ctx.device.type(), s.pass_bf16 || s.train.bf16);
        models::AimVit& src = (t.ema_model && s.ema_source) ? *t.ema_model : t.model;
        tokens = src->encode(imgs).to(at::kFloat);
      }
    }
    const ordering::Ordering ord =
        ordering::make_order(s.ordering, imgs.size(0), gh, gw, tokens, gen, ctx.device);
    at::Tensor loss;
    {
      engine::AutocastGuard ac(ctx.device.type(), s.train.bf16);
      loss = features.defined()
                 ? t.model->forward_feature_loss_ordered(imgs, ord.order, ord.inverse, features)
                 : t.model->forward_loss_ordered(imgs, ord.order, ord.inverse, s.target);
    }
    if (opts.loss_hook) loss = opts.loss_hook(loss, t.w->state.step);
    t.w->runner->backward(loss);
  }
  return t.w->runner->finish(lr);
}

}  // namespace

PretrainResult pretrain(const config::Config& cfg, const PretrainOptions& opts) {
  PretrainSettings s = PretrainSettings::read(cfg);
  engine::RunContext ctx = engine::RunContext::open(cfg, opts.quiet);
  ctx.lock_run_dir();  // a second process on this run fails here, before loading anything
  data::Loader loader = engine::make_train_loader(
      cfg, ctx, s.train.batch_size,
      data::augment_config(cfg, s.model.vit.img_size, s.model.vit.in_chans, /*random=*/true),
      data::load_dataset(cfg, "train", s.model.vit.in_chans));
  const int64_t eff_batch = s.train.batch_size * s.train.accum_steps * ctx.world();
  const int64_t steps_per_epoch = engine::steps_per_epoch(loader, s.train, eff_batch, cfg);
  Trainables t(cfg, s, ctx, steps_per_epoch);
  engine::Checkpointer ckpt(
      engine::CheckpointManager((fs::path(ctx.run.dir) / "checkpoints").string(), s.checkpoint.keep_last),
      weights_metadata(cfg, s.model));
  if (auto from = ckpt.resume_from(opts.resume, ctx.run.dir)) ckpt.restore(t.w->state, *from);
  engine::Sinks sinks = engine::open_run_sinks(ctx, cfg, s.log, "pretrain", t.w->state.step);
  PicturesHook pictures(cfg, ctx);  // log.picture_every_steps; off by default
  const engine::LoopSettings loop =
      engine::loop_settings(s.train, s.checkpoint, s.log, steps_per_epoch, eff_batch);
  engine::ConsoleSink console(s.log.progress, ctx.quiet, loop.total_steps);
  core::log_info("pretraining " + cfg.get_string("model.name") + " on " + ctx.device.str() + ": " +
                 std::to_string(loader.size()) + " images, " + std::to_string(steps_per_epoch) +
                 " steps/epoch x " + std::to_string(s.train.epochs) + " epochs, effective batch " +
                 std::to_string(eff_batch) + " (" + std::to_string(ctx.world()) + " rank(s), " +
                 ctx.comm->backend() + "), lr " + std::to_string(loop.schedule.base_lr) + ", ordering " +
                 cfg.get_string("ordering.strategy") + ", " + s.train.precision_reason + ", run dir " +
                 ctx.run.dir);
  engine::Trainer trainer(ctx, t.w->state, ckpt, sinks, console, loop);
  const engine::TrainSummary sum = trainer.run(loader, [&](data::Loader& data, double lr) {
    engine::StepResult r = pretrain_step(s, ctx, t, opts, data, lr);
    pictures.maybe_log(t.w->state.step + 1, *t.model);  // the trainer counts this step right after we return
    return r;
  });
  PretrainResult result{ctx.run.dir,       sum.last_checkpoint, sum.steps,
                        sum.skipped_steps, sum.bad_images,      sum.first_loss,
                        sum.last_loss,     sum.images_per_sec,  sum.seconds};
  write_summary(ctx, cfg, sum);
  return result;
}

}  // namespace semaim::tasks
