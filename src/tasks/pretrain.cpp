// SemAIM pretraining on the shared engine: per micro-batch the ordering from a no-grad encoder pass
// (method.md §6), then the two-stream loss in that order (§3-4, §7).
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
#include "semaim/io/atomic_file.h"
#include "semaim/models/weights.h"
#include "semaim/ordering/ordering.h"
#include "semaim/tasks/models.h"

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
    if (s.ema_source && !s.train.ema)
      throw InputError(cfg.path().empty() ? "config" : cfg.path(),
                       "ordering.source_model is 'ema' but pretrain.ema is false");
    return s;
  }
};

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
  return {{"format", "semaim-aim"},
          {"model", cfg.get_string("model.name")},
          {"arch", arch.dump()},
          {"config", cfg.to_yaml()}};
}

void write_summary(const engine::RunContext& ctx, const config::Config& cfg, const PretrainResult& r) {
  nlohmann::json summary{{"run_dir", r.run_dir},
                         {"steps", r.steps},
                         {"skipped_steps", r.skipped_steps},
                         {"bad_images", r.bad_images},
                         {"first_loss", r.first_loss},
                         {"last_loss", r.last_loss},
                         {"images_per_sec", r.images_per_sec},
                         {"seconds", r.seconds},
                         {"checkpoint", r.last_checkpoint},
                         {"model", cfg.get_string("model.name")},
                         {"ordering", cfg.get_string("ordering.strategy")}};
  if (ctx.rank0())
    io::atomic_write((fs::path(r.run_dir) / "pretrain_summary.json").string(), summary.dump(2) + "\n");
  core::log_info("pretraining done: " + std::to_string(r.steps) + " steps, loss " +
                 std::to_string(r.first_loss) + " -> " + std::to_string(r.last_loss) + ", " +
                 std::to_string(r.images_per_sec) + " img/s");
}

}  // namespace

