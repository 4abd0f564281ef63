// Segmentation benchmark: images/s of one training step of UperNet on the encoder as `semaim segment train`
// runs it (src/tasks/segment_train.cpp segment_step: forward of both heads, cross entropy with the auxiliary
// loss, backward, AdamW over the layer-decay groups) in fp32 and bf16 autocast, and images/s of test-time
// inference on one image at the test scale (sliding windows and the whole image), each on fixed random data.
//
// usage: bench_segment [CONFIG.yaml] [--set key=value ...] [--batch B] [--image HxW] [--steps N]
//                      [--repeats R] [--warmup W] [--threads T] [--precision fp32,bf16]
// CONFIG: a segment config (default configs/segment/upernet-fmnist-p4_1xb16-fmnist_seg.yaml). The training
// batch is B random crops of segment.crop_size; inference reads one HxW image (default: 512x683, ADE20K's
// typical validation shape; the fmnist-seg default is 56x56) resized to segment.scale. Prints Markdown tables
// of median (min, max) images/s over R repeats (the variants timed round-robin) and one JSON line.
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
#include "semaim/data/seg_transforms.h"
#include "semaim/eval/seg_inference.h"
#include "semaim/tasks/models.h"
#include "semaim/tasks/schema.h"
#include "semaim/tasks/segment_settings.h"
#include "semaim_paths.h"

using namespace semaim;

namespace {

// One precision's UperNet, optimizer and fixed batch; step() is the task's optimizer step.
class SegmentStep {
 public:
  SegmentStep(const tasks::SegmentSettings& s, int64_t batch, bool bf16) {
    at::manual_seed(0);
    model_ = models::UperNet(s.model);
    model_->train();
    const auto params = tasks::trainable(*model_);
    step_ = std::make_unique<bench::OptimizerStep>(params, tasks::make_segment_optimizer(s, params), bf16);
    const int64_t crop = s.model.vit.img_size;
    imgs_ = at::randn({batch, 3, crop, crop});
    labels_ = at::randint(s.model.num_classes, {batch, crop, crop}, at::kLong);
    labels_.masked_fill_(at::rand({batch, crop, crop}) < 0.05, s.model.ignore_index);  // some padding
  }
  void step() {
    step_->run([&] { return model_->loss(model_->forward(imgs_), labels_); });
  }
  models::UperNet& model() { return model_; }

 private:
  models::UperNet model_{nullptr};
  std::unique_ptr<bench::OptimizerStep> step_;
  at::Tensor imgs_, labels_;
};

struct Options {
  std::string config_path = std::string(SEMAIM_SOURCE_DIR) + "/configs/segment/upernet-fmnist-p4_1xb16-fmnist_seg.yaml";
  std::vector<std::string> sets;
  std::vector<std::string> precisions{"fp32", "bf16"};
  int64_t batch = 0, steps = 3, repeats = 3, warmup = 1, threads = 2, image_h = 512, image_w = 683;
};

Options parse(int argc, char** argv) {
  Options o;
  auto image = [&o](const std::string& v) {
    long long h = 0, w = 0;
    char x = 0;
    if (std::sscanf(v.c_str(), "%lld%c%lld", &h, &x, &w) != 3 || x != 'x' || h < 1 || w < 1)
      throw InputError("--image", "needs HxW, got '" + v + "'");
    o.image_h = h, o.image_w = w;
  };
  bench::parse_options(argc, argv,
                       {{"--set", &o.sets},
                        {"--batch", &o.batch},
                        {"--image", image},
                        {"--steps", &o.steps},
                        {"--repeats", &o.repeats},
                        {"--warmup", &o.warmup},
                        {"--threads", &o.threads},
                        {"--precision", bench::precision_list(&o.precisions)}},
                       &o.config_path,
                       "usage: bench_segment [CONFIG.yaml] [--set key=value ...] [--batch B] [--image HxW] "
                       "[--steps N] [--repeats R] [--warmup W] [--threads T] [--precision fp32,bf16]");
  if (o.steps < 1 || o.repeats < 1 || o.warmup < 0 || o.threads < 1 || o.batch < 0 || o.precisions.empty())
    throw InputError("arguments", "steps, repeats and threads must be positive, warmup and batch not negative");
  return o;
}

// Median, min and max of every variant's rates as a Markdown table; the rates into `out`.
void print_rates(const char* what, const std::vector<std::string>& names,
                 const std::vector<std::vector<double>>& rates, nlohmann::json& out) {
  std::printf("| %s | images/s (median) | min | max |\n|---|---|---|---|\n", what);
  for (size_t i = 0; i < names.size(); ++i) {
    const auto [mn, mx] = std::minmax_element(rates[i].begin(), rates[i].end());
    std::printf("| %s | %.3g | %.3g | %.3g |\n", names[i].c_str(), core::median(rates[i]), *mn, *mx);
    out[names[i]] = rates[i];
  }
  std::printf("\n");
}

// R repeats of every variant, round-robin (repeat k of each before repeat k+1); fn(i) returns images done.
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

}  // namespace

