// Pixel and feature targets and their losses (method.md §7; reference AimViT.forward_pixel_loss,
// forward_feature_loss, GaussianConv2d, patchify).
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <string>

namespace semaim::models {

struct TargetConfig {
  int64_t blur_kernel = 9;
  double blur_sigma = 1.0;
  bool norm_pix = true;
  std::string loss = "l2";  // l2 | l1
  // pixel | inference (the online encoder's tokens) | ema (the EMA encoder's) | teacher (a frozen model's);
  // the three feature kinds use feature_loss and ignore the pixel fields above.
  std::string kind = "pixel";
  std::string teacher_path, teacher_format = "auto", teacher_act = "auto";
  int64_t teacher_width = 0, teacher_depth = 0, teacher_heads = 0;
  bool teacher_orders = true;  // the teacher's tokens drive the semantic pass (the reference's clip/dino)

  bool features() const { return kind != "pixel"; }
};

// Normalized Gaussian, centred at (k-1)/2, computed in float64. -> (k, k), sums to 1
at::Tensor gaussian_kernel2d(int64_t k, double sigma, at::ScalarType dtype = at::kFloat);
// Per-channel blur with zero padding; k <= 1 or sigma <= 0: identity. k must be odd otherwise.
// imgs: (N, C, H, W) -> (N, C, H, W)
at::Tensor gaussian_blur(const at::Tensor& imgs, int64_t k, double sigma);
// Same with an explicit kernel (e.g. a reference model's stored buffer). imgs: (N, C, H, W), kernel: (k, k)
// -> (N, C, H, W)
at::Tensor gaussian_blur(const at::Tensor& imgs, const at::Tensor& kernel);
// Within a patch the values are ordered (row, col, channel). imgs: (N, C, H, W) -> (N, L, p*p*C)
at::Tensor patchify(const at::Tensor& imgs, int64_t p);
// x: (N, gh*gw, p*p*c) -> (N, c, gh*p, gw*p)
at::Tensor unpatchify(const at::Tensor& x, int64_t p, int64_t c, int64_t gh, int64_t gw);
// (t - mean) / sqrt(var_unbiased + eps) over the last dim. t: (..., K) -> (..., K)
at::Tensor normalize_patches(const at::Tensor& t, double eps = 1e-6);
// Blurred, patchified, optionally per-patch normalized target; no grad, autocast off.
// imgs: (N, C, H, W) -> (N, L, p*p*C)
at::Tensor pixel_target(const at::Tensor& imgs, int64_t p, const TargetConfig& cfg);
// Same with an explicit blur kernel (cfg.blur_kernel/blur_sigma ignored). imgs: (N, C, H, W), kernel: (k, k)
// -> (N, L, p*p*C)
at::Tensor pixel_target(const at::Tensor& imgs, int64_t p, const TargetConfig& cfg, const at::Tensor& kernel);
// Mean over everything of (pred - target)^2 ("l2") or |pred - target| ("l1"), in the wider of the two
// dtypes. pred, target: same shape -> scalar
at::Tensor pixel_loss(const at::Tensor& pred, const at::Tensor& target, const std::string& loss);
// Reference forward_feature_loss: both sides L2-normalized per token (F.normalize, eps 1e-12), the squared
// difference summed over K (= 2 - 2 cos), averaged over tokens, in float32.
// pred: (N, L, K), target: (N, L, K) -> scalar
at::Tensor feature_loss(const at::Tensor& pred, const at::Tensor& target);

}  // namespace semaim::models
