// Semantic segmentation on the shared engine (mmseg's EncoderDecoder training with MAE / BEiT's ViT UperNet
// recipe): iteration-based AdamW with layer decay on the encoder, warmup + poly, evaluation by sliding windows
// at the test scale, the best checkpoint kept by mIoU.
#include <filesystem>
#include <optional>

#include <nlohmann/json.hpp>

#include "semaim/core/errors.h"
#include "semaim/core/log.h"
#include "semaim/data/seg_dataset.h"
#include "semaim/data/settings.h"
#include "semaim/dist/comm.h"
#include "semaim/engine/trainer.h"
#include "semaim/eval/seg_inference.h"
#include "semaim/io/atomic_file.h"
#include "semaim/models/heads/upernet.h"
#include "semaim/tasks/init_weights.h"
#include "semaim/tasks/models.h"
#include "semaim/tasks/segment.h"
#include "semaim/tasks/segment_settings.h"

namespace semaim::tasks {
namespace {

namespace fs = std::filesystem;

// The training transform: data.* (mean, std, hflip) with the segment.* pipeline, crop and scales.
data::AugmentConfig train_augment(const config::Config& cfg, const SegmentSettings& s) {
  data::AugmentConfig a = data::augment_config(cfg, cfg.get_int("segment.crop_size"), 3, /*random=*/true);
  a.transforms = cfg.get_strings("segment.transforms");
  a.pad_size = a.out_size;
  a.ignore_index = s.model.ignore_index;
  a.interpolation = "bilinear";  // mmseg resizes images with OpenCV's bilinear
  const auto ratio = cfg.get_floats("segment.ratio_range");
  if (ratio.size() != 2) throw InputError("segment.ratio_range", "needs two values [min, max]");
  a.seg_scale = s.eval.test_scale;
  a.ratio_range = {ratio[0], ratio[1]};
  a.cat_max_ratio = cfg.get_float("segment.cat_max_ratio");
  return a;
}

struct SegTrainables {
  models::UperNet model{nullptr};
  std::unique_ptr<engine::TrainWiring> w;

