// Detection and instance segmentation on the shared engine (detectron2's ViTDet training: LSJ, AdamW with layer
// decay, warmup + step decay per iteration), evaluated as COCOEvaluator does (box and mask AP by the C++
// evaluator), the best checkpoint kept by box AP.
#include <filesystem>
#include <set>

#include <nlohmann/json.hpp>

#include "semaim/core/errors.h"
#include "semaim/core/log.h"
#include "semaim/data/settings.h"
#include "semaim/dist/comm.h"
#include "semaim/engine/trainer.h"
#include "semaim/io/atomic_file.h"
#include "semaim/tasks/detect.h"
#include "semaim/tasks/detect_inference.h"
#include "semaim/tasks/detect_settings.h"
#include "semaim/tasks/init_weights.h"
#include "semaim/tasks/models.h"

namespace semaim::tasks {
namespace {

namespace fs = std::filesystem;

// The training transform: large-scale jitter to data.lsj_size (data.lsj_scale), flip, normalize.
data::AugmentConfig train_augment(const config::Config& cfg, const DetectSettings& s) {
  data::AugmentConfig a = data::augment_config(cfg, s.lsj.size, 3, /*random=*/true);
  a.transforms = {"large_scale_jitter", "hflip", "normalize"};
  a.lsj_scale = s.lsj.scale;
  a.hflip = 0.5;  // ViTDet's RandomFlip
  a.interpolation = "bilinear";
  return a;
}

struct DetTrainables {
  models::MaskRcnn model{nullptr};
  std::unique_ptr<engine::TrainWiring> w;

