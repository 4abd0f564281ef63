// model.* and target.* keys (method.md §3, §4, §7); docs/configs.md documents them.
#include "semaim/models/config_keys.h"

namespace semaim::models {

void register_config_keys(config::Schema& s) {
  using T = config::ValueType;
  s.add_section("model");
  s.add({"model.name", T::kString, "aim_fmnist_patch4",
         "Registered model size (see docs/design.md): `aim_fmnist_patch4`, `aim_tiny_patch16`, "
         "`aim_small_patch16`, `aim_base_patch16`, `aim_large_patch16`."});
  s.add({"model.img_size", T::kInt, "0", "Input resolution; 0 = the registered size's.", 0, 4096});
  s.add({"model.in_chans", T::kInt, "0", "Input channels; 0 = the registered size's.", 0, 16});
  s.add({"model.embed_dim", T::kInt, "0", "Override of the width D; 0 = the registered size's.", 0, 8192});
  s.add({"model.depth", T::kInt, "0", "Override of the encoder depth; 0 = the registered size's.", 0, 256});
  s.add({"model.num_heads", T::kInt, "0", "Override of the head count; 0 = the registered size's.", 0, 256});
  s.add({"model.decoder_depth", T::kInt, "0",
         "Override of the query-stream depth (must divide the encoder depth); 0 = the registered size's.", 0,
         256});
  s.add({"model.head",
         T::kString,
         "mlp",
         "Prediction head: `mlp` (Linear-GELU-Linear) or `linear` (method.md §3).",
         {},
         {},
         {"mlp", "linear"}});
  s.add({"model.attention",
         T::kString,
         "causal",
         "`causal`: sorted tokens + SDPA is_causal (fast form, method.md §4); `dense`: the reference masks.",
         {},
         {},
         {"causal", "dense"}});

  s.add_section("target");
  s.add({"target.blur_kernel", T::kInt, "9",
         "Gaussian blur kernel size of the pixel target; 0 or 1 = no blur (method.md §7).", 0, 63});
  s.add({"target.blur_sigma", T::kFloat, "1.0", "Gaussian blur sigma.", 0.0, 100.0});
  s.add({"target.norm_pix", T::kBool, "true",
         "Per-patch normalization of the target (unbiased variance, eps 1e-6)."});
  s.add({"target.loss", T::kString, "l2", "Pixel loss.", {}, {}, {"l2", "l1"}});
  s.add({"target.kind",
         T::kString,
         "pixel",
         "What the model predicts (method.md §7, the reference's predict_feature): `pixel` (blurred, "
         "normalized patches), `inference` (the online encoder's final-normed tokens of the clean image, no "
         "grad), `ema` (the EMA encoder's; needs pretrain.ema) or `teacher` (a frozen model from "
         "target.teacher_path). Feature kinds use the loss 2 - 2 cos per token.",
         {},
         {},
         {"pixel", "inference", "ema", "teacher"}});
  s.add(
      {"target.teacher_path", T::kString, "\"\"",
       "Weights file of the frozen teacher (safetensors or .pth): an open_clip CLIP model (`visual.*` keys; "
       "the text tower is ignored) or a timm ViT (DINO). Read at start, never saved in checkpoints."});
  s.add({"target.teacher_format",
         T::kString,
         "auto",
         "Key names of the teacher file: `auto` (from the keys), `open_clip` or `timm`.",
         {},
         {},
         {"auto", "open_clip", "timm"}});
  s.add({"target.teacher_act",
         T::kString,
         "auto",
         "MLP activation of the teacher: `auto` (QuickGELU for open_clip, as OpenAI CLIP; GELU for timm), "
         "`gelu` (open_clip models trained without quick_gelu) or `quick_gelu`.",
         {},
         {},
         {"auto", "gelu", "quick_gelu"}});
  s.add({"target.teacher_width", T::kInt, "0", "Expected teacher width; 0 = read from the file.", 0, 16384});
  s.add({"target.teacher_depth", T::kInt, "0", "Expected teacher depth; 0 = read from the file.", 0, 1024});
  s.add({"target.teacher_heads", T::kInt, "0",
         "Teacher attention heads (not stored in the file); 0 = width / 64.", 0, 1024});
  s.add({"target.teacher_orders", T::kBool, "true",
         "With target.kind teacher: the teacher's cls-to-patch similarity drives the semantic pass (the "
         "reference for CLIP / DINO targets) instead of ordering.source_model."});
}

}  // namespace semaim::models
