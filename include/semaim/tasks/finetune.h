// Image classification fine-tuning (MAE main_finetune + engine_finetune): a ViT classifier initialized from a
// pretrained encoder (finetune.init), AdamW with layer-wise lr decay, drop path, mixup / cutmix with soft
// targets or label smoothing, optional EMA, evaluation on the validation split every few epochs with the
// best checkpoint kept; the shared engine does the loop.
#pragma once
#include <string>

#include "semaim/config/config.h"
#include "semaim/engine/trained_run.h"
#include "semaim/data/mixup.h"

namespace semaim::tasks {

struct FinetuneOptions {
  std::string resume;  // "" | "auto" | a checkpoint path (as PretrainOptions::resume)
  bool quiet = false;
};

struct FinetuneResult : engine::TrainedRun {
  double top1 = 0, top5 = 0, val_loss = 0;  // the final evaluation (percent)
  double best_top1 = 0;                     // over every evaluation of the run's checkpoints
  double ema_top1 = -1;                     // the EMA model's final top-1 when finetune.ema (else -1)
  int64_t n_val = 0;
};

// The batch mixing of finetune.* (mixup, cutmix, cutmix_minmax, mixup_prob, mixup_switch_prob, smoothing) for
// `classes` classes, as the task reads it; the caller validates it when the run mixes.
data::MixupConfig mixup_config(const config::Config& cfg, int64_t classes);

// `semaim finetune`: the finetune.* section, initial weights from finetune.init.
FinetuneResult finetune(const config::Config& cfg, const FinetuneOptions& opts);

// What the reference linear probe (MAE main_linprobe) changes in the classification task: the linprobe.*
// section, a frozen encoder with BatchNorm (no affine) + Linear (std 0.01) on the chosen token, LARS or SGD,
// plain cross-entropy, no mixing; checkpoints and metrics under <run dir>/linprobe.
struct LinearProbeRun {
  std::string init;  // encoder weights (any file finetune.init accepts); "" = random initialization
  std::string subdir = "linprobe";
};
FinetuneResult linear_probe_reference(const config::Config& cfg, const LinearProbeRun& probe,
                                      const FinetuneOptions& opts);

}  // namespace semaim::tasks
