// Per-sample image transforms as composable objects: torchvision's RandomResizedCrop, Resize, CenterCrop,
// RandomHorizontalFlip and ToTensor + Normalize (method.md §8 augmentation and the evaluation transform),
// mmseg's Pad, and timm's RandAugment and RandomErasing (randaugment.h), on OpenCV, no ATen per pixel. A
// Pipeline is built from a list of names (config data.transforms / data.eval_transforms) with parameters from
// AugmentConfig; its geometric steps leave a record (geometry.h) that targets follow.
#pragma once
#include <ATen/ATen.h>
#include <opencv2/core/mat.hpp>

#include <array>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "semaim/data/geometry.h"

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
  // Transform names in order; empty: the default for `random` (train: random_resized_crop, hflip,
  // normalize; eval: resize, center_crop, normalize).
  std::vector<std::string> transforms;
  int64_t pad_size = 0;        // `pad`: side of the square canvas the window is padded to (0: out_size)
  int64_t ignore_index = 255;  // `pad`: label-map value of the padded pixels
  // `random_resize` (mmseg RandomResize): the image rescaled, aspect kept, to fit seg_scale (long, short edges)
  // times a ratio drawn from ratio_range. `random_crop`: an out_size window, redrawn up to 10 times while one
  // class covers cat_max_ratio of it (1: never).
  std::array<double, 2> seg_scale{2048, 512}, ratio_range{0.5, 2.0};
  double cat_max_ratio = 0.75;
  // `large_scale_jitter` (ViTDet LSJ, det_transforms.h): the image fitted into out_size x (a factor drawn from
  // lsj_scale), cropped or padded to out_size x out_size. `resize_fit`: its evaluation counterpart (longer side to
  // out_size, padded).
  std::array<double, 2> lsj_scale{0.1, 2.0};
  // `rand_augment`: timm's RandAugment string (fill: mean * 255 rounded; resampling: `interpolation`).
  std::string auto_augment = "rand-m9-mstd0.5-inc1";
  // `random_erasing`: timm's RandomErasing probability, fill mode (pixel | const | rand) and most boxes.
  double reprob = 0.25;
  std::string remode = "pixel";
  int64_t recount = 1;
};

// Names every transform the pipeline knows, for error messages and docs.
const std::vector<std::string>& transform_names();

// Decides the geometry from the source size and records it (RandomResizedCrop, Resize, CenterCrop; the flip
// decision; padding). Draws come in list order, all before any pixel transform draws.
class GeometryTransform {
 public:
  virtual ~GeometryTransform() = default;
  virtual std::string name() const = 0;
  virtual void plan(Geometry& g, std::mt19937_64& rng) const = 0;
  // The same with the sample's label map (source pixels) at hand, for steps that look at it (random_crop's
  // cat_max_ratio). Default: plan.
  virtual void plan_with_label(Geometry& g, std::mt19937_64& rng, const at::Tensor& label_map) const {
    plan(g, rng);
  }
};

// Works on the resized (and flipped) uint8 HWC window (RandAugment). img may view the source's pixels: a
// transform replaces it with a new image and never writes through it.
class PixelTransform {
 public:
  virtual ~PixelTransform() = default;
  virtual std::string name() const = 0;
  virtual void apply(cv::Mat& img, std::mt19937_64& rng) const = 0;
};

// Works on the float CHW sample after normalization (random erasing; batch mixing such as mixup/cutmix
// belongs in the loader's post_batch hook).
class TensorTransform {
 public:
  virtual ~TensorTransform() = default;
  virtual std::string name() const = 0;
  virtual void apply(float* chw, int64_t channels, int64_t height, int64_t width,
                     std::mt19937_64& rng) const = 0;
};

// geometry (box, resize, window, flip, pad) -> pixel transforms (rand_augment) -> to float (x/255, then
// normalize when listed; padded pixels image_fill) -> tensor transforms (random_erasing). Immutable once
// built, shared by all loader threads.
class Pipeline {
 public:
  // Throws InputError("augment...", fault) for unknown, repeated or misordered names, a geometry that does
  // not end at out_size x out_size (or pad_size x pad_size with `pad`), or parameters no transform can run
  // with given the image channels.
  static Pipeline build(const AugmentConfig& cfg, int64_t channels);

  // Side of the square output: cfg.out_size, or the pad size when `pad` is listed.
  int64_t out_size() const { return out_; }
  int64_t channels() const { return channels_; }
  // The names the pipeline runs, in order.
  std::vector<std::string> names() const;

  // Draws the geometry record for a source of (height, width) (all randomness of the geometry, the flip
  // included, comes from rng, before finish draws anything). label_map: (height, width), the sample's labels
  // in source pixels when it has them.
  Geometry plan(int64_t height, int64_t width, std::mt19937_64& rng, const at::Tensor* label_map = nullptr) const;
  // src holds the geometry's box at `region` (its own pixel coordinates; src may be a reduced-scale
  // decode of the box). Writes channels * out_size() * out_size() floats (CHW) into dst.
  void finish(const cv::Mat& src, const CropBox& region, const Geometry& g, std::mt19937_64& rng,
              float* dst) const;
  // plan + finish on an in-memory image: src (H, W) with `channels` interleaved channels. -> the record
  Geometry run(const cv::Mat& src, std::mt19937_64& rng, float* dst, const at::Tensor* label_map = nullptr) const;

 private:
  std::vector<std::shared_ptr<const GeometryTransform>> geometry_;
  std::vector<std::shared_ptr<const PixelTransform>> pixel_;
  std::vector<std::shared_ptr<const TensorTransform>> tensor_;
  std::vector<float> scale_, shift_;  // per channel: x * scale + shift == (x/255 - mean) / std
  int interpolation_ = 0;
  bool normalize_ = false;
  int64_t out_ = 0, channels_ = 0;
};

// Throws InputError("augment.<field>", fault) for a config no transform can run with, given the image
// channels, and InputError("data.auto_augment", fault) for a malformed RandAugment string (checked even when
// unlisted).
void validate_augment(const AugmentConfig& cfg, int64_t channels);

// torchvision RandomResizedCrop.get_params: 10 attempts (area fraction uniform in scale, log-uniform
// aspect ratio), then the center-crop fallback clamped to ratio. All randomness from rng.
CropBox random_resized_crop_params(int64_t height, int64_t width, const std::array<double, 2>& scale,
                                   const std::array<double, 2>& ratio, std::mt19937_64& rng);

// One sample written into dst (C * side * side floats, CHW; side = Pipeline::out_size()). src is a
// contiguous CHW uint8 image. Draws from rng only when cfg.random (crop parameters, then one uniform for the
// flip).
void transform_into(const uint8_t* src, int64_t channels, int64_t height, int64_t width,
                    const AugmentConfig& cfg, std::mt19937_64& rng, float* dst);

// img: (C, H, W) uint8 -> (C, side, side) float32, normalized (side = Pipeline::out_size()).
at::Tensor transform_sample(const at::Tensor& img, const AugmentConfig& cfg, std::mt19937_64& rng);

// Evaluation transform of a batch (cfg.random is ignored; no randomness). imgs: (B, C, H, W) uint8 ->
// (B, C, side, side) float32.
at::Tensor transform_eval_batch(const at::Tensor& imgs, const AugmentConfig& cfg);

// An (H, W) cv::Mat with C interleaved channels viewing or copying a contiguous CHW uint8 image.
cv::Mat hwc_view(const uint8_t* chw, int64_t channels, int64_t height, int64_t width);

}  // namespace semaim::data