  DetTrainables(const config::Config& cfg, const DetectSettings& s, engine::RunContext& ctx, int64_t steps_per_epoch,
                const std::string& init) {
    at::manual_seed(ctx.run.seed);
    model = models::MaskRcnn(s.model);
    if (!init.empty()) {
      const models::LoadReport r = load_init_backbone(*model->net, s.model.backbone.vit, init);
      core::log_info("backbone weights from " + init + ":\n" + r.table());
    }
    model->to(ctx.device);
    model->train();
    const auto params = trainable(*model);
    w = std::make_unique<engine::TrainWiring>(*model, nullptr, make_detect_optimizer(s, params), params, s.train, cfg,
                                              ctx, steps_per_epoch);
  }
};

std::vector<models::det::ImageTargets> batch_targets(const data::Batch& b, const at::Device& device) {
  std::vector<models::det::ImageTargets> t(b.boxes.size());
  for (size_t i = 0; i < t.size(); ++i) {
    t[i].boxes = b.boxes[i].to(device);
    t[i].classes = b.box_classes[i].to(device);
    if (i < b.masks.size() && b.masks[i].defined()) t[i].masks = b.masks[i].to(device);
  }
  return t;
}

engine::StepResult detect_step(const DetectSettings& s, const engine::RunContext& ctx, DetTrainables& t,
                               data::Loader& data, double lr) {
  return engine::accumulate_step(*t.w, data, s.train.accum_steps, ctx.device.type(), s.train.bf16, lr,
                                 [&](const data::Batch& b) {
                                   const int64_t side = b.images.size(2);
                                   const std::vector<models::det::ImageSize> sizes(b.images.size(0), {side, side});
                                   const models::det::LossMap losses = t.model->forward_train(
                                       b.images.to(ctx.device, true), sizes, batch_targets(b, ctx.device));
                                   at::Tensor total;
                                   for (const auto& [name, l] : losses) total = total.defined() ? total + l : l;
                                   return total;
                                 });
}

engine::LoopSettings loop_for(const DetectSettings& s, int64_t steps_per_epoch, int64_t eff_batch) {
  engine::LoopSettings loop = engine::loop_settings(s.train, s.checkpoint, s.log, steps_per_epoch, eff_batch);
  // Iterations, not epochs: the schedule runs in epoch units of steps_per_epoch iterations.
  const double spe = static_cast<double>(steps_per_epoch);
  loop.schedule.kind = core::LrSchedule::Kind::kStep;
  loop.schedule.gamma = 0.1;
  loop.schedule.milestones.clear();
  for (int64_t m : s.milestones) loop.schedule.milestones.push_back(static_cast<double>(m) / spe);
  loop.schedule.warmup = static_cast<double>(s.warmup_iters) / spe;
  loop.schedule.total = static_cast<double>(s.iters) / spe;
  loop.total_steps = s.train.max_steps > 0 ? std::min(s.train.max_steps, s.iters) : s.iters;
  return loop;
}

nlohmann::json categories_json(const data::CocoDataset& set) {
  nlohmann::json c = nlohmann::json::array();
  for (size_t k = 0; k < set.category_ids().size(); ++k)
    c.push_back({{"id", set.category_ids()[k]}, {"name", set.classes()[k]}});
  return c;
}

std::map<std::string, std::string> weights_metadata(const config::Config& cfg, const data::CocoDataset& train) {
  return {{"format", "semaim-maskrcnn"},
          {"model", cfg.get_string("model.name")},
          {"categories", categories_json(train).dump()},
          {"config", cfg.to_yaml()}};
}

}  // namespace

namespace {

// The ground truth of the evaluated images only (pycocotools' params.imgIds), so a limited evaluation does not
// count the objects of images it never saw.
eval::CocoGroundTruth restrict_to(const eval::CocoGroundTruth& gt, const std::vector<int64_t>& image_ids) {
  const std::set<int64_t> ids(image_ids.begin(), image_ids.end());
  eval::CocoGroundTruth r;
  r.categories = gt.categories;
  for (const auto& im : gt.images)
    if (ids.count(im.id)) r.images.push_back(im);
  for (const auto& a : gt.annotations)
    if (ids.count(a.image_id)) r.annotations.push_back(a);
  return r;
}

struct EvalOutcome {
  eval::CocoEvalResult box, mask;
  int64_t images = 0, bad = 0;
};

// This rank's contiguous part of the validation split through the model; rank 0 gathers every rank's results
// (files in <run dir>/eval), writes <run dir>/coco_instances_results.json and scores them; every rank gets the
// stats.
EvalOutcome evaluate(models::MaskRcnn& model, const engine::RunContext& ctx, const DetectSettings& s,
                     const data::CocoDataset& val, const eval::CocoGroundTruth& gt) {
  const int64_t n = s.eval_limit > 0 ? std::min(s.eval_limit, val.size()) : val.size();
  const int64_t begin = ctx.rank() * n / ctx.world(), end = (ctx.rank() + 1) * n / ctx.world();
  int64_t bad = 0;
  const auto dets = detect_images(model, val, begin, end, s, ctx.device, s.train.bf16, &bad);
  std::vector<eval::CocoDetection> mine;
  for (const auto& d : dets) {
    auto c = coco_detections(d, val.image(d.index).id, val.category_ids());
    mine.insert(mine.end(), c.begin(), c.end());
  }
  const fs::path dir = fs::path(ctx.run.dir) / "eval";
  std::vector<eval::CocoDetection> all;
  if (ctx.world() > 1) {
    std::error_code ec;
    fs::create_directories(dir, ec);
    eval::write_coco_results((dir / ("rank-" + std::to_string(ctx.rank()) + ".json")).string(), mine);
    ctx.barrier();
    if (ctx.rank0())
      for (int64_t r = 0; r < ctx.world(); ++r) {
        auto part = eval::load_coco_results((dir / ("rank-" + std::to_string(r) + ".json")).string(), gt,
                                            s.model.roi.mask_on ? eval::CocoIouType::kSegm : eval::CocoIouType::kBbox);
        all.insert(all.end(), part.begin(), part.end());
      }
  } else {
    all = std::move(mine);
  }
  EvalOutcome o;
  if (ctx.rank0()) {
    std::vector<int64_t> ids;
    for (int64_t i = 0; i < n; ++i) ids.push_back(val.image(i).id);
    const eval::CocoGroundTruth seen = restrict_to(gt, ids);
    eval::write_coco_results((fs::path(ctx.run.dir) / "coco_instances_results.json").string(), all);
    o.box = eval::coco_evaluate(seen, all, eval::CocoIouType::kBbox);
    if (s.model.roi.mask_on) o.mask = eval::coco_evaluate(seen, all, eval::CocoIouType::kSegm);
  }
  // Rank 0's stats to every rank (the others add zeros).
  for (auto* r : {&o.box, &o.mask})
    for (double& v : r->stats) v = ctx.sum_over_ranks(ctx.rank0() ? v : 0.0);
  o.bad = static_cast<int64_t>(ctx.sum_over_ranks(static_cast<double>(bad)));
  o.images = n - o.bad;
  return o;
}

nlohmann::json stats_json(const EvalOutcome& o, bool masks) {
  static const char* kNames[] = {"AP", "AP50", "AP75", "APs", "APm", "APl",
                                 "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"};
  nlohmann::json j = {{"n_val", o.images}, {"bad_val", o.bad}};
  for (int k = 0; k < 12; ++k) {
    j[std::string("bbox_") + kNames[k]] = o.box.stats[static_cast<size_t>(k)];
    if (masks) j[std::string("segm_") + kNames[k]] = o.mask.stats[static_cast<size_t>(k)];
  }
  return j;
}

// Per-category AP of the last evaluation (bbox and segm), one row per category.
std::string classes_csv(const EvalOutcome& o, const std::vector<std::string>& names, bool masks) {
  std::string out = masks ? "category_id,name,bbox_AP,segm_AP\n" : "category_id,name,bbox_AP\n";
  for (size_t k = 0; k < o.box.categories.size(); ++k) {
    out += std::to_string(o.box.categories[k].id) + "," + (k < names.size() ? names[k] : o.box.categories[k].name) +
           "," + std::to_string(o.box.category_ap[k]);
    if (masks && k < o.mask.category_ap.size()) out += "," + std::to_string(o.mask.category_ap[k]);
    out += "\n";
  }
  return out;
}

void write_results(const engine::RunContext& ctx, const engine::TrainSummary& sum, const DetectResult& r,
                   const EvalOutcome& last, const data::CocoDataset& val, bool masks) {
  nlohmann::json j = engine::summary_json(ctx.run.dir, sum);
  j.update(stats_json(last, masks));
  j.update({{"best_bbox_AP", r.best_box_ap}, {"best_checkpoint", r.best_checkpoint}});
  engine::write_summary(ctx, "detect", j);
  if (ctx.rank0()) {
    io::atomic_write((fs::path(ctx.run.dir) / "detect_classes.csv").string(), classes_csv(last, val.classes(), masks));
    if (!ctx.quiet) {
      core::log_info("bbox:\n" + eval::coco_summary_text(last.box));
      if (masks) core::log_info("segm:\n" + eval::coco_summary_text(last.mask));
    }
  }
  core::log_info("detection done: " + std::to_string(r.steps) + " steps, box AP " + std::to_string(last.box.stats[0]) +
                 (masks ? ", mask AP " + std::to_string(last.mask.stats[0]) : std::string()) + " (best box AP " +
                 std::to_string(r.best_box_ap) + ") on " + std::to_string(last.images) + " validation images");
}

}  // namespace

DetectResult detect_train(const config::Config& cfg, const DetectTrainOptions& opts) {
  engine::RunContext ctx = engine::RunContext::open(cfg, opts.quiet);
  ctx.lock_run_dir();
  const data::CocoLayout train_layout = DetectSettings::read_layout(cfg, "train");
  auto train_set = std::make_shared<data::CocoDataset>(train_layout.annotations, train_layout.image_dir);
  const DetectSettings s = DetectSettings::read(cfg, static_cast<int64_t>(train_set->classes().size()));
  data::CocoOptions val_options;
  val_options.skip_empty = false;  // COCOEvaluator scores every image
  const data::CocoDataset val_set(s.val_layout.annotations, s.val_layout.image_dir, val_options);
  const eval::CocoGroundTruth gt = eval::load_coco_ground_truth(
      s.val_layout.annotations, s.model.roi.mask_on ? eval::CocoIouType::kSegm : eval::CocoIouType::kBbox);
  data::Loader loader = engine::make_train_loader(cfg, ctx, s.train.batch_size, train_augment(cfg, s), train_set);
  const int64_t eff_batch = s.train.batch_size * s.train.accum_steps * ctx.world();
  const int64_t steps_per_epoch = engine::steps_per_epoch(loader, s.train, eff_batch, cfg);
  engine::Checkpointer ckpt(engine::CheckpointManager((fs::path(ctx.run.dir) / "checkpoints").string(),
                                                      s.checkpoint.keep_last, engine::BestMetric{"bbox_AP", true}),
                            weights_metadata(cfg, *train_set));
  const auto from = ckpt.resume_from(opts.resume, ctx.run.dir);
  const std::string init = cfg.get_string("detect.init");
  DetTrainables t(cfg, s, ctx, steps_per_epoch, from ? std::string() : init);
  if (from) ckpt.restore(t.w->state, *from);
  DetectResult result;
  EvalOutcome last;
  engine::Sinks sinks = engine::open_run_sinks(ctx, cfg, s.log, "detect", t.w->state.step);
  const engine::LoopSettings loop = loop_for(s, steps_per_epoch, eff_batch);
  engine::ConsoleSink console(s.log.progress, ctx.quiet, loop.total_steps);
  core::log_info("detection: Mask R-CNN on " + cfg.get_string("model.name") + " (" +
                 std::to_string(s.model.roi.num_classes) + " classes) on " + ctx.device.str() + ": " +
                 std::to_string(train_set->size()) + " training images, " + std::to_string(loop.total_steps) +
                 " steps, batch " + std::to_string(eff_batch) + ", lr " + std::to_string(loop.schedule.base_lr) +
                 ", layer decay " + std::to_string(s.layer_decay) + ", init " + (init.empty() ? "random" : init) +
                 ", " + s.train.precision_reason + ", run dir " + ctx.run.dir);
  engine::Trainer trainer(ctx, t.w->state, ckpt, sinks, console, loop);
  engine::EvalHook hook;
  hook.every_steps = s.eval_every;
  hook.run = [&](int64_t) {
    last = evaluate(t.model, ctx, s, val_set, gt);
    return stats_json(last, s.model.roi.mask_on);
  };
  trainer.add_eval(hook);
  const engine::TrainSummary sum =
      trainer.run(loader, [&](data::Loader& data, double lr) { return detect_step(s, ctx, t, data, lr); });
  result.box = last.box;
  result.mask = last.mask;
  result.best_box_ap =
      engine::finish_trained_run(result, ctx.run.dir, sum, ckpt.manager(), "bbox_AP", last.box.stats[0]);
  write_results(ctx, sum, result, last, val_set, s.model.roi.mask_on);
  return result;
}

}  // namespace semaim::tasks