  SegTrainables(const config::Config& cfg, const SegmentSettings& s, engine::RunContext& ctx,
                int64_t steps_per_epoch, const std::string& init) {
    at::manual_seed(ctx.run.seed);
    model = models::UperNet(s.model);
    if (!init.empty()) load_init_encoder(*model->backbone, init);
    model->to(ctx.device);
    model->train();
    model->backbone->set_checkpoint_blocks(s.train.checkpoint_blocks);
    if (ctx.world() > 1) {  // SyncBN: the heads' batch statistics cover every rank's batch
      dist::Communicator* comm = ctx.comm.get();
      models::set_sync_batchnorm(*model, std::make_shared<const models::SumAcrossRanks>(
                                             [comm](at::Tensor& t) { comm->all_reduce(t, dist::ReduceOp::kSum); }));
    }
    const auto params = trainable(*model);
    w = std::make_unique<engine::TrainWiring>(*model, nullptr, make_segment_optimizer(s, params), params, s.train, cfg,
                                              ctx, steps_per_epoch);
  }
};

engine::StepResult segment_step(const SegmentSettings& s, const engine::RunContext& ctx, SegTrainables& t,
                                data::Loader& data, double lr) {
  return engine::accumulate_step(*t.w, data, s.train.accum_steps, ctx.device.type(), s.train.bf16, lr,
                                 [&](const data::Batch& b) {
                                   const auto out = t.model->forward(b.images.to(ctx.device, true));
                                   return t.model->loss(out, b.label_maps.to(ctx.device));
                                 });
}

// Scores of this rank's contiguous part of the validation split, summed over ranks.
eval::SegScores evaluate(models::UperNet& model, const engine::RunContext& ctx, const SegmentSettings& s,
                         const data::SegDataset& val, int64_t* bad) {
  const bool was_training = model->is_training();
  model->eval();
  at::NoGradGuard no_grad;
  const int64_t n = s.eval_limit > 0 ? std::min(s.eval_limit, val.size()) : val.size();
  const int64_t begin = ctx.rank() * n / ctx.world(), end = (ctx.rank() + 1) * n / ctx.world();
  eval::SegMetric metric(s.model.num_classes, s.model.ignore_index);
  const int64_t skipped = eval::evaluate_segmentation(segmenter_logits(model, ctx.device, s.train.bf16), val,
                                                      begin, end, s.eval, metric);
  model->train(was_training);
  // Pixel counts stay exact in doubles far past any split's size.
  at::Tensor areas = metric.areas().to(at::kDouble);
  if (ctx.world() > 1) ctx.comm->all_reduce(areas, dist::ReduceOp::kSum);
  metric.set_areas(areas.to(at::kLong));
  eval::SegScores scores = metric.scores();
  scores.images = static_cast<int64_t>(ctx.sum_over_ranks(static_cast<double>(end - begin - skipped)));
  *bad = static_cast<int64_t>(ctx.sum_over_ranks(static_cast<double>(skipped)));
  return scores;
}

engine::LoopSettings loop_for(const SegmentSettings& s, int64_t steps_per_epoch, int64_t eff_batch) {
  engine::LoopSettings loop = engine::loop_settings(s.train, s.checkpoint, s.log, steps_per_epoch, eff_batch);
  // Iterations, not epochs: the schedule runs in epoch units of steps_per_epoch iterations.
  const double spe = static_cast<double>(steps_per_epoch);
  loop.schedule.kind = core::LrSchedule::Kind::kPoly;
  loop.schedule.power = s.poly_power;
  loop.schedule.warmup = static_cast<double>(s.warmup_iters) / spe;
  loop.schedule.total = static_cast<double>(s.iters) / spe;
  loop.total_steps = s.train.max_steps > 0 ? std::min(s.train.max_steps, s.iters) : s.iters;
  return loop;
}

std::map<std::string, std::string> weights_metadata(const config::Config& cfg) {
  return {{"format", "semaim-upernet"}, {"model", cfg.get_string("model.name")}, {"config", cfg.to_yaml()}};
}

void write_results(const engine::RunContext& ctx, const engine::TrainSummary& sum, const SegmentResult& r,
                   const std::vector<std::string>& classes) {
  nlohmann::json j = engine::summary_json(ctx.run.dir, sum);
  j.update({{"mIoU", r.scores.miou},
            {"mAcc", r.scores.macc},
            {"aAcc", r.scores.aacc},
            {"n_val", r.scores.images},
            {"best_mIoU", r.best_miou},
            {"best_checkpoint", r.best_checkpoint}});
  engine::write_summary(ctx, "segment", j);
  if (ctx.rank0())
    io::atomic_write((fs::path(ctx.run.dir) / "segment_classes.csv").string(),
                     eval::seg_scores_csv(r.scores, classes));
  if (!ctx.quiet) core::log_info("per-class scores of the last evaluation:\n" + eval::format_seg_table(r.scores, classes));
  core::log_info("segmentation done: " + std::to_string(r.steps) + " steps, mIoU " + std::to_string(r.scores.miou) +
                 " (best " + std::to_string(r.best_miou) + "), mAcc " + std::to_string(r.scores.macc) + ", aAcc " +
                 std::to_string(r.scores.aacc) + " on " + std::to_string(r.scores.images) + " validation images");
}

}  // namespace

SegmentResult segment_train(const config::Config& cfg, const SegmentTrainOptions& opts) {
  engine::RunContext ctx = engine::RunContext::open(cfg, opts.quiet);
  ctx.lock_run_dir();
  const SegmentSettings s = SegmentSettings::read(cfg);
  auto train_set = std::make_shared<data::SegDataset>(s.train_layout);
  const data::SegDataset val_set(s.val_layout);
  data::Loader loader = engine::make_train_loader(cfg, ctx, s.train.batch_size, train_augment(cfg, s), train_set);
  const int64_t eff_batch = s.train.batch_size * s.train.accum_steps * ctx.world();
  const int64_t steps_per_epoch = engine::steps_per_epoch(loader, s.train, eff_batch, cfg);
  engine::Checkpointer ckpt(engine::CheckpointManager((fs::path(ctx.run.dir) / "checkpoints").string(),
                                                      s.checkpoint.keep_last, engine::BestMetric{"mIoU", true}),
                            weights_metadata(cfg));
  const auto from = ckpt.resume_from(opts.resume, ctx.run.dir);
  const std::string init = cfg.get_string("segment.init");
  SegTrainables t(cfg, s, ctx, steps_per_epoch, from ? std::string() : init);
  if (from) ckpt.restore(t.w->state, *from);
  SegmentResult result;
  engine::Sinks sinks = engine::open_run_sinks(ctx, cfg, s.log, "segment", t.w->state.step);
  const engine::LoopSettings loop = loop_for(s, steps_per_epoch, eff_batch);
  engine::ConsoleSink console(s.log.progress, ctx.quiet, loop.total_steps);
  core::log_info("segmentation: UperNet on " + cfg.get_string("model.name") + " (" +
                 std::to_string(s.model.num_classes) + " classes) on " + ctx.device.str() + ": " +
                 std::to_string(train_set->size()) + " training images, " + std::to_string(loop.total_steps) +
                 " steps, batch " + std::to_string(eff_batch) + ", lr " + std::to_string(loop.schedule.base_lr) +
                 ", layer decay " + std::to_string(s.layer_decay) + ", init " + (init.empty() ? "random" : init) +
                 ", " + s.train.precision_reason + ", run dir " + ctx.run.dir);
  engine::Trainer trainer(ctx, t.w->state, ckpt, sinks, console, loop);
  engine::EvalHook hook;
  hook.every_steps = s.eval_every;
  hook.run = [&](int64_t) {
    int64_t bad = 0;
    result.scores = evaluate(t.model, ctx, s, val_set, &bad);
    return nlohmann::json{{"mIoU", result.scores.miou}, {"mAcc", result.scores.macc},
                          {"aAcc", result.scores.aacc}, {"n_val", result.scores.images}, {"bad_val", bad}};
  };
  trainer.add_eval(hook);
  const engine::TrainSummary sum =
      trainer.run(loader, [&](data::Loader& data, double lr) { return segment_step(s, ctx, t, data, lr); });
  result.best_miou = engine::finish_trained_run(result, ctx.run.dir, sum, ckpt.manager(), "mIoU", result.scores.miou);
  write_results(ctx, sum, result, val_set.classes());
  return result;
}

}  // namespace semaim::tasks
