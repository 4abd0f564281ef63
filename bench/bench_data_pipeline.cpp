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
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "semaim_paths.h"
#include "semaim/core/timing.h"
#include "semaim/data/dataset.h"
#include "semaim/data/decode.h"
#include "semaim/data/loader.h"

using namespace semaim;

namespace {

std::string env_or(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v && *v ? v : fallback;
}

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
  FILE* p = ::popen(cmd.str().c_str(), "r");
  if (!p) throw std::runtime_error("cannot run " + cmd.str());
  std::string out;
  char buf[4096];
  while (size_t n = std::fread(buf, 1, sizeof(buf), p)) out.append(buf, n);
  const int rc = ::pclose(p);
  if (rc != 0)
    throw std::runtime_error("torchvision benchmark failed (" + std::to_string(rc) + "): " + cmd.str());
  return nlohmann::json::parse(out.substr(out.find('{'))).at("images_per_s").get<double>();
}

}  // namespace

int main(int argc, char** argv) {
  const std::string corpus = env_or("SEMAIM_CORPUS", env_or("HOME", "/root") + "/.cache/semaim/corpus-v1");
  std::string root = corpus + "/train", python = env_or("SEMAIM_VENV", "") + "/bin/python";
  if (python == "/bin/python")
    python = env_or("HOME", "/root") + "/.cache/semaim/venv-torch-2.11.0/bin/python";
  std::vector<int64_t> thread_counts{1, 2};
  int64_t batch = 64, size = 224, batches = 10, repeats = 3, warmup = 2;
  bool torchvision = true;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto val = [&] {
      if (i + 1 >= argc) throw std::runtime_error(a + " needs a value");
      return std::string(argv[++i]);
    };
    if (a == "--root")
      root = val();
    else if (a == "--batch")
      batch = std::stoll(val());
    else if (a == "--size")
      size = std::stoll(val());
    else if (a == "--batches")
      batches = std::stoll(val());
    else if (a == "--repeats")
      repeats = std::stoll(val());
    else if (a == "--python")
      python = val();
    else if (a == "--no-torchvision")
      torchvision = false;
    else if (a == "--threads") {
      thread_counts.clear();
      std::stringstream ss(val());
      for (std::string t; std::getline(ss, t, ',');) thread_counts.push_back(std::stoll(t));
    } else {
      std::cerr << "unknown argument " << a << "\n";
      return 2;
    }
  }
  at::set_num_threads(1);
  while (root.size() > 1 && root.back() == '/') root.pop_back();
  std::string exclude = corpus + "/broken.txt";
  std::set<std::string> broken;
  if (std::ifstream in(exclude); in) {
    for (std::string l; std::getline(in, l);)
      if (!l.empty()) broken.insert(root + "/" + l);
  } else {
    exclude.clear();
  }
  std::vector<data::ImageFile> files;
  const auto folder = data::FileDataset::image_folder(root);
  for (const auto& f : folder->files())
    if (!broken.count(f.path)) files.push_back(f);
  // Every file read once up front: all variants then read from the page cache, whichever runs first.
  size_t bytes = 0;
  for (const auto& f : files) bytes += data::read_file_bytes(f.path).size();
  const std::string script = std::string(SEMAIM_SOURCE_DIR) + "/tools/bench_torchvision_pipeline.py";
  std::printf(
      "data pipeline: %zu files (%.0f MB, page-cached) under %s, batch %lld, %lldx%lld, %lld timed batches "
      "after %lld, %lld repeats\n",
      files.size(), static_cast<double>(bytes) / 1e6, root.c_str(), (long long)batch, (long long)size,
      (long long)size, (long long)batches, (long long)warmup, (long long)repeats);
  nlohmann::json rows = nlohmann::json::array();
  std::printf(
      "| threads | semaim img/s | semaim, full decode | torchvision + PIL img/s | semaim / torchvision | "
      "crop-aware gain |\n|---|---|---|---|---|---|\n");
  for (int64_t t : thread_counts) {
    std::vector<double> ours, full, tv;
    for (int64_t r = 0; r < repeats; ++r) {
      ours.push_back(run_semaim(files, t, batch, size, batches, warmup, true, static_cast<uint64_t>(r)));
      full.push_back(run_semaim(files, t, batch, size, batches, warmup, false, static_cast<uint64_t>(r)));
      if (torchvision)
        tv.push_back(run_torchvision(python, script, root, exclude, t, batch, size, batches, warmup));
    }
    const double o = core::median(ours), f = core::median(full), v = core::median(tv);
    char tv_rate[32] = "-", tv_ratio[32] = "-";
    if (torchvision) {
      std::snprintf(tv_rate, sizeof(tv_rate), "%.1f", v);
      std::snprintf(tv_ratio, sizeof(tv_ratio), "%.2fx", o / v);
    }
    std::printf("| %lld | %.1f | %.1f | %s | %s | %.2fx |\n", (long long)t, o, f, tv_rate, tv_ratio, o / f);
    std::fflush(stdout);
    rows.push_back({{"threads", t}, {"semaim", ours}, {"semaim_full_decode", full}, {"torchvision", tv}});
  }
  std::printf("%s\n", nlohmann::json{{"bench", "data_pipeline"}, {"rows", rows}}.dump().c_str());
  return 0;
}
