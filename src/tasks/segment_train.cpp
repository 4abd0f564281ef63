// Semantic segmentation on the shared engine (mmseg's EncoderDecoder training with MAE / BEiT's ViT UperNet
// recipe): iteration-based AdamW with layer decay on the encoder, warmup + poly, evaluation by sliding windows
// at the test scale, the best checkpoint kept by mIoU.
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>

#include <nlohmann/json.hpp>

#include "semaim/core/errors.h"
#include "semaim/core/log.h"
#include "semaim/data/seg_dataset.h"
#include "semaim/data/settings.h"
#include "semaim/dist/comm.h"
#include "semaim/engine/autocast.h"
#include "semaim/engine/trainer.h"
#include "semaim/eval/seg_inference.h"
#include "semaim/io/atomic_file.h"
#include "semaim/models/heads/upernet.h"
#include "semaim/tasks/init_weights.h"
#include "semaim/tasks/models.h"
#include "semaim/tasks/segment.h"

namespace semaim::tasks {
namespace {

namespace fs = std::filesystem;

struct SegmentSettings {
  engine::TrainSettings train;
  engine::CheckpointSettings checkpoint;
  engine::LogSettings log;
  models::UperNetConfig model;
  double layer_decay = 0.65, poly_power = 1.0;
  int64_t iters = 0, warmup_iters = 0, eval_every = 0, eval_limit = 0;
  eval::SegEvalOptions eval;
  data::SegLayout train_layout, val_layout;

  static SegmentSettings read(const config::Config& cfg) {
    SegmentSettings s;
    s.train = engine::TrainSettings::read(cfg, "segment");
    s.checkpoint = engine::CheckpointSettings::read(cfg);
    s.log = engine::LogSettings::read(cfg);
    s.train_layout = layout(cfg, "train");
    s.val_layout = layout(cfg, "val");
    const int64_t crop = cfg.get_int("segment.crop_size");
    s.model.vit = vit_config(cfg);
    s.model.vit.img_size = crop;
    s.model.vit.img_h = s.model.vit.img_w = 0;
    s.model.vit.learnable_pos_embed = true;
    s.model.vit.drop_path_rate = cfg.get_float("segment.drop_path");
    s.model.out_indices = cfg.get_ints("segment.out_indices");
    s.model.channels = cfg.get_int("segment.channels");
    s.model.pool_scales = cfg.get_ints("segment.pool_scales");
    s.model.num_classes = s.train_layout.num_classes;
    s.model.aux_head = cfg.get_bool("segment.aux_head");
    s.model.aux_channels = cfg.get_int("segment.aux_channels");
    s.model.aux_weight = cfg.get_float("segment.aux_weight");
    s.model.ignore_index = cfg.get_int("segment.ignore_index");
    s.model.validate(cfg.path().empty() ? "segment" : cfg.path());
    s.layer_decay = cfg.get_float("segment.layer_decay");
    s.poly_power = cfg.get_float("segment.poly_power");
    s.iters = cfg.get_int("segment.iters");
    s.warmup_iters = cfg.get_int("segment.warmup_iters");
    s.eval_every = cfg.get_int("segment.eval_every_steps");
    s.eval_limit = cfg.get_int("segment.eval_limit");
    s.eval.infer.mode = cfg.get_string("segment.mode");
    s.eval.infer.crop = cfg.get_int("segment.slide_crop");
    s.eval.infer.stride = cfg.get_int("segment.slide_stride");
    s.eval.infer.patch = s.model.vit.patch_size;
    const auto scale = cfg.get_floats("segment.scale");
    if (scale.size() != 2) throw InputError("segment.scale", "needs two edges [long, short]");
    s.eval.test_scale = {scale[0], scale[1]};
    s.eval.mean = cfg.get_floats("data.mean");
    s.eval.std = cfg.get_floats("data.std");
    s.eval.fail_on_bad_image = cfg.get_string("data.on_bad_image") == "fail";
    return s;
  }

