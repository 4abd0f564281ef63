// A frozen ViT teacher whose tokens are feature targets (method.md §7; reference predict_feature 'clip' and
// 'dino': engine_pretrain.forward_features_clip / forward_features_dino): an open_clip CLIP image tower or a
// timm ViT, read from a weights file.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "semaim/models/layers.h"
#include "semaim/models/vit.h"

namespace semaim::models {

struct TeacherOptions {
  std::string format = "auto";  // auto | open_clip | timm; auto reads the key names
  std::string act =
      "auto";  // auto | gelu | quick_gelu; auto = quick_gelu for open_clip (OpenAI CLIP), gelu for timm
  // 0 = read from the file; otherwise the file's shapes must agree.
  int64_t width = 0, depth = 0;
  int64_t heads = 0;  // 0 = width / 64 (the head width of every CLIP and timm ViT-S/B/L)
};

// The shapes read from a teacher file.
struct TeacherArch {
  std::string format;  // open_clip | timm
  int64_t in_chans = 0, patch_size = 0, width = 0, depth = 0, heads = 0, mlp_hidden = 0;
  int64_t out_dim = 0;  // the features' width: CLIP's projection width, else `width`
  Grid grid;            // the grid of the file's position table
  bool quick_gelu = false;
};

class Teacher {
 public:
  // Reads the teacher at `path` (safetensors, or a torch.save .pth) for a student whose patch grid is `grid`:
  // the position table is resampled to it when the file's grid differs. A missing file, keys of neither
  // format, an unsupported or missing key, or options that disagree with the shapes -> InputError naming the
  // file and the fault.
  Teacher(const std::string& path, const TeacherOptions& opts, Grid grid);
  // Every token after the final norm (and CLIP's projection), computed without grad. The image is resized
  // (bicubic) to grid * the teacher's patch size when its size differs; a one-channel image is repeated over
  // a three-channel teacher's channels. imgs: (N, C, H, W) -> (N, 1 + grid.h*grid.w, out_dim)
  at::Tensor forward(const at::Tensor& imgs);
  void to(at::Device device);
  const TeacherArch& arch() const { return arch_; }
  int64_t out_dim() const { return arch_.out_dim; }

 private:
  // x: (N, 1+L, W) -> (N, 1+L, W)
  at::Tensor clip_block(const at::Tensor& x, int64_t i) const;
  // imgs: (N, C, gh*p, gw*p) -> (N, 1+L, out_dim)
  at::Tensor clip_forward(const at::Tensor& imgs) const;
  const at::Tensor& w(const std::string& key) const { return weights_.at(key); }

  std::string path_;
  TeacherArch arch_;
  Grid grid_;
  std::map<std::string, at::Tensor> weights_;  // open_clip: the image tower's tensors, `visual.` stripped
  std::shared_ptr<VitEncoderImpl> vit_;        // timm
};

// The teacher's format from the key names: open_clip (visual.conv1.weight), timm (patch_embed.proj.weight and
// blocks.0.attn.qkv.weight), or "" for neither.
std::string detect_teacher_format(const std::map<std::string, at::Tensor>& weights);

}  // namespace semaim::models
