// The small tasks behind `semaim linprobe` (MAE's main_linprobe, scaled down: features once, BatchNorm +
// Linear) and `semaim export` (a checkpoint's encoder under timm's key names).
#pragma once
#include <string>

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

// Writes the encoder of a checkpoint (timm key names only) to `out` as safetensors, with its architecture in
// the metadata. Returns the number of tensors written.
int64_t export_encoder(const std::string& checkpoint, const std::string& out);

}  // namespace semaim::tasks
