// The task sections' configuration keys: pretrain.* (the shared training keys with SemAIM's defaults) and
// linprobe.* (the linear probe on frozen features, method.md §8), finetune.*, knn.*, segment.* and detect.*.
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
// Section segment (UperNet semantic segmentation, src/tasks/segment_keys.cpp).
void register_segment_keys(config::Schema& schema);
// Section detect (ViTDet Mask R-CNN detection, src/tasks/detect_keys.cpp).
void register_detect_keys(config::Schema& schema);

}  // namespace semaim::tasks
