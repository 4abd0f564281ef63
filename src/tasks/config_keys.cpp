// pretrain.*, linprobe.*, finetune.* and knn.* keys (method.md §8 schedules, MAE main_finetune's arguments);
// docs/configs.md documents them.
#include "semaim/tasks/config_keys.h"

#include "semaim/engine/config_keys.h"

namespace semaim::tasks {
namespace {

// <section>.train_limit and <section>.test_limit of the tasks that run on frozen features.
void register_limit_keys(config::Schema& s, const std::string& section) {
  using T = config::ValueType;
  s.add({section + ".train_limit", T::kInt, "0", "Use the first N training images; 0 = all.", 0});
  s.add({section + ".test_limit", T::kInt, "0", "Use the first N test images; 0 = all.", 0});
}

}  // namespace

void register_pretrain_keys(config::Schema& s) {
  s.add_section("pretrain", "SemAIM pretraining (`semaim pretrain`): AdamW with a half-cosine schedule.");
  // TrainingKeyDefaults' initial values are SemAIM pretraining's own.
  engine::register_training_keys(s, "pretrain", engine::TrainingKeyDefaults{});
}

void register_linprobe_keys(config::Schema& s) {
  using T = config::ValueType;
  s.add_section(
      "linprobe",
      "Linear probe of a pretrained encoder (`semaim linprobe`): BatchNorm + Linear on frozen features, "
      "either "
      "trained on cached features with SGD (`cached`, the quickstart's) or MAE's reference protocol "
      "(`reference`: augmented images through the frozen encoder every epoch, LARS, evaluation every "
      "epoch).");
  engine::TrainingKeyDefaults d;
  d.epochs = 30;
  d.batch_size = 256;
  d.base_lr = 0.1;
  d.warmup_epochs = 0.0;
  d.weight_decay = 0.0;
  d.betas = {0.9, 0.999};
  d.clip_grad = 0.0;
  engine::register_training_keys(s, "linprobe", d);
  s.add(
      {"linprobe.protocol",
       T::kString,
       "cached",
       "`cached`: features once under the evaluation transform, SGD on them (scaled down); `reference`: MAE "
       "main_linprobe (data.transforms every epoch, linprobe.optimizer, warmup + half-cosine per iteration).",
       {},
       {},
       {"cached", "reference"}});
  s.add(
      {"linprobe.optimizer",
       T::kString,
       "lars",
       "`reference` protocol: `lars` (MAE's LARS: no weight decay or adaptation on 1-D parameters) or `sgd`.",
       {},
       {},
       {"lars", "sgd"}});
  s.add({"linprobe.momentum", T::kFloat, "0.9", "SGD / LARS momentum.", 0.0, 1.0});
  s.add({"linprobe.num_classes", T::kInt, "0", "`reference` protocol: classes; 0 = the training split's.", 0,
         1 << 20});
  s.add({"linprobe.pool",
         T::kString,
         "mean",
         "Feature: `cls` token or `mean` of the patch tokens.",
         {},
         {},
         {"cls", "mean"}});
  register_limit_keys(s, "linprobe");
  s.add({"linprobe.feature_batch", T::kInt, "500", "Images per feature-extraction (evaluation) forward.", 1});
}

void register_finetune_keys(config::Schema& s) {
  using T = config::ValueType;
  s.add_section("finetune",
                "Classification fine-tuning (`semaim finetune`): AdamW with layer-wise lr decay, drop path, "
                "mixup / cutmix, evaluation on the validation split (MAE's recipe).");
  engine::TrainingKeyDefaults d;
  d.epochs = 100;
  d.batch_size = 64;
  d.base_lr = 5e-4;
  d.min_lr = 1e-6;
  d.warmup_epochs = 5;
  d.weight_decay = 0.05;
  d.betas = {0.9, 0.999};
  d.clip_grad = 0.0;
  d.ema_decay = 0.9999;
  engine::register_training_keys(s, "finetune", d);
  s.add(
      {"finetune.init", T::kString, "\"\"",
       "Initial encoder weights: a semaim run directory, checkpoint or export, a timm ViT safetensors file, "
       "or a reference SemAIM / MAE `.pth`; empty = random initialization."});
  s.add({"finetune.num_classes", T::kInt, "0", "Classes of the head; 0 = the training split's.", 0, 1 << 20});
  s.add({"finetune.global_pool",
         T::kString,
         "avg",
         "`avg`: mean of the patch tokens + fc_norm (MAE); `cls`: the final-normed cls token.",
         {},
         {},
         {"avg", "cls"}});
  s.add({"finetune.drop_path", T::kFloat, "0.1", "Stochastic depth rate of the last block.", 0.0, 0.99});
  s.add({"finetune.layer_decay", T::kFloat, "0.75",
         "Layer-wise lr decay: block i's lr scale is layer_decay^(depth + 1 - (i + 1)).", 0.0, 1.0});
  s.add({"finetune.smoothing", T::kFloat, "0.1", "Label smoothing (of the soft targets with mixup).", 0.0,
         0.99});
  s.add({"finetune.mixup", T::kFloat, "0.8", "Mixup alpha; 0 = off.", 0.0, 100.0});
  s.add({"finetune.cutmix", T::kFloat, "1.0", "CutMix alpha; 0 = off.", 0.0, 100.0});
  s.add({"finetune.cutmix_minmax", T::kFloatList, "[]",
         "CutMix box side range as fractions of the image ([] = from the alpha).", 0.0, 1.0});
  s.add({"finetune.mixup_prob", T::kFloat, "1.0", "Probability of mixing a batch.", 0.0, 1.0});
  s.add({"finetune.mixup_switch_prob", T::kFloat, "0.5",
         "Probability of CutMix instead of mixup when both are on.", 0.0, 1.0});
  s.add({"finetune.eval_every_epochs", T::kInt, "1", "Evaluate on the validation split every N epochs.", 0});
  s.add({"finetune.eval_batch_size", T::kInt, "256", "Images per evaluation forward.", 1});
  s.add({"finetune.eval_limit", T::kInt, "0", "Evaluate on the first N validation images; 0 = all.", 0});
}

void register_knn_keys(config::Schema& s) {
  using T = config::ValueType;
  s.add_section("knn",
                "Weighted k-NN classification on frozen features (`semaim knn`): cosine similarity, votes "
                "weighted exp(sim / T).");
  s.add({"knn.k", T::kIntList, "[10, 20, 100, 200]", "Neighbour counts, all evaluated in one pass.", 1});
  s.add({"knn.temperature", T::kFloat, "0.07", "Vote weight exp(similarity / temperature).", 1e-6, 100.0});
  s.add({"knn.pool",
         T::kString,
         "cls",
         "Feature: `cls` token or `mean` of the patch tokens (after the final norm).",
         {},
         {},
         {"cls", "mean"}});
  s.add({"knn.batch_size", T::kInt, "256", "Images per feature-extraction forward.", 1});
  s.add({"knn.chunk_size", T::kInt, "256", "Test features per similarity chunk (bounds memory).", 1});
  register_limit_keys(s, "knn");
}

}  // namespace semaim::tasks
