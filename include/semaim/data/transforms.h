// Per-sample image transforms: torchvision's RandomResizedCrop + RandomHorizontalFlip + ToTensor + Normalize
// (SPEC §8 pretraining augmentation) and the evaluation resize + center crop, on OpenCV, no ATen per pixel.
#pragma once
#include <ATen/ATen.h>

#include <array>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace semaim::data {

struct AugmentConfig {
  int64_t out_size = 28;
  std::array<double, 2> scale{0.2, 1.0};  // RandomResizedCrop area fraction
  std::array<double, 2> ratio{3.0 / 4.0, 4.0 / 3.0};
  double hflip = 0.5;
  std::vector<double> mean{0.2860}, std{0.3530};  // per channel on [0,1] (Fashion-MNIST); size 1 broadcasts
  // false: evaluation transform (resize the shorter side to out_size / eval_crop_pct, center crop out_size)
  bool random = true;
  std::string interpolation = "bicubic";  // bicubic | bilinear
  double eval_crop_pct = 1.0;             // 0.875 gives ImageNet's resize 256 + center crop 224
};

// A crop box in pixels: rows [top, top + height), cols [left, left + width).
struct CropBox {
  int64_t top = 0, left = 0, height = 0, width = 0;
};

// Throws InputError("augment", fault) for a config no transform can run with, given the image channels.
void validate_augment(const AugmentConfig& cfg, int64_t channels);

// torchvision RandomResizedCrop.get_params: 10 attempts (area fraction uniform in scale, log-uniform
// aspect ratio), then the center-crop fallback clamped to ratio. All randomness from rng.
CropBox random_resized_crop_params(int64_t height, int64_t width, const std::array<double, 2>& scale,
                                   const std::array<double, 2>& ratio, std::mt19937_64& rng);

// One sample written into dst (C * out * out floats, CHW). src is a contiguous CHW uint8 image.
// Draws from rng only when cfg.random (crop parameters, then one uniform for the flip).
void transform_into(const uint8_t* src, int64_t channels, int64_t height, int64_t width,
                    const AugmentConfig& cfg, std::mt19937_64& rng, float* dst);

// img: (C, H, W) uint8 -> (C, out, out) float32, normalized.
at::Tensor transform_sample(const at::Tensor& img, const AugmentConfig& cfg, std::mt19937_64& rng);

// Evaluation transform of a batch (cfg.random is ignored; no randomness). imgs: (B, C, H, W) uint8 ->
// (B, C, out, out) float32.
at::Tensor transform_eval_batch(const at::Tensor& imgs, const AugmentConfig& cfg);

// A uniform double in [0, 1) and an integer in [0, n) from the raw engine output, so the draws are the
// same on every standard library (std::uniform_*_distribution are implementation-defined).
double uniform01(std::mt19937_64& rng);
int64_t uniform_int(std::mt19937_64& rng, int64_t n);

}  // namespace semaim::data