PretrainResult pretrain(const config::Config& cfg, const PretrainOptions& opts) {
  const PretrainSettings s = PretrainSettings::read(cfg);
  engine::RunContext ctx = engine::RunContext::open(cfg, opts.quiet);
  const int64_t world = ctx.world(), rank = ctx.rank(), accum = s.train.accum_steps;

  data::LoaderConfig lcfg = data::loader_config(
      cfg, s.train.batch_size, data::augment_config(cfg, s.model.vit.img_size, s.model.vit.in_chans, true));
  lcfg.rank = static_cast<int>(rank);
  lcfg.world_size = static_cast<int>(world);
  data::Loader loader(data::load_dataset(cfg, "train", s.model.vit.in_chans), lcfg);
  const int64_t eff_batch = s.train.batch_size * accum * world;
  const int64_t steps_per_epoch = loader.steps_per_epoch() / accum;
  if (steps_per_epoch < 1)
    throw InputError(cfg.path().empty() ? "config" : cfg.path(),
                     "the dataset (" + std::to_string(loader.size()) +
                         " images) is smaller than one optimizer step of " + std::to_string(eff_batch) +
                         " images (pretrain.batch_size x pretrain.accum_steps x ranks)");

  // Model, EMA copy, optimizer, and with several ranks the gradient reducer (after checking every rank holds
  // the same parameters, rank 0's values are broadcast).
  models::AimVit model = build_aim(cfg);
  model->to(ctx.device);
  model->train();
  std::optional<models::AimVit> ema_model;
  std::optional<engine::ModelEma> ema;
  if (s.train.ema) {
    ema_model.emplace(s.model);
    (*ema_model)->to(ctx.device);
    ema.emplace(*model, **ema_model, s.train.ema_decay);
    ema->reset();
  }
  const auto params = trainable(*model);
  engine::GroupRule rule;
  rule.weight_decay = s.train.weight_decay;
  engine::AdamW opt(engine::make_param_groups(params, rule), {s.train.beta1, s.train.beta2, s.train.eps});
  std::unique_ptr<dist::Reducer> reducer;
  if (world > 1) {
    dist::check_parameters_match(params, *ctx.comm);
    const double mib = 1024.0 * 1024.0;
    reducer = std::make_unique<dist::Reducer>(
        params, *ctx.comm,
        dist::ReducerConfig{static_cast<int64_t>(cfg.get_float("dist.bucket_cap_mb") * mib),
                            static_cast<int64_t>(cfg.get_float("dist.first_bucket_mb") * mib)});
    reducer->broadcast_parameters(0);
    if (ema) ema->reset();
  }
  std::vector<at::Tensor> param_tensors;
  for (const auto& [n, p] : params) param_tensors.push_back(p);
  engine::StepRunner runner(param_tensors, opt, accum, s.train.clip_grad, reducer.get(), ctx.comm.get(),
                            ema ? &*ema : nullptr);

  // Train state, checkpoints, resume.
  engine::TrainState state;
  state.model = model.get();
  state.optimizer = &opt;
  state.ema = ema_model ? ema_model->get() : nullptr;
  state.steps_per_epoch = steps_per_epoch;
  state.accum_steps = accum;
  engine::Checkpointer ckpt(
      engine::CheckpointManager((fs::path(ctx.run.dir) / "checkpoints").string(), s.checkpoint.keep_last),
      weights_metadata(cfg, s.model));
  if (auto from = ckpt.resume_from(opts.resume, ctx.run.dir)) ckpt.restore(state, *from);

  // Metric sinks: metrics.jsonl and TensorBoard on rank 0, the console.
  engine::Sinks sinks;
  if (ctx.rank0()) {
    io::atomic_write((fs::path(ctx.run.dir) / "config.yaml").string(), cfg.to_yaml());
    sinks.add(std::make_unique<engine::JsonlSink>((fs::path(ctx.run.dir) / "metrics.jsonl").string()));
    if (s.log.tensorboard) sinks.add(std::make_unique<engine::TensorBoardSink>(ctx.run.dir, "pretrain"));
    sinks.text("config", "```yaml\n" + cfg.to_yaml() + "```\n", state.step);  // TensorBoard renders Markdown
  }
  const int64_t schedule_steps = steps_per_epoch * s.train.epochs;
  engine::LoopSettings loop;
  loop.total_steps = s.train.max_steps > 0 ? std::min(s.train.max_steps, schedule_steps) : schedule_steps;
  loop.images_per_step = eff_batch;
  loop.max_consecutive_skips = s.train.max_consecutive_skips;
  loop.schedule = s.train.schedule(eff_batch);
  loop.checkpoint = s.checkpoint;
  loop.log = s.log;
  engine::ConsoleSink console(s.log.progress, ctx.quiet, loop.total_steps);
  core::log_info("pretraining " + cfg.get_string("model.name") + " on " + ctx.device.str() + ": " +
                 std::to_string(loader.size()) + " images, " + std::to_string(steps_per_epoch) +
                 " steps/epoch x " + std::to_string(s.train.epochs) + " epochs, effective batch " +
                 std::to_string(eff_batch) + " (" + std::to_string(world) + " rank(s), " +
                 ctx.comm->backend() + "), lr " + std::to_string(loop.schedule.base_lr) + ", ordering " +
                 cfg.get_string("ordering.strategy") + ", run dir " + ctx.run.dir);

  // One optimizer step: per micro-batch the ordering, then the two-stream loss in that order.
  const int64_t gh = s.model.vit.grid_h(), gw = s.model.vit.grid_w();
  auto step_fn = [&](data::Loader& data, double lr) {
    for (int64_t micro = 0; micro < accum; ++micro) {
      auto b = data.next();
      if (!b) throw RuntimeFailure("data loader ended the epoch early (internal error)");
      at::Tensor imgs = b->images.to(ctx.device, /*non_blocking=*/true);
      // The global micro-batch index: W ranks draw the orderings one rank with W times the accumulation
      // would.
      const auto counter = static_cast<uint64_t>((state.step * accum + micro) * world + rank);
      runner.begin_micro(micro);
      at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(core::step_seed(ctx.run.seed, counter));
      at::Tensor tokens;
      if (ordering::needs_tokens(s.ordering.strategy)) {
        at::NoGradGuard ng;
        engine::AutocastGuard ac(ctx.device.type(), s.pass_bf16 || s.train.bf16);
        models::AimVit& src = (ema_model && s.ema_source) ? *ema_model : model;
        tokens = src->encode(imgs).to(at::kFloat);
      }
      const ordering::Ordering ord =
          ordering::make_order(s.ordering, imgs.size(0), gh, gw, tokens, gen, ctx.device);
      at::Tensor loss;
      {
        engine::AutocastGuard ac(ctx.device.type(), s.train.bf16);
        loss = model->forward_loss_ordered(imgs, ord.order, ord.inverse, s.target);
      }
      if (opts.loss_hook) loss = opts.loss_hook(loss, state.step);
      runner.backward(loss);
    }
    return runner.finish(lr);
  };
  engine::Trainer trainer(ctx, state, ckpt, sinks, console, loop);
  const engine::TrainSummary t = trainer.run(loader, step_fn);

  PretrainResult result;
  result.run_dir = ctx.run.dir;
  result.last_checkpoint = t.last_checkpoint;
  result.steps = t.steps;
  result.skipped_steps = t.skipped_steps;
  result.bad_images = t.bad_images;
  result.first_loss = t.first_loss;
  result.last_loss = t.last_loss;
  result.images_per_sec = t.images_per_sec;
  result.seconds = t.seconds;
  write_summary(ctx, cfg, result);
  return result;
}

}  // namespace semaim::tasks
