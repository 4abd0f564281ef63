// From a validated Config to the typed settings of each area, with the cross-key checks a schema cannot
// express.
#pragma once
#include <ATen/ATen.h>

#include <memory>
#include <string>

#include "semaim/config/config.h"
#include "semaim/data/dataset.h"
#include "semaim/data/idx.h"
#include "semaim/data/loader.h"
#include "semaim/eval/linprobe.h"
#include "semaim/models/aim.h"
#include "semaim/models/registry.h"
#include "semaim/models/targets.h"
#include "semaim/ordering/ordering.h"

namespace semaim::train {

// Registered size plus the model.* overrides; checks heads | width, decoder depth | depth, patch | image
// size.
models::AimConfig model_config(const config::Config& cfg);
ordering::OrderingConfig ordering_config(const config::Config& cfg);
models::TargetConfig target_config(const config::Config& cfg);
data::AugmentConfig augment_config(const config::Config& cfg, bool random);
data::LoaderConfig loader_config(const config::Config& cfg);
eval::LinprobeConfig linprobe_config(const config::Config& cfg);

// The configured dataset split ("train" | "test": data.train_dir / data.val_dir, data.train_list /
// data.val_list, Fashion-MNIST's files), data.limit applied to train, checked against the model's
// channel count. Missing roots, empty class folders and malformed list files are InputErrors.
std::shared_ptr<const data::Dataset> load_dataset(const config::Config& cfg, const std::string& split);

at::Device select_device(const config::Config& cfg);
// run.output_dir / (run.name or the config file's stem)
std::string run_dir(const config::Config& cfg);
// ATen intra-op threads from run.threads (0: cores minus data workers, at least 1).
void configure_threads(const config::Config& cfg);

// A model for the config, initialized from run.seed (deterministic across runs).
models::AimVit build_model(const config::Config& cfg);

}  // namespace semaim::train