  // A home-relative path, as a shell would expand it.
  static std::string expand_home(std::string p) {
    const char* home = std::getenv("HOME");
    if ((p == "~" || p.rfind("~/", 0) == 0) && home && *home) p = std::string(home) + p.substr(1);
    return p;
  }

  static data::SegLayout layout(const config::Config& cfg, const std::string& split) {
    data::SegLayout l;
    if (cfg.get_string("segment.layout") == "ade20k") {
      l = data::ade20k_layout(expand_home(cfg.get_string("segment.data_root")),
                              split == "train" ? "training" : "validation");
    } else {
      l.img_dir = expand_home(cfg.get_string("segment." + split + "_img_dir"));
      l.ann_dir = expand_home(cfg.get_string("segment." + split + "_ann_dir"));
      l.img_suffix = cfg.get_string("segment.img_suffix");
      l.seg_suffix = cfg.get_string("segment.seg_suffix");
      l.reduce_zero_label = cfg.get_bool("segment.reduce_zero_label");
      l.num_classes = cfg.get_int("segment.num_classes");
      l.classes = read_lines(cfg.get_string("segment.classes_file"));
    }
    l.ignore_index = cfg.get_int("segment.ignore_index");
    l.skip_unpaired = cfg.get_bool("segment.skip_unpaired");
    return l;
  }

  static std::vector<std::string> read_lines(const std::string& path) {
    std::vector<std::string> out;
    if (path.empty()) return out;
    std::ifstream in(path);
    if (!in) throw InputError(path, "cannot open the class-name file (segment.classes_file)");
    for (std::string line; std::getline(in, line);)
      if (!line.empty()) out.push_back(line);
    return out;
  }
};

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

// AdamW over the encoder's layer-decay groups (MAE / BEiT: cls, position table and patch embedding 0, block i
// i+1) with every head parameter at scale 1; no decay on 1-D parameters, biases, cls_token and pos_embed.
std::unique_ptr<engine::Optimizer> make_optimizer(const SegmentSettings& s, const engine::NamedParams& params) {
  engine::GroupRule rule;
  rule.weight_decay = s.train.weight_decay;
  rule.no_decay_names = {"backbone.cls_token", "backbone.pos_embed"};
  const int64_t depth = s.model.vit.depth;
  const std::string prefix = "backbone.";
  rule.layer_id = [depth, prefix](const std::string& n) {
    return n.rfind(prefix, 0) == 0 ? engine::vit_layer_id(n.substr(prefix.size()), depth) : depth + 1;
  };
  rule.num_layers = depth + 2;
  rule.layer_decay = s.layer_decay;
  return std::make_unique<engine::AdamW>(engine::make_param_groups(params, rule),
                                         engine::AdamWOptions{s.train.beta1, s.train.beta2, s.train.eps});
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
    const auto params = trainable(*model);
    w = std::make_unique<engine::TrainWiring>(*model, nullptr, make_optimizer(s, params), params, s.train, cfg,
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
  const int64_t skipped = eval::evaluate_segmentation(
      [&](const at::Tensor& imgs) {
        engine::AutocastGuard ac(ctx.device.type(), s.train.bf16);
        return model->forward(imgs.to(ctx.device)).logits.to(at::kFloat).cpu();
      },
      val, begin, end, s.eval, metric);
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
                 ", run dir " + ctx.run.dir);
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
  result.run_dir = ctx.run.dir;
  result.last_checkpoint = sum.last_checkpoint;
  result.steps = sum.steps, result.skipped_steps = sum.skipped_steps;
  result.first_loss = sum.first_loss, result.last_loss = sum.last_loss;
  result.images_per_sec = sum.images_per_sec, result.seconds = sum.seconds;
  result.best_miou = result.scores.miou;
  if (auto best = ckpt.manager().best()) {
    result.best_checkpoint = best->manifest;
    result.best_miou = engine::read_manifest(best->manifest)["metrics"]["mIoU"].get<double>();
  }
  write_results(ctx, sum, result, val_set.classes());
  return result;
}

}  // namespace semaim::tasks
