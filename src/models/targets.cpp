// Pixel and feature targets and their losses (method.md §7; reference AimViT.forward_pixel_loss,
// forward_feature_loss, GaussianConv2d, patchify).
#include "semaim/models/targets.h"

#include <ATen/ATen.h>
#include <c10/core/DispatchKeySet.h>
#include <c10/core/impl/LocalDispatchKeySet.h>
#include <torch/csrc/autograd/grad_mode.h>

#include <string>

#include "semaim/core/errors.h"

namespace semaim::models {

// -> (k, k)
at::Tensor gaussian_kernel2d(int64_t k, double sigma, at::ScalarType dtype) {
  if (k <= 0) throw InputError("target.blur_kernel", "must be positive, got " + std::to_string(k));
  if (!(sigma > 0.0)) throw InputError("target.blur_sigma", "must be positive, got " + std::to_string(sigma));
  // The 2D Gaussian is separable: normalizing the outer product equals normalizing each factor.
  auto x = at::arange(k, at::TensorOptions().dtype(at::kDouble)) - static_cast<double>((k - 1) / 2);
  auto g = at::exp(-(x * x) / (2.0 * sigma * sigma));
  g = g / g.sum();
  return at::outer(g, g).to(dtype);
}

// imgs: (N, C, H, W), kernel: (k, k) -> (N, C, H, W)
at::Tensor gaussian_blur(const at::Tensor& imgs, const at::Tensor& kernel) {
  if (imgs.dim() != 4)
    throw InputError("gaussian_blur", "expected (N, C, H, W), got " + c10::str(imgs.sizes()));
  if (kernel.dim() != 2 || kernel.size(0) != kernel.size(1) || kernel.size(0) % 2 == 0)
    throw InputError("gaussian_blur", "kernel must be (k, k) with k odd, got " + c10::str(kernel.sizes()));
  const int64_t c = imgs.size(1), k = kernel.size(0);
  auto w = kernel.to(imgs.options()).view({1, 1, k, k}).expand({c, 1, k, k}).contiguous();
  return at::conv2d(imgs, w, /*bias=*/{}, /*stride=*/1, /*padding=*/k / 2, /*dilation=*/1, /*groups=*/c);
}

// imgs: (N, C, H, W) -> (N, C, H, W)
at::Tensor gaussian_blur(const at::Tensor& imgs, int64_t k, double sigma) {
  if (k <= 1 || sigma <= 0.0) return imgs;
  if (k % 2 == 0) throw InputError("target.blur_kernel", "must be odd, got " + std::to_string(k));
  return gaussian_blur(imgs, gaussian_kernel2d(k, sigma, at::kDouble));
}

// imgs: (N, C, H, W) -> (N, L, p*p*C)
at::Tensor patchify(const at::Tensor& imgs, int64_t p) {
  if (imgs.dim() != 4 || p <= 0 || imgs.size(2) % p != 0 || imgs.size(3) % p != 0)
    throw InputError("patchify", "expected (N, C, H, W) with H, W multiples of patch " + std::to_string(p) +
                                     ", got " + c10::str(imgs.sizes()));
  const int64_t n = imgs.size(0), c = imgs.size(1), gh = imgs.size(2) / p, gw = imgs.size(3) / p;
  return imgs.reshape({n, c, gh, p, gw, p}).permute({0, 2, 4, 3, 5, 1}).reshape({n, gh * gw, p * p * c});
}

// x: (N, gh*gw, p*p*c) -> (N, c, gh*p, gw*p)
at::Tensor unpatchify(const at::Tensor& x, int64_t p, int64_t c, int64_t gh, int64_t gw) {
  if (x.dim() != 3 || x.size(1) != gh * gw || x.size(2) != p * p * c)
    throw InputError("unpatchify", "expected (N, " + std::to_string(gh * gw) + ", " +
                                       std::to_string(p * p * c) + "), got " + c10::str(x.sizes()));
  const int64_t n = x.size(0);
  return x.reshape({n, gh, gw, p, p, c}).permute({0, 5, 1, 3, 2, 4}).reshape({n, c, gh * p, gw * p});
}

// t: (..., K) -> (..., K)
at::Tensor normalize_patches(const at::Tensor& t, double eps) {
  auto [var, mean] = at::var_mean(t, {-1}, /*correction=*/1, /*keepdim=*/true);
  return (t - mean) / at::sqrt(var + eps);
}

// imgs: (N, C, H, W), kernel: (k, k) or undefined (no blur) -> (N, L, p*p*C)
static at::Tensor pixel_target_impl(const at::Tensor& imgs, int64_t p, const TargetConfig& cfg,
                                    const at::Tensor& kernel) {
  torch::NoGradGuard no_grad;
  // The target is a constant of the step: keep it in the input precision even under bf16 autocast.
  c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::autocast_dispatch_keyset);
  auto blurred = kernel.defined() ? gaussian_blur(imgs, kernel) : imgs;
  auto target = patchify(blurred, p);
  return cfg.norm_pix ? normalize_patches(target) : target;
}

// imgs: (N, C, H, W) -> (N, L, p*p*C)
at::Tensor pixel_target(const at::Tensor& imgs, int64_t p, const TargetConfig& cfg) {
  at::Tensor kernel;
  if (cfg.blur_kernel > 1 && cfg.blur_sigma > 0.0) {
    if (cfg.blur_kernel % 2 == 0)
      throw InputError("target.blur_kernel", "must be odd, got " + std::to_string(cfg.blur_kernel));
    kernel = gaussian_kernel2d(cfg.blur_kernel, cfg.blur_sigma, at::kDouble);
  }
  return pixel_target_impl(imgs, p, cfg, kernel);
}

// imgs: (N, C, H, W), kernel: (k, k) -> (N, L, p*p*C)
at::Tensor pixel_target(const at::Tensor& imgs, int64_t p, const TargetConfig& cfg,
                        const at::Tensor& kernel) {
  return pixel_target_impl(imgs, p, cfg, kernel);
}

// pred, target: same shape -> scalar
at::Tensor pixel_loss(const at::Tensor& pred, const at::Tensor& target, const std::string& loss) {
  if (pred.sizes() != target.sizes())
    throw InputError("pixel_loss", "prediction " + c10::str(pred.sizes()) + " and target " +
                                       c10::str(target.sizes()) + " differ in shape");
  auto diff = pred - target;  // promotes a bf16 prediction to the target's float32
  if (loss == "l2") return diff.square().mean();
  if (loss == "l1") return diff.abs().mean();
  throw InputError("target.loss", "unknown loss '" + loss + "' (expected l2 or l1)");
}

// pred: (N, L, K), target: (N, L, K) -> scalar
at::Tensor feature_loss(const at::Tensor& pred, const at::Tensor& target) {
  if (pred.sizes() != target.sizes())
    throw InputError("feature_loss", "prediction " + c10::str(pred.sizes()) + " and target " +
                                         c10::str(target.sizes()) + " differ in shape");
  auto unit = [](const at::Tensor& x) {  // F.normalize(x, p=2, dim=-1)
    const at::Tensor v = x.to(at::kFloat);
    return v / at::linalg_vector_norm(v, 2, {-1}, /*keepdim=*/true).clamp_min(1e-12);
  };
  return (unit(pred) - unit(target.detach())).square().sum(-1).mean();
}

}  // namespace semaim::models