int main(int argc, char** argv) {
  return bench::run_main("bench_segment", [&] {
    const Options o = parse(argc, argv);
    auto cfg = config::Config::load(tasks::schema(), o.config_path);
    cfg.apply_overrides(o.sets);
    const tasks::SegmentSettings s = tasks::SegmentSettings::read(cfg);
    const int64_t batch = o.batch > 0 ? o.batch : s.train.batch_size;
    at::set_num_threads(static_cast<int>(o.threads));
    const auto& v = s.model.vit;
    const auto [th, tw] = data::rescale_keep_ratio(o.image_h, o.image_w, s.eval.test_scale[0], s.eval.test_scale[1]);
    std::printf("semaim UperNet on %s (D %lld, depth %lld, patch %lld, crop %lld), channels %lld, %lld classes, "
                "batch %lld, %d threads; inference on a %lldx%lld image resized to %lldx%lld, windows %lld / "
                "stride %lld; %lld steps x %lld repeats after %lld warm-up\n\n",
                cfg.get_string("model.name").c_str(), (long long)v.embed_dim, (long long)v.depth,
                (long long)v.patch_size, (long long)v.img_size, (long long)s.model.channels,
                (long long)s.model.num_classes, (long long)batch, at::get_num_threads(), (long long)o.image_h,
                (long long)o.image_w, (long long)th, (long long)tw, (long long)s.eval.infer.crop,
                (long long)s.eval.infer.stride, (long long)o.steps, (long long)o.repeats, (long long)o.warmup);
    nlohmann::json out{{"bench", "segment"}, {"config", o.config_path}, {"batch", batch},
                       {"threads", at::get_num_threads()}};

    std::vector<std::unique_ptr<SegmentStep>> runners;
    for (const auto& p : o.precisions) {
      runners.push_back(std::make_unique<SegmentStep>(s, batch, p == "bf16"));
      for (int64_t i = 0; i < o.warmup; ++i) runners.back()->step();
    }
    const auto train = round_robin(runners.size(), o.repeats, [&](size_t i) {
      for (int64_t k = 0; k < o.steps; ++k) runners[i]->step();
      return o.steps * batch;
    });
    print_rates("training step", o.precisions, train, out["train"]);

    // Inference of the fp32 model on one normalized image at the test size: sliding windows and whole.
    models::UperNet& model = runners.front()->model();
    model->eval();
    at::NoGradGuard no_grad;
    const at::Tensor image = at::randn({1, 3, th, tw});
    std::vector<std::string> modes;
    std::vector<eval::SegInferOptions> infer;
    for (const std::string& mode : {std::string("slide"), std::string("whole")}) {
      eval::SegInferOptions io = s.eval.infer;
      io.mode = mode;
      modes.push_back(mode);
      infer.push_back(io);
    }
    const eval::SegLogitsFn logits = tasks::segmenter_logits(model, at::kCPU, false);
    for (const auto& io : infer) eval::infer_logits(logits, image, io);  // warm-up
    const auto rates = round_robin(infer.size(), o.repeats, [&](size_t i) {
      for (int64_t k = 0; k < o.steps; ++k) eval::infer_logits(logits, image, infer[i]);
      return o.steps;
    });
    print_rates("inference (fp32)", modes, rates, out["inference"]);
    std::printf("%s\n", out.dump().c_str());
    return 0;
  });
}
