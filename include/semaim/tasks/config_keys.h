// The task sections' configuration keys: pretrain.* (the shared training keys with SemAIM's defaults) and
// linprobe.* (the linear probe on frozen features, method.md §8), finetune.* and knn.*.
#pragma once
#include "semaim/config/config.h"

namespace semaim::tasks {

// Section pretrain.
void register_pretrain_keys(config::Schema& schema);
// Section linprobe.
void register_linprobe_keys(config::Schema& schema);
// Section finetune (MAE main_finetune's arguments).
void register_finetune_keys(config::Schema& schema);
// Section knn (weighted k-NN on frozen features).
void register_knn_keys(config::Schema& schema);

}  // namespace semaim::tasks
