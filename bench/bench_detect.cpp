// Detection benchmarks. --mode step: images/s of one Mask R-CNN training step as `semaim detect train` runs
// it (src/tasks/detect_train.cpp detect_step: forward_train, the sum of the losses, backward, AdamW over the
// detect optimizer's layer-decay groups) in fp32 and bf16 autocast on fixed synthetic batches, and of
// inference (MaskRcnn::inference). --mode eval: seconds semaim's COCO evaluator (eval/coco_eval.h) takes to
// load, evaluate, accumulate and summarize a COCO-val-sized ground truth and results file, against
// pycocotools (tools/bench_coco_eval.py) on the same files, with the largest difference between their 12
// numbers.
//
// usage: bench_detect [--mode step] [CONFIG.yaml] [--set key=value ...] [--batch B] [--objects G]
//                     [--classes K] [--steps N] [--repeats R] [--warmup W] [--threads T]
//                     [--precision fp32,bf16]
//        bench_detect --mode eval [--images N] [--categories K] [--detections D] [--repeats R] [--dir DIR]
//                     [--python PY]
// CONFIG: a detect config (default configs/detect/mask-rcnn-fmnist-p4_1xb4-lsj-96_fmnist_det.yaml); the batch
// is B random images at data.lsj_size with G random boxes and elliptic masks each, K classes (default: the
// categories of the config's training annotations when they exist, else COCO's 80). Inference keeps the
// config's test settings; an untrained model's class scores sit near 1 / (K + 1), so how many candidates pass
// detect.score_thresh into NMS depends on K (the table gives the detections per image and where the time
// goes). Eval writes the two JSON files into DIR (default: a temporary directory, removed afterwards) once,
// then runs semaim and pycocotools alternately R times. Prints Markdown tables of medians (min, max) and one
// JSON line.
#include <ATen/Parallel.h>
#include <stdlib.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bench_common.h"
#include "bench_step.h"
#include "semaim/config/config.h"
#include "semaim/core/errors.h"
#include "semaim/core/timing.h"
#include "semaim/engine/autocast.h"
#include "semaim/eval/coco_eval.h"
#include "semaim/tasks/detect_settings.h"
#include "semaim/tasks/models.h"
#include "semaim/tasks/schema.h"
#include "semaim_paths.h"

using namespace semaim;
namespace fs = std::filesystem;
namespace det = models::det;

