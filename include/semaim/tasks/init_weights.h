// Initial weights of a fine-tuning model from the files users have (finetune.init): a semaim run directory,
// checkpoint manifest or weights file, a semaim encoder export, a timm ViT safetensors file, or a reference
// SemAIM / MAE `.pth` checkpoint; the encoder's keys by name, the position table resampled, a report logged.
#pragma once
#include <string>

#include "semaim/config/config.h"
#include "semaim/models/vit.h"
#include "semaim/models/vitdet.h"
#include "semaim/models/weights.h"

namespace semaim::tasks {

// Loads the encoder part of `path` into `enc` (its head and fc_norm stay as initialized) and logs the table
// of loaded, missing and unexpected keys. InputError naming the file for a file that is none of the above or
// an encoder of another architecture.
models::LoadReport load_init_encoder(models::VitEncoderImpl& enc, const std::string& path);

// The same for ViTDet's backbone (detect.init): the encoder's weights by timm name; its relative position tables
// are new (zero, as ViTDet initializes them) and the encoder's final norm is not used. `vit` is the encoder as
// pretrained (the position table's grid).
models::LoadReport load_init_backbone(models::VitDetBackboneImpl& net, const models::VitConfig& vit,
                                      const std::string& path);

// The encoder a frozen-feature evaluation (linear probe, k-NN) reads: the weights of `path`, or with
// random_init the configured model's initialization from run.seed (for aim_* names the two-stream model's
// encoder exactly as pretraining starts). `source` receives a description for reports.
models::VitEncoder frozen_encoder(const config::Config& cfg, bool random_init, const std::string& path,
                                  std::string& source);

}  // namespace semaim::tasks
