// Checkpoints of a run: step-N.weights.safetensors (the model, timm keys for the encoder),
// step-N.state.safetensors (optimizer, EMA weights, RNG states, counters) and step-N.json, the manifest
// written last: a checkpoint is complete exactly when its manifest exists. Each file is written atomically;
// the newest keep_last are kept, plus the best by a metric when one is given.
#pragma once
#include <ATen/ATen.h>

#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "semaim/engine/train_state.h"
#include "semaim/io/safetensors.h"

namespace semaim::engine {

struct CheckpointPaths {
  std::string weights, state, manifest;
  int64_t step = 0;
};

// Which checkpoint is "best": the metric's name in the manifest and whether higher is better.
struct BestMetric {
  std::string name;  // empty: no best checkpoint is kept
  bool higher_is_better = true;
};

class CheckpointManager {
 public:
  // dir: the run's checkpoints/ directory (created if needed); keep_last: newest complete checkpoints kept.
  CheckpointManager(std::string dir, int64_t keep_last, BestMetric best = {});
  // Writes weights, then state, then the manifest (each atomically), then prunes old checkpoints (never the
  // best one). When a write fails (a full disk) the files written for this step are removed again unless a
  // complete checkpoint of the step already existed, and the error propagates.
  CheckpointPaths save(int64_t step, const io::NamedTensors& weights, const io::NamedTensors& state,
                       const nlohmann::json& info,
                       const std::map<std::string, std::string>& weights_metadata);
  // Newest checkpoint whose manifest, weights and state all exist.
  std::optional<CheckpointPaths> latest() const;
  // Newest complete checkpoint whose manifest parses and whose weights and state headers are intact (every
  // tensor inside its file); each newer broken one is named in a warning. None when there is no intact one.
  std::optional<CheckpointPaths> latest_intact() const;
  // Removes what killed or failed saves leave in the directory: temporary files of the atomic writer and
  // weights or state files without a manifest (incomplete by definition). Only for the directory's one
  // writer (the process holding the run lock). Returns the removed paths.
  std::vector<std::string> remove_incomplete() const;
  // The complete checkpoint with the best value of the metric in its manifest (none without a metric).
  std::optional<CheckpointPaths> best() const;
  std::vector<CheckpointPaths> complete() const;
  const std::string& dir() const { return dir_; }

  // For `--resume PATH`: PATH may be a manifest, a weights file or a run/checkpoints directory.
  static CheckpointPaths resolve(const std::string& path);

 private:
  void prune();

  std::string dir_;
  int64_t keep_last_;
  BestMetric best_;
};

// Reads a checkpoint's manifest (InputError naming the file when it is missing or malformed, or its 'step' is
// not a non-negative integer).
nlohmann::json read_manifest(const std::string& path);

// Saves and restores a TrainState through a CheckpointManager.
class Checkpointer {
 public:
  Checkpointer(CheckpointManager manager, std::map<std::string, std::string> weights_metadata);
  // The checkpoint to resume from: resume "" starts fresh (an InputError when the run already holds
  // checkpoints, naming run_dir), "auto" the newest intact one if any (CheckpointManager::latest_intact),
  // anything else a path for CheckpointManager::resolve.
  std::optional<CheckpointPaths> resume_from(const std::string& resume, const std::string& run_dir) const;
  // Loads weights, optimizer, EMA, RNG and counters into `state`. When both the checkpoint's weights and this
  // checkpointer's metadata hold a `config`, they are compared first (check_config_drift). InputError naming
  // the file and the field for a state file whose `info` is not a JSON object or whose counters are not
  // integers.
  void restore(TrainState& state, const CheckpointPaths& from) const;
  // Rank 0 writes (others return an empty path); `metrics` go into the manifest (the best metric among them).
  // Rank 0's first save removes what earlier killed saves left (CheckpointManager::remove_incomplete).
  CheckpointPaths save(const TrainState& state, const std::string& reason, bool rank0,
                       const nlohmann::json& metrics = nlohmann::json::object());
  CheckpointManager& manager() { return manager_; }

 private:
  CheckpointManager manager_;
  std::map<std::string, std::string> weights_metadata_;
  bool cleaned_ = false;
};

}  // namespace semaim::engine