namespace {

struct Options {
  std::string mode = "step";
  std::string config_path =
      std::string(SEMAIM_SOURCE_DIR) + "/configs/detect/mask-rcnn-fmnist-p4_1xb4-lsj-96_fmnist_det.yaml";
  std::vector<std::string> sets;
  std::vector<std::string> precisions{"fp32", "bf16"};
  int64_t batch = 0, objects = 4, classes = 0, steps = 2, repeats = 3, warmup = 1, threads = 2;
  int64_t images = 500, categories = 80, detections = 100;
  std::string dir, python = bench::default_python();
};

Options parse(int argc, char** argv) {
  Options o;
  bench::parse_options(
      argc, argv,
      {{"--mode", &o.mode},
       {"--set", &o.sets},
       {"--batch", &o.batch},
       {"--objects", &o.objects},
       {"--classes", &o.classes},
       {"--steps", &o.steps},
       {"--repeats", &o.repeats},
       {"--warmup", &o.warmup},
       {"--threads", &o.threads},
       {"--images", &o.images},
       {"--categories", &o.categories},
       {"--detections", &o.detections},
       {"--dir", &o.dir},
       {"--python", &o.python},
       {"--precision", bench::precision_list(&o.precisions)}},
      &o.config_path,
      "usage: bench_detect [--mode step] [CONFIG.yaml] [--set key=value ...] [--batch B] [--objects G] "
      "[--classes K] [--steps N] [--repeats R] [--warmup W] [--threads T] [--precision fp32,bf16]\n"
      "       bench_detect --mode eval [--images N] [--categories K] [--detections D] [--repeats R] [--dir "
      "DIR] "
      "[--python PY]");
  if (o.mode != "step" && o.mode != "eval") throw InputError("--mode", "step or eval, got '" + o.mode + "'");
  if (o.steps < 1 || o.repeats < 1 || o.threads < 1 || o.objects < 1 || o.images < 1 || o.categories < 1 ||
      o.detections < 1 || o.warmup < 0 || o.batch < 0 || o.classes < 0 || o.precisions.empty())
    throw InputError("arguments",
                     "steps, repeats, threads, objects, images, categories and detections must be "
                     "positive; warmup, batch and classes not negative");
  return o;
}

// Median (min-max) as "m (lo-hi)" with `fmt` for each number.
std::string spread(const std::vector<double>& v, const char* fmt) {
  const auto [mn, mx] = std::minmax_element(v.begin(), v.end());
  char a[32], b[32], c[32], out[112];
  std::snprintf(a, sizeof(a), fmt, core::median(v));
  std::snprintf(b, sizeof(b), fmt, *mn);
  std::snprintf(c, sizeof(c), fmt, *mx);
  std::snprintf(out, sizeof(out), "%s (%s-%s)", a, b, c);
  return out;
}

// ----------------------------------------------------------------------------------------------------------
// --mode step

// A fixed synthetic batch: normalized noise images and per image `objects` boxes of 1/16 to 1/2 of the side
// with the ellipse inscribed in each as its mask. images: (N, 3, S, S); masks (G, S, S) uint8
struct SyntheticBatch {
  at::Tensor images;
  std::vector<det::ImageSize> sizes;
  std::vector<det::ImageTargets> targets;
};

SyntheticBatch synthetic_batch(int64_t batch, int64_t side, int64_t objects, int64_t classes) {
  at::manual_seed(1);
  SyntheticBatch b;
  b.images = at::randn({batch, 3, side, side});
  b.sizes.assign(static_cast<size_t>(batch), {side, side});
  const auto s = static_cast<double>(side);
  const at::Tensor ys = at::arange(side, at::kFloat).add_(0.5).view({1, side, 1});
  const at::Tensor xs = at::arange(side, at::kFloat).add_(0.5).view({1, 1, side});
  for (int64_t i = 0; i < batch; ++i) {
    const at::Tensor wh = at::rand({objects, 2}) * (s / 2 - s / 16) + s / 16;
    const at::Tensor xy0 = at::rand({objects, 2}) * (s - wh);
    const at::Tensor boxes = at::cat({xy0, xy0 + wh}, 1);  // (G, 4) xyxy
    const at::Tensor c = (xy0 + wh / 2).view({objects, 2, 1, 1}), r = (wh / 2).view({objects, 2, 1, 1});
    const at::Tensor dx = (xs - c.select(1, 0)) / r.select(1, 0), dy = (ys - c.select(1, 1)) / r.select(1, 1);
    det::ImageTargets t;
    t.boxes = boxes;
    t.classes = at::randint(classes, {objects}, at::kLong);
    t.masks = (dx * dx + dy * dy <= 1).to(at::kByte);
    b.targets.push_back(t);
  }
  return b;
}

// One precision's Mask R-CNN and optimizer; step() is the task's optimizer step on the batch.
class DetectStep {
 public:
  DetectStep(const tasks::DetectSettings& s, const SyntheticBatch& batch, bool bf16)
      : batch_(batch), bf16_(bf16) {
    at::manual_seed(0);
    model_ = models::MaskRcnn(s.model);
    model_->train();
    const auto params = tasks::trainable(*model_);
    step_ = std::make_unique<bench::OptimizerStep>(params, tasks::make_detect_optimizer(s, params), bf16);
  }
  void step() {
    step_->run([&] {
      at::Tensor total;
      for (const auto& [name, l] : model_->forward_train(batch_.images, batch_.sizes, batch_.targets))
        total = total.defined() ? total + l : l;
      return total;
    });
  }
  // Inference on the batch's images (eval mode, under the precision's autocast).
  void infer() {
    model_->eval();
    at::NoGradGuard no_grad;
    engine::AutocastGuard ac(at::kCPU, bf16_);
    model_->inference(batch_.images, batch_.sizes);
    model_->train();
  }
  // MaskRcnn::inference's three parts on the batch, timed: backbone + pyramid, RPN, RoI heads.
  struct Parts {
    std::array<double, 3> seconds{};
    int64_t detections = 0;
  };
  Parts infer_parts() {
    model_->eval();
    at::NoGradGuard no_grad;
    engine::AutocastGuard ac(at::kCPU, bf16_);
    Parts p;
    std::array<double, 3>& t = p.seconds;
    auto t0 = core::Clock::now();
    std::vector<at::Tensor> levels = model_->features(batch_.images);
    t[0] = core::seconds_since(t0);
    t0 = core::Clock::now();
    const models::RpnOutput rpn = model_->proposal_generator->forward(levels, batch_.sizes, nullptr);
    t[1] = core::seconds_since(t0);
    levels.pop_back();  // the RoI heads pool p2..p5
    t0 = core::Clock::now();
    const models::RoiHeadsOutput roi =
        model_->roi_heads->forward(levels, rpn.proposals, batch_.sizes, nullptr);
    t[2] = core::seconds_since(t0);
    for (const auto& d : roi.detections) p.detections += d.boxes.size(0);
    model_->train();
    return p;
  }

