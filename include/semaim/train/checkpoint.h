// Checkpoints of a run: weights (timm keys for the encoder, query_blocks./prediction_head. for decoder and
// head) and training state beside them, each written atomically; a small manifest written last marks the pair
// complete.
#pragma once
#include <ATen/ATen.h>

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "semaim/io/safetensors.h"

namespace semaim::train {

struct CheckpointPaths {
  std::string weights, state, manifest;
  int64_t step = 0;
};

class CheckpointManager {
 public:
  // dir: the run's checkpoints/ directory (created if needed); keep_last: newest complete checkpoints kept.
  CheckpointManager(std::string dir, int64_t keep_last);
  // Writes weights, then state, then the manifest (each atomically), then prunes old checkpoints.
  CheckpointPaths save(int64_t step, const io::NamedTensors& weights, const io::NamedTensors& state,
                       const nlohmann::json& info,
                       const std::map<std::string, std::string>& weights_metadata);
  // Newest checkpoint whose manifest, weights and state all exist.
  std::optional<CheckpointPaths> latest() const;
  std::vector<CheckpointPaths> complete() const;
  const std::string& dir() const { return dir_; }

  // For `--resume PATH`: PATH may be a manifest, a weights file or a run/checkpoints directory.
  static CheckpointPaths resolve(const std::string& path);

 private:
  std::string dir_;
  int64_t keep_last_;
};

// Reads a checkpoint's manifest (InputError naming the file when it is missing or malformed).
nlohmann::json read_manifest(const std::string& path);

}  // namespace semaim::train
