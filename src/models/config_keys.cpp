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
}

}  // namespace semaim::models