 private:
  const SyntheticBatch& batch_;
  bool bf16_;
  models::MaskRcnn model_{nullptr};
  std::unique_ptr<bench::OptimizerStep> step_;
};

// R repeats of every variant, round-robin (repeat k of each before repeat k+1); fn(i) returns the images
// done.
std::vector<std::vector<double>> round_robin(size_t variants, int64_t repeats,
                                             const std::function<int64_t(size_t)>& fn) {
  std::vector<std::vector<double>> rates(variants);
  for (int64_t k = 0; k < repeats; ++k)
    for (size_t i = 0; i < variants; ++i) {
      const auto t0 = core::Clock::now();
      const int64_t images = fn(i);
      rates[i].push_back(static_cast<double>(images) / core::seconds_since(t0));
    }
  return rates;
}

// The categories of the config's training annotations, or COCO's 80 when the file is absent.
int64_t default_classes(const config::Config& cfg) {
  std::ifstream in(tasks::DetectSettings::read_layout(cfg, "train").annotations);
  if (!in) return 80;
  const nlohmann::json j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  return j.is_object() && j.contains("categories") && j["categories"].is_array() && !j["categories"].empty()
             ? static_cast<int64_t>(j["categories"].size())
             : 80;
}

int run_step(const Options& o) {
  auto cfg = config::Config::load(tasks::schema(), o.config_path);
  cfg.apply_overrides(o.sets);
  const int64_t classes = o.classes > 0 ? o.classes : default_classes(cfg);
  const tasks::DetectSettings s = tasks::DetectSettings::read(cfg, classes);
  const int64_t batch = o.batch > 0 ? o.batch : s.train.batch_size, side = s.model.backbone.input_size;
  at::set_num_threads(static_cast<int>(o.threads));
  const auto& v = s.model.backbone.vit;
  std::printf(
      "semaim Mask R-CNN on %s (D %lld, depth %lld, patch %lld, window %lld), pyramid %lld channels, "
      "%lld classes, %lldx%lld inputs, batch %lld with %lld objects per image, %d threads; %lld steps x "
      "%lld repeats after %lld warm-up\n\n",
      cfg.get_string("model.name").c_str(), (long long)v.embed_dim, (long long)v.depth,
      (long long)v.patch_size, (long long)s.model.backbone.window_size, (long long)s.model.fpn_channels,
      (long long)classes, (long long)side, (long long)side, (long long)batch, (long long)o.objects,
      at::get_num_threads(), (long long)o.steps, (long long)o.repeats, (long long)o.warmup);
  nlohmann::json out{{"bench", "detect-step"},
                     {"config", o.config_path},
                     {"batch", batch},
                     {"side", side},
                     {"threads", at::get_num_threads()}};
  const SyntheticBatch data = synthetic_batch(batch, side, o.objects, classes);
  std::vector<std::unique_ptr<DetectStep>> runners;
  for (const auto& p : o.precisions) {
    runners.push_back(std::make_unique<DetectStep>(s, data, p == "bf16"));
    for (int64_t i = 0; i < o.warmup; ++i) runners.back()->step();
  }
  const auto train = round_robin(runners.size(), o.repeats, [&](size_t i) {
    for (int64_t k = 0; k < o.steps; ++k) runners[i]->step();
    return o.steps * batch;
  });
  std::vector<DetectStep::Parts> parts;  // the inference warm-up, part by part
  for (const auto& r : runners) parts.push_back(r->infer_parts());
  const auto infer = round_robin(runners.size(), o.repeats, [&](size_t i) {
    for (int64_t k = 0; k < o.steps; ++k) runners[i]->infer();
    return o.steps * batch;
  });
  std::printf(
      "| precision | training step images/s | inference images/s | detections per image | first inference "
      "s per batch: backbone + pyramid / RPN / RoI heads |\n|---|---|---|---|---|\n");
  for (size_t i = 0; i < runners.size(); ++i) {
    const auto& t = parts[i].seconds;
    std::printf("| %s | %s | %s | %.1f | %.3g / %.3g / %.3g |\n", o.precisions[i].c_str(),
                spread(train[i], "%.3g").c_str(), spread(infer[i], "%.3g").c_str(),
                static_cast<double>(parts[i].detections) / static_cast<double>(batch), t[0], t[1], t[2]);
    out["train"][o.precisions[i]] = train[i];
    out["inference"][o.precisions[i]] = infer[i];
  }
  if (runners.size() == 2)
    std::printf("\n%s / %s: training step %.2fx, inference %.2fx\n", o.precisions[1].c_str(),
                o.precisions[0].c_str(), core::median(train[1]) / core::median(train[0]),
                core::median(infer[1]) / core::median(infer[0]));
  std::printf("\n%s\n", out.dump().c_str());
  return 0;
}

// ----------------------------------------------------------------------------------------------------------
// --mode eval

// One scoring of the files by semaim: seconds for loading the ground truth, the results, and the evaluation
// (evaluate + accumulate + summarize), and the 12 stats.
struct CppRun {
  double load_gt = 0, load_results = 0, evaluate = 0;
  std::array<double, 12> stats{};
  double total() const { return load_gt + load_results + evaluate; }
};

CppRun cpp_score(const std::string& gt_path, const std::string& results_path, eval::CocoIouType type) {
  CppRun r;
  auto t = core::Clock::now();
  const eval::CocoGroundTruth gt = eval::load_coco_ground_truth(gt_path, type);
  r.load_gt = core::seconds_since(t);
  t = core::Clock::now();
  const std::vector<eval::CocoDetection> dets = eval::load_coco_results(results_path, gt, type);
  r.load_results = core::seconds_since(t);
  t = core::Clock::now();
  const eval::CocoEvalResult res = eval::coco_evaluate(gt, dets, type);
  const std::string text = eval::coco_summary_text(res);  // summarize() prints; this formats the same lines
  r.evaluate = core::seconds_since(t);
  if (text.empty()) throw RuntimeFailure("empty COCO summary");
  r.stats = res.stats;
  return r;
}

// The directory the files go to: DIR (kept) or a new temporary one (removed by the caller).
std::string eval_dir(const Options& o) {
  if (!o.dir.empty()) {
    fs::create_directories(o.dir);
    return o.dir;
  }
  std::string tmpl = (fs::temp_directory_path() / "semaim-bench-coco-XXXXXX").string();
  if (!::mkdtemp(tmpl.data())) throw RuntimeFailure("cannot create a temporary directory " + tmpl);
  return tmpl;
}

struct EvalTimes {
  std::vector<CppRun> cpp;
  std::vector<double> py;
  std::array<double, 12> py_stats{};
};

void print_eval(const std::array<std::string, 2>& types, const std::array<EvalTimes, 2>& t,
                nlohmann::json& out) {
  std::printf(
      "| iou type | semaim s | pycocotools s | pycocotools / semaim (medians) | per-round ratios | "
      "semaim load GT / results / evaluate s | largest stat difference |\n|---|---|---|---|---|---|---|\n");
  for (size_t k = 0; k < types.size(); ++k) {
    std::vector<double> cpp, ratio, lg, lr, ev;
    for (size_t r = 0; r < t[k].cpp.size(); ++r) {
      cpp.push_back(t[k].cpp[r].total());
      lg.push_back(t[k].cpp[r].load_gt);
      lr.push_back(t[k].cpp[r].load_results);
      ev.push_back(t[k].cpp[r].evaluate);
      ratio.push_back(t[k].py[r] / cpp.back());
    }
    double diff = 0;
    for (size_t i = 0; i < 12; ++i)
      diff = std::max(diff, std::abs(t[k].cpp.back().stats[i] - t[k].py_stats[i]));
    const auto [rmin, rmax] = std::minmax_element(ratio.begin(), ratio.end());
    std::printf("| %s | %s | %s | **%.1fx** | %.1f-%.1f | %.3f / %.3f / %.3f | %.2e |\n", types[k].c_str(),
                spread(cpp, "%.3f").c_str(), spread(t[k].py, "%.3f").c_str(),
                core::median(t[k].py) / core::median(cpp), *rmin, *rmax, core::median(lg), core::median(lr),
                core::median(ev), diff);
    out[types[k]] = {{"semaim_s", cpp},
                     {"pycocotools_s", t[k].py},
                     {"max_stat_diff", diff},
                     {"semaim_stats", t[k].cpp.back().stats},
                     {"pycocotools_stats", t[k].py_stats}};
  }
}

int run_eval(const Options& o) {
  const std::string dir = eval_dir(o);
  const std::string script = "'" + o.python + "' '" + SEMAIM_SOURCE_DIR + "/tools/bench_coco_eval.py' ";
  const std::string gt = dir + "/gt.json", res = dir + "/results.json";
  const nlohmann::json made = bench::run_python_json(
      script + "make '" + dir + "' --images " + std::to_string(o.images) + " --categories " +
          std::to_string(o.categories) + " --detections " + std::to_string(o.detections),
      "bench_coco_eval.py make");
  std::printf(
      "COCO evaluation of %lld results on %lld images (%lld categories, %lld annotations of which %lld "
      "crowd; GT %.1f MB, results %.1f MB): load + evaluate + accumulate + summarize, semaim and "
      "pycocotools alternately, %lld rounds\n\n",
      (long long)made.at("detections").get<int64_t>(), (long long)made.at("images").get<int64_t>(),
      (long long)made.at("categories").get<int64_t>(), (long long)made.at("annotations").get<int64_t>(),
      (long long)made.at("crowd").get<int64_t>(), fs::file_size(gt) / 1e6, fs::file_size(res) / 1e6,
      (long long)o.repeats);
  const std::array<std::string, 2> types{"bbox", "segm"};
  std::array<EvalTimes, 2> t;
  nlohmann::json out{{"bench", "detect-eval"}, {"data", made}};
  for (int64_t round = 0; round < o.repeats; ++round) {
    auto cpp = [&] {
      for (size_t k = 0; k < types.size(); ++k)
        t[k].cpp.push_back(cpp_score(gt, res, eval::parse_coco_iou_type(types[k])));
    };
    auto py = [&] {
      const nlohmann::json j =
          bench::run_python_json(script + "time '" + gt + "' '" + res + "'", "bench_coco_eval.py time");
      for (size_t k = 0; k < types.size(); ++k) {
        t[k].py.push_back(j.at(types[k]).at("seconds").at(0).get<double>());
        t[k].py_stats = j.at(types[k]).at("stats").get<std::array<double, 12>>();
      }
      out["pycocotools"] = j.value("pycocotools", "?");
    };
    if (round % 2 == 0)
      cpp(), py();
    else
      py(), cpp();
  }
  print_eval(types, t, out);
  if (o.dir.empty()) fs::remove_all(dir);
  std::printf("\n%s\n", out.dump().c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return bench::run_main("bench_detect", [&] {
    const Options o = parse(argc, argv);
    return o.mode == "step" ? run_step(o) : run_eval(o);
  });
}
