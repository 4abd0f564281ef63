// The small tasks behind `semaim linprobe` (MAE's main_linprobe, scaled down: features once, BatchNorm +
// Linear), `semaim knn` (weighted k-NN on frozen features) and `semaim export` (a checkpoint's encoder under
// timm's key names).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "semaim/config/config.h"
#include "semaim/eval/linprobe.h"

namespace semaim::tasks {

struct LinprobeOptions {
  std::string checkpoint;  // "" = the run directory's newest checkpoint
  bool random_init = false;
  std::string out_json;  // "" = <run dir>/linprobe[_random].json
  bool quiet = false;
};

// docs/method.md §8 linear probe of the frozen encoder on the configured dataset's test split.
eval::LinprobeResult linprobe(const config::Config& cfg, const LinprobeOptions& opts);

struct KnnResult {
  std::vector<int64_t> ks;
  std::vector<double> top1, top5;  // percent, per k
  int64_t n_train = 0, n_test = 0;
  double seconds = 0;
};

// Weighted k-NN (knn.* keys) of the encoder of opts.checkpoint (any file finetune.init accepts; default the
// run's newest checkpoint) or of a random initialization; features extracted on every rank, result written
// to opts.out_json (default <run dir>/knn[_random].json).
KnnResult knn(const config::Config& cfg, const LinprobeOptions& opts);

// Writes the encoder of a checkpoint (timm key names only) to `out` as safetensors, with its architecture in
// the metadata. Returns the number of tensors written.
int64_t export_encoder(const std::string& checkpoint, const std::string& out);

}  // namespace semaim::tasks
