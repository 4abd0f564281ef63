// RandomResizedCrop / flip / normalize (torchvision semantics) and the eval resize + center crop, on
// OpenCV views of the CHW planes; SPEC §8 augmentation. Results are written straight into the output.
#include "semaim/data/transforms.h"

#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include <cmath>

#include "semaim/config/errors.h"

namespace semaim::data {
namespace {

constexpr int kCropAttempts = 10;

int cv_interpolation(const std::string& name) {
  if (name == "bicubic") return cv::INTER_CUBIC;
  if (name == "bilinear") return cv::INTER_LINEAR;
  throw InputError("augment.interpolation", "unknown interpolation '" + name + "' (bicubic | bilinear)");
}

// Python's round(): half to even, which std::nearbyint gives in the default rounding mode.
int64_t round_half_even(double v) { return static_cast<int64_t>(std::nearbyint(v)); }

// Resizes box of every channel plane to (out_h, out_w), then writes the normalized (and optionally mirrored)
// window [top, top+out) x [left, left+out) of the result into dst. src: (C, H, W) -> dst: (C, out, out)
void resize_normalize(const uint8_t* src, int64_t channels, int64_t height, int64_t width, const CropBox& box,
                      int64_t out_h, int64_t out_w, int64_t top, int64_t left, const AugmentConfig& cfg,
                      bool flip, float* dst) {
  const int64_t out = cfg.out_size;
  const int interp = cv_interpolation(cfg.interpolation);
  cv::Mat resized;
  for (int64_t c = 0; c < channels; ++c) {
    const uint8_t* plane = src + c * height * width + box.top * width + box.left;
    // A view with the plane's row stride: no copy of the crop.
    const cv::Mat view(static_cast<int>(box.height), static_cast<int>(box.width), CV_8UC1,
                       const_cast<uint8_t*>(plane), static_cast<size_t>(width));
    const cv::Mat* img = &view;
    if (out_h != box.height || out_w != box.width) {
      cv::resize(view, resized, cv::Size(static_cast<int>(out_w), static_cast<int>(out_h)), 0, 0, interp);
      img = &resized;
    }
    const size_t ci = cfg.mean.size() == 1 ? 0 : static_cast<size_t>(c);
    const float scale = static_cast<float>(1.0 / (255.0 * cfg.std[ci]));
    const float shift = static_cast<float>(-cfg.mean[ci] / cfg.std[ci]);
    float* dplane = dst + c * out * out;
    for (int64_t y = 0; y < out; ++y) {
      const uint8_t* row = img->ptr<uint8_t>(static_cast<int>(top + y)) + left;
      float* drow = dplane + y * out;
      if (flip) {
        for (int64_t x = 0; x < out; ++x) drow[out - 1 - x] = static_cast<float>(row[x]) * scale + shift;
      } else {
        for (int64_t x = 0; x < out; ++x) drow[x] = static_cast<float>(row[x]) * scale + shift;
      }
    }
  }
}

}  // namespace

double uniform01(std::mt19937_64& rng) { return static_cast<double>(rng() >> 11) * 0x1.0p-53; }

int64_t uniform_int(std::mt19937_64& rng, int64_t n) {
  return n <= 1 ? 0 : static_cast<int64_t>(rng() % static_cast<uint64_t>(n));
}

void validate_augment(const AugmentConfig& cfg, int64_t channels) {
  auto fail = [](const std::string& key, const std::string& fault) {
    throw InputError("augment." + key, fault);
  };
  if (cfg.out_size <= 0) fail("out_size", "must be positive, got " + std::to_string(cfg.out_size));
  if (!(cfg.scale[0] > 0 && cfg.scale[0] <= cfg.scale[1] && cfg.scale[1] <= 1.0)) {
    fail("scale", "need 0 < scale[0] <= scale[1] <= 1");
  }
  if (!(cfg.ratio[0] > 0 && cfg.ratio[0] <= cfg.ratio[1])) fail("ratio", "need 0 < ratio[0] <= ratio[1]");
  if (!(cfg.hflip >= 0 && cfg.hflip <= 1)) fail("hflip", "probability outside [0, 1]");
  if (!(cfg.eval_crop_pct > 0 && cfg.eval_crop_pct <= 1))
    fail("eval_crop_pct", "need 0 < eval_crop_pct <= 1");
  const auto per_channel = static_cast<size_t>(channels);
  if (cfg.mean.size() != cfg.std.size() || (cfg.mean.size() != 1 && cfg.mean.size() != per_channel)) {
    fail("mean", "mean and std need 1 or " + std::to_string(channels) + " values, got " +
                     std::to_string(cfg.mean.size()) + " and " + std::to_string(cfg.std.size()));
  }
  for (double s : cfg.std) {
    if (!(s > 0)) fail("std", "must be positive");
  }
  cv_interpolation(cfg.interpolation);
}

CropBox random_resized_crop_params(int64_t height, int64_t width, const std::array<double, 2>& scale,
                                   const std::array<double, 2>& ratio, std::mt19937_64& rng) {
  const double area = static_cast<double>(height * width);
  const double log_r0 = std::log(ratio[0]), log_r1 = std::log(ratio[1]);
  for (int attempt = 0; attempt < kCropAttempts; ++attempt) {
    const double target_area = area * (scale[0] + (scale[1] - scale[0]) * uniform01(rng));
    const double aspect = std::exp(log_r0 + (log_r1 - log_r0) * uniform01(rng));
    const int64_t w = round_half_even(std::sqrt(target_area * aspect));
    const int64_t h = round_half_even(std::sqrt(target_area / aspect));
    if (w > 0 && w <= width && h > 0 && h <= height) {
      const int64_t top = uniform_int(rng, height - h + 1);
      const int64_t left = uniform_int(rng, width - w + 1);
      return CropBox{top, left, h, w};
    }
  }
  // Fallback: the whole image, clipped to the allowed aspect range, centered.
  const double in_ratio = static_cast<double>(width) / static_cast<double>(height);
  int64_t w = width, h = height;
  if (in_ratio < ratio[0]) {
    h = std::max<int64_t>(1, round_half_even(static_cast<double>(w) / ratio[0]));
  } else if (in_ratio > ratio[1]) {
    w = std::max<int64_t>(1, round_half_even(static_cast<double>(h) * ratio[1]));
  }
  return CropBox{(height - h) / 2, (width - w) / 2, h, w};
}

void transform_into(const uint8_t* src, int64_t channels, int64_t height, int64_t width,
                    const AugmentConfig& cfg, std::mt19937_64& rng, float* dst) {
  const int64_t out = cfg.out_size;
  if (cfg.random) {
    const CropBox box = random_resized_crop_params(height, width, cfg.scale, cfg.ratio, rng);
    const bool flip = uniform01(rng) < cfg.hflip;
    resize_normalize(src, channels, height, width, box, out, out, 0, 0, cfg, flip, dst);
    return;
  }
  // torchvision Resize(int): shorter side to size, longer side truncated; then CenterCrop rounds the offset.
  const auto size = static_cast<int64_t>(std::floor(static_cast<double>(out) / cfg.eval_crop_pct + 1e-9));
  int64_t new_h = size, new_w = size;
  if (height <= width) {
    new_w = size * width / height;
  } else {
    new_h = size * height / width;
  }
  const int64_t top = round_half_even(static_cast<double>(new_h - out) / 2.0);
  const int64_t left = round_half_even(static_cast<double>(new_w - out) / 2.0);
  resize_normalize(src, channels, height, width, CropBox{0, 0, height, width}, new_h, new_w, top, left, cfg,
                   false, dst);
}

at::Tensor transform_sample(const at::Tensor& img, const AugmentConfig& cfg, std::mt19937_64& rng) {
  if (img.dim() != 3 || img.scalar_type() != at::kByte) {
    throw InputError("transform_sample", "expected a (C, H, W) uint8 image, got " +
                                             std::to_string(img.dim()) + " dims of " +
                                             std::string(c10::toString(img.scalar_type())));
  }
  validate_augment(cfg, img.size(0));
  const at::Tensor src = img.contiguous();
  at::Tensor out =
      at::empty({img.size(0), cfg.out_size, cfg.out_size}, at::TensorOptions().dtype(at::kFloat));
  transform_into(src.data_ptr<uint8_t>(), img.size(0), img.size(1), img.size(2), cfg, rng,
                 out.data_ptr<float>());
  return out;
}

at::Tensor transform_eval_batch(const at::Tensor& imgs, const AugmentConfig& cfg) {
  if (imgs.dim() != 4 || imgs.scalar_type() != at::kByte) {
    throw InputError("transform_eval_batch", "expected a (B, C, H, W) uint8 batch, got " +
                                                 std::to_string(imgs.dim()) + " dims of " +
                                                 std::string(c10::toString(imgs.scalar_type())));
  }
  AugmentConfig eval_cfg = cfg;
  eval_cfg.random = false;
  validate_augment(eval_cfg, imgs.size(1));
  const at::Tensor src = imgs.contiguous();
  const int64_t n = imgs.size(0), c = imgs.size(1), h = imgs.size(2), w = imgs.size(3), out = cfg.out_size;
  at::Tensor result = at::empty({n, c, out, out}, at::TensorOptions().dtype(at::kFloat));
  std::mt19937_64 unused(0);
  const uint8_t* sp = src.data_ptr<uint8_t>();
  float* dp = result.data_ptr<float>();
  for (int64_t i = 0; i < n; ++i)
    transform_into(sp + i * c * h * w, c, h, w, eval_cfg, unused, dp + i * c * out * out);
  return result;
}

}  // namespace semaim::data
