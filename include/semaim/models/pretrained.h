// Pretrained encoder weights from the files users bring (issue 16, finetune.init): semaim checkpoints and
// exports, timm ViT safetensors, reference SemAIM / MAE torch.save checkpoints (MAE main_finetune's load).
#pragma once
#include <string>

#include "semaim/io/safetensors.h"
#include "semaim/models/vit.h"
#include "semaim/models/weights.h"

namespace semaim::models {

struct PretrainedOptions {
  std::string key;             // the dict of a .pth holding the weights; "" = model, state_dict, module, top
  bool allow_missing = false;  // encoder weights absent from the file keep their initial values
};

// The file's tensors by key: a torch.save archive (.pth, the state dict chosen as io::load_pth_state_dict
// does) or a safetensors file, with a `module.` prefix (DDP) stripped when every key has it. Neither
// format, unreadable or truncated -> InputError naming the file.
io::NamedTensors read_pretrained_weights(const std::string& path, const std::string& key = "");

// Loads the encoder weights of `path` into enc by timm key name; the position table is resampled when the
// grid differs. Keys that are not encoder keys (decoder_*, mask_token, query_blocks.*, prediction_head.*,
// fc_norm.* when enc has none ...) and head.* always (a fine-tuning head is new) are dropped and listed as
// unexpected; enc's own head.* is then missing, which allow_missing accepts. A file sharing no key with the
// encoder, an encoder key of another architecture (a shape mismatch, a block beyond the encoder's depth,
// layer scale), or a missing encoder key (unless allowed) -> InputError naming the file and the first such
// keys, before anything is copied.
LoadReport load_pretrained_encoder(VitEncoderImpl& enc, const std::string& path,
                                   const PretrainedOptions& options = {});

}  // namespace semaim::models
