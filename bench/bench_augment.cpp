// Augmentation benchmark: images/s of the ImageNet fine-tuning input pipeline (MAE main_finetune's
// build_transform = timm create_transform: JPEG decode, RandomResizedCrop 224 (0.08-1, bicubic), flip,
// RandAugment rand-m9-mstd0.5-inc1, normalize, RandomErasing 0.25 pixel; then Mixup 0.8 / CutMix 1.0 with
// smoothing 0.1 per batch) over one epoch of the sample corpus, semaim's loader with the mixing in its
// post_batch hook as the finetune task wires it, side by side with timm's transform in a torchvision
// ImageFolder + DataLoader and timm's Mixup per batch (tools/bench_timm_augment.py), alternating per repeat.
//
// usage: bench_augment [CONFIG.yaml] [--set key=value ...] [--root DIR] [--workers W] [--batch B]
//                      [--warmup K] [--repeats R] [--python PATH] [--no-timm] [--breakdown]
// CONFIG defaults to configs/finetune/vit-base-p16_16xb64-100e_in1k.yaml (its data.* and finetune.* mixing
// keys); DIR defaults to $SEMAIM_CORPUS (tools/setup.sh builds it), whose train/ split is read, with the
// files in broken.txt left out of both pipelines. The first K batches of each epoch (worker start-up) are
// untimed.
// --breakdown adds semaim variants without RandAugment and without the mixing, to show what each costs.
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "bench_common.h"
#include "semaim/config/config.h"
#include "semaim/core/errors.h"
#include "semaim/core/rng.h"
#include "semaim/core/timing.h"
#include "semaim/data/dataset.h"
#include "semaim/data/loader.h"
#include "semaim/data/mixup.h"
#include "semaim/data/settings.h"
#include "semaim/tasks/finetune.h"
#include "semaim/tasks/schema.h"
#include "semaim_paths.h"

using namespace semaim;

namespace {

struct Options {
  std::string config_path =
      std::string(SEMAIM_SOURCE_DIR) + "/configs/finetune/vit-base-p16_16xb64-100e_in1k.yaml";
  std::vector<std::string> sets;
  std::string corpus = bench::default_corpus();
  std::string python = bench::default_python();
  int64_t workers = 2, batch = 64, warmup = 2, repeats = 3;
  bool no_timm = false, breakdown = false;
};

// One semaim variant: the pipeline's transform list and whether batches are mixed.
struct Variant {
  std::string name;
  bool rand_augment = true, mixing = true;
};

// images/s of one epoch of semaim's loader after `warmup` batches, as the finetune task builds it.
double run_semaim(const config::Config& cfg, const std::shared_ptr<const data::Dataset>& ds, const Options& o,
                  const Variant& v, int64_t epoch) {
  data::AugmentConfig aug = data::augment_config(cfg, 224, 3, /*random=*/true);
  if (!v.rand_augment) std::erase(aug.transforms, std::string("rand_augment"));
  data::LoaderConfig lcfg = data::loader_config(cfg, o.batch, aug);
  if (v.mixing) {
    data::MixupConfig m = tasks::mixup_config(cfg, data::count_classes(*ds));
    m.validate(cfg.path());
    auto mixer = std::make_shared<const data::Mixup>(m);
    const auto seed = static_cast<uint64_t>(cfg.get_int("run.seed"));
    lcfg.post_batch = [mixer, seed](data::Batch& b) {
      std::mt19937_64 rng(
          core::mix_seed(seed, 0x6d69787570, static_cast<uint64_t>(b.epoch), static_cast<uint64_t>(b.index)));
      mixer->apply(b, rng);
    };
  }
  data::Loader loader(ds, lcfg);
  loader.start_epoch(epoch);
  for (int64_t i = 0; i < o.warmup; ++i)
    if (!loader.next()) throw InputError("--warmup", "the epoch has fewer batches than the warm-up");
  int64_t images = 0;
  const auto t0 = core::Clock::now();
  while (auto b = loader.next()) images += b->images.size(0);
  const double s = core::seconds_since(t0);
  if (images == 0) throw InputError("--warmup", "no batch left to time after the warm-up");
  return static_cast<double>(images) / s;
}

double run_timm(const Options& o, const std::string& root, const std::string& exclude, int64_t epoch) {
  std::ostringstream cmd;
  cmd << "'" << o.python << "' '" << SEMAIM_SOURCE_DIR << "/tools/bench_timm_augment.py' --root '" << root
      << "' --workers " << o.workers << " --batch " << o.batch << " --warmup " << o.warmup << " --seed "
      << epoch;
  if (!exclude.empty()) cmd << " --exclude '" << exclude << "'";
  return bench::run_python_json(cmd.str(), "timm benchmark").at("images_per_s").get<double>();
}

Options parse(int argc, char** argv) {
  Options o;
  bench::parse_options(argc, argv,
                       {{"--set", &o.sets},
                        {"--root", &o.corpus},
                        {"--workers", &o.workers},
                        {"--batch", &o.batch},
                        {"--warmup", &o.warmup},
                        {"--repeats", &o.repeats},
                        {"--python", &o.python},
                        {"--no-timm", &o.no_timm},
                        {"--breakdown", &o.breakdown}},
                       &o.config_path,
                       "usage: bench_augment [CONFIG.yaml] [--set key=value ...] [--root DIR] [--workers W] "
                       "[--batch B] [--warmup K] [--repeats R] [--python PATH] [--no-timm] [--breakdown]");
  if (o.workers < 0 || o.batch < 2 || o.batch % 2 != 0 || o.warmup < 0 || o.repeats < 1)
    throw InputError("arguments", "workers >= 0, an even batch >= 2, warmup >= 0 and repeats >= 1 required");
  while (o.corpus.size() > 1 && o.corpus.back() == '/') o.corpus.pop_back();
  return o;
}

// The corpus's train split without the files broken.txt lists; `exclude` is set to that list's path.
std::shared_ptr<const data::Dataset> corpus_files(const std::string& root, const std::string& corpus,
                                                  std::string& exclude) {
  bench::CorpusFiles c = bench::corpus_files(root, corpus);
  exclude = c.exclude;
  std::printf("%zu files (%.0f MB, page-cached) under %s\n", c.files.size(),
              static_cast<double>(c.bytes) / 1e6, root.c_str());
  return std::make_shared<data::FileDataset>("bench", std::move(c.files), std::move(c.classes));
}

}  // namespace

