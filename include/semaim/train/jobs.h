// The CLI's non-training jobs: linear probe of a checkpoint (or of a random init) and encoder export.
#pragma once
#include <string>

#include "semaim/config/config.h"
#include "semaim/eval/linprobe.h"

namespace semaim::train {

struct LinprobeJobOptions {
  std::string checkpoint;  // "" = the run directory's newest checkpoint
  bool random_init = false;
  std::string out_json;  // "" = <run dir>/linprobe[_random].json
  bool quiet = false;
};

// SPEC §8 linear probe of the frozen encoder on the configured dataset's test split.
eval::LinprobeResult run_linprobe_job(const config::Config& cfg, const LinprobeJobOptions& opts);

// Writes the encoder of a checkpoint (timm key names only) to `out` as safetensors, with its architecture in
// the metadata. Returns the number of tensors written.
int64_t export_encoder(const std::string& checkpoint, const std::string& out);

}  // namespace semaim::train
