// pretrain.* and linprobe.* keys (method.md §8 schedules); docs/configs.md documents them.
#include "semaim/tasks/config_keys.h"

#include "semaim/engine/config_keys.h"

namespace semaim::tasks {

void register_pretrain_keys(config::Schema& s) {
  s.add_section("pretrain", "SemAIM pretraining (`semaim pretrain`): AdamW with a half-cosine schedule.");
  // TrainingKeyDefaults' initial values are SemAIM pretraining's own.
  engine::register_training_keys(s, "pretrain", engine::TrainingKeyDefaults{});
}

void register_linprobe_keys(config::Schema& s) {
  using T = config::ValueType;
  s.add_section(
      "linprobe",
      "Linear probe of a pretrained encoder (`semaim linprobe`): BatchNorm + Linear trained with SGD "
      "on cached features.");
  s.add({"linprobe.epochs", T::kInt, "30", "Linear-probe epochs over the cached features.", 1});
  s.add({"linprobe.batch_size", T::kInt, "256", "Linear-probe batch size.", 1});
  s.add({"linprobe.base_lr", T::kFloat, "0.1", "SGD lr per 256 images (method.md §8).", 0.0, 100.0});
  s.add({"linprobe.momentum", T::kFloat, "0.9", "SGD momentum.", 0.0, 1.0});
  s.add({"linprobe.weight_decay", T::kFloat, "0.0", "SGD weight decay.", 0.0, 1.0});
  s.add({"linprobe.pool",
         T::kString,
         "mean",
         "Feature: `cls` token or `mean` of the patch tokens.",
         {},
         {},
         {"cls", "mean"}});
  s.add({"linprobe.train_limit", T::kInt, "0", "Use the first N training images; 0 = all.", 0});
  s.add({"linprobe.test_limit", T::kInt, "0", "Use the first N test images; 0 = all.", 0});
  s.add({"linprobe.feature_batch", T::kInt, "500", "Images per feature-extraction forward.", 1});
}

}  // namespace semaim::tasks