int main(int argc, char** argv) {
  return bench::run_main("bench_augment", [&] {
    const Options o = parse(argc, argv);
    const bool with_timm = !o.no_timm;
    auto cfg = config::Config::load(tasks::schema(), o.config_path);
    cfg.apply_overrides(o.sets);
    cfg.apply_overrides({"data.num_workers=" + std::to_string(o.workers)});
    at::set_num_threads(1);  // the work is on the loader's threads, as the DataLoader's worker processes
    const std::string root = o.corpus + "/train";
    std::string exclude;
    const auto ds = corpus_files(root, o.corpus, exclude);
    std::vector<Variant> variants{{"semaim (full recipe)"}};
    if (o.breakdown) variants.push_back({"semaim without RandAugment", false, true});
    if (o.breakdown) variants.push_back({"semaim without mixup / cutmix", true, false});
    std::string names;
    for (const auto& n : data::augment_config(cfg, 224, 3, true).transforms)
      names += (names.empty() ? "" : ", ") + n;
    std::printf(
        "transforms [%s] (%s), mixup %.2f / cutmix %.2f, batch %lld, %lld workers, %lld untimed batches "
        "per epoch, %lld repeats\n\n",
        names.c_str(), cfg.get_string("data.auto_augment").c_str(), cfg.get_float("finetune.mixup"),
        cfg.get_float("finetune.cutmix"), (long long)o.batch, (long long)o.workers, (long long)o.warmup,
        (long long)o.repeats);
    std::vector<std::vector<double>> rates(variants.size());
    std::vector<double> timm;
    for (int64_t r = 0; r < o.repeats; ++r) {
      // The full recipe and timm back to back, alternating which goes first, so drift in the shared
      // machine's speed hits both; the breakdown variants after them.
      if (with_timm && r % 2 == 1) timm.push_back(run_timm(o, root, exclude, r));
      rates[0].push_back(run_semaim(cfg, ds, o, variants[0], r));
      if (with_timm && r % 2 == 0) timm.push_back(run_timm(o, root, exclude, r));
      for (size_t i = 1; i < variants.size(); ++i) rates[i].push_back(run_semaim(cfg, ds, o, variants[i], r));
      std::fprintf(stderr, "repeat %lld: semaim %.1f img/s, timm %.1f img/s\n", (long long)r, rates[0].back(),
                   with_timm ? timm.back() : 0.0);
    }
    std::printf(
        "| pipeline | images/s (median) | min | max | ratio to timm (medians) | per-repeat ratios (median, "
        "min-max) |\n|---|---|---|---|---|---|\n");
    nlohmann::json out{{"bench", "augment"}, {"workers", o.workers}, {"batch", o.batch}};
    auto row = [&](const std::string& name, const std::vector<double>& v) {
      const auto [mn, mx] = std::minmax_element(v.begin(), v.end());
      char ratio[32] = "-", paired[64] = "-";
      if (with_timm) {
        // Each repeat's semaim and timm epochs ran back to back: their ratio cancels most of the drift.
        std::vector<double> per;
        for (size_t k = 0; k < v.size(); ++k) per.push_back(v[k] / timm[k]);
        const auto [pmn, pmx] = std::minmax_element(per.begin(), per.end());
        std::snprintf(ratio, sizeof(ratio), "%.2fx", core::median(v) / core::median(timm));
        std::snprintf(paired, sizeof(paired), "%.2fx (%.2f-%.2f)", core::median(per), *pmn, *pmx);
      }
      std::printf("| %s | %.1f | %.1f | %.1f | %s | %s |\n", name.c_str(), core::median(v), *mn, *mx, ratio,
                  paired);
      out[name] = v;
    };
    for (size_t i = 0; i < variants.size(); ++i) row(variants[i].name, rates[i]);
    if (with_timm) row("timm create_transform + Mixup (DataLoader)", timm);
    std::printf("%s\n", out.dump().c_str());
    return 0;
  });
}
