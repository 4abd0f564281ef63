// Data pipeline benchmark: images/s of SemAIM's pretraining input pipeline (JPEG decode +
// RandomResizedCrop 224 bicubic + horizontal flip + normalize + batch) at 1 and 2 loader threads, side by
// side in one run with torchvision + PIL through a PyTorch DataLoader on the same files with the same number
// of workers (tools/bench_torchvision_pipeline.py), and semaim with crop-aware decoding switched off. Each
// repeat runs every variant once, alternating; medians are reported.
//
// usage: bench_data_pipeline [--root DIR] [--threads 1,2] [--batch 64] [--size 224] [--batches 10]
//                            [--repeats 3] [--python PATH] [--no-torchvision]
// DIR defaults to $SEMAIM_CORPUS/train (tools/setup.sh builds the corpus); files in $SEMAIM_CORPUS/broken.txt
// are left out of both pipelines.
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "bench_common.h"
#include "semaim_paths.h"
#include "semaim/core/timing.h"
#include "semaim/data/dataset.h"
#include "semaim/data/decode.h"
#include "semaim/data/loader.h"

using namespace semaim;

namespace {

// images/s of semaim's loader over `files`: `warmup` batches untimed, then `batches` timed.
double run_semaim(const std::vector<data::ImageFile>& files, int64_t threads, int64_t batch, int64_t size,
                  int64_t batches, int64_t warmup, bool reduced, uint64_t seed) {
  auto ds = std::make_shared<data::FileDataset>("bench", files, std::vector<std::string>{});
  ds->set_crop_aware(reduced);
  data::LoaderConfig cfg;
  cfg.batch_size = batch;
  cfg.num_workers = threads;
  cfg.seed = seed;
  cfg.augment.out_size = size;
  cfg.augment.mean = {0.485, 0.456, 0.406};
  cfg.augment.std = {0.229, 0.224, 0.225};
  data::Loader loader(ds, cfg);
  int64_t epoch = 0, got = 0;
  loader.start_epoch(epoch);
  auto next = [&] {
    auto b = loader.next();
    if (!b) {
      loader.start_epoch(++epoch);
      b = loader.next();
    }
    return b->images.size(0);
  };
  for (int64_t i = 0; i < warmup; ++i) next();
  const auto t0 = core::Clock::now();
  for (int64_t i = 0; i < batches; ++i) got += next();
  const double s = core::seconds_since(t0);
  return static_cast<double>(got) / s;
}

double run_torchvision(const std::string& python, const std::string& script, const std::string& root,
                       const std::string& exclude, int64_t threads, int64_t batch, int64_t size,
                       int64_t batches, int64_t warmup) {
  std::ostringstream cmd;
  cmd << "'" << python << "' '" << script << "' --root '" << root << "' --threads " << threads << " --batch "
      << batch << " --size " << size << " --batches " << batches << " --warmup " << warmup << " --repeats 1";
  if (!exclude.empty()) cmd << " --exclude '" << exclude << "'";
  return bench::run_python_json(cmd.str(), "torchvision benchmark").at("images_per_s").get<double>();
}

struct Options {
  std::string corpus = bench::default_corpus();
  std::string root = corpus + "/train", python = bench::default_python();
  std::vector<int64_t> thread_counts{1, 2};
  int64_t batch = 64, size = 224, batches = 10, repeats = 3, warmup = 2;
  bool no_torchvision = false;
};

Options parse(int argc, char** argv) {
  Options o;
  auto threads = [&o](const std::string& list) {
    o.thread_counts.clear();
    std::stringstream ss(list);
    for (std::string t; std::getline(ss, t, ',');) o.thread_counts.push_back(std::stoll(t));
  };
  bench::parse_options(argc, argv,
                       {{"--root", &o.root},
                        {"--threads", threads},
                        {"--batch", &o.batch},
                        {"--size", &o.size},
                        {"--batches", &o.batches},
                        {"--repeats", &o.repeats},
                        {"--python", &o.python},
                        {"--no-torchvision", &o.no_torchvision}},
                       nullptr,
                       "usage: bench_data_pipeline [--root DIR] [--threads 1,2] [--batch 64] [--size 224] "
                       "[--batches 10] [--repeats 3] [--python PATH] [--no-torchvision]");
  while (o.root.size() > 1 && o.root.back() == '/') o.root.pop_back();
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  return bench::run_main("bench_data_pipeline", [&] {
    const Options opt = parse(argc, argv);
    at::set_num_threads(1);
    const bench::CorpusFiles corpus = bench::corpus_files(opt.root, opt.corpus);
    const std::vector<data::ImageFile>& files = corpus.files;
    const int64_t batch = opt.batch, size = opt.size, batches = opt.batches, warmup = opt.warmup;
    const std::string script = std::string(SEMAIM_SOURCE_DIR) + "/tools/bench_torchvision_pipeline.py";
    std::printf(
        "data pipeline: %zu files (%.0f MB, page-cached) under %s, batch %lld, %lldx%lld, %lld timed batches "
        "after %lld, %lld repeats\n",
        files.size(), static_cast<double>(corpus.bytes) / 1e6, opt.root.c_str(), (long long)batch,
        (long long)size, (long long)size, (long long)batches, (long long)warmup, (long long)opt.repeats);
    nlohmann::json rows = nlohmann::json::array();
    std::printf(
        "| threads | semaim img/s | semaim, full decode | torchvision + PIL img/s | semaim / torchvision | "
        "crop-aware gain |\n|---|---|---|---|---|---|\n");
    for (int64_t t : opt.thread_counts) {
      std::vector<double> ours, full, tv;
      for (int64_t r = 0; r < opt.repeats; ++r) {
        ours.push_back(run_semaim(files, t, batch, size, batches, warmup, true, static_cast<uint64_t>(r)));
        full.push_back(run_semaim(files, t, batch, size, batches, warmup, false, static_cast<uint64_t>(r)));
        if (!opt.no_torchvision)
          tv.push_back(run_torchvision(opt.python, script, opt.root, corpus.exclude, t, batch, size, batches,
                                       warmup));
      }
      const double o = core::median(ours), f = core::median(full), v = core::median(tv);
      char tv_rate[32] = "-", tv_ratio[32] = "-";
      if (!opt.no_torchvision) {
        std::snprintf(tv_rate, sizeof(tv_rate), "%.1f", v);
        std::snprintf(tv_ratio, sizeof(tv_ratio), "%.2fx", o / v);
      }
      std::printf("| %lld | %.1f | %.1f | %s | %s | %.2fx |\n", (long long)t, o, f, tv_rate, tv_ratio, o / f);
      std::fflush(stdout);
      rows.push_back({{"threads", t}, {"semaim", ours}, {"semaim_full_decode", full}, {"torchvision", tv}});
    }
    std::printf("%s\n", nlohmann::json{{"bench", "data_pipeline"}, {"rows", rows}}.dump().c_str());
    return 0;
  });
}
