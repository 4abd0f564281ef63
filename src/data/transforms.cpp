// RandomResizedCrop / flip / normalize (torchvision semantics), the eval resize + center crop, mmseg's Pad
// and timm's RandAugment / RandomErasing (randaugment.cpp), on OpenCV views of the CHW planes; method.md §8
// augmentation. Results are written straight into the output.
#include "semaim/data/transforms.h"

#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>
#include <set>

#include "semaim/core/errors.h"
#include "semaim/core/rng.h"
#include "semaim/data/det_transforms.h"
#include "semaim/data/randaugment.h"
#include "semaim/data/seg_transforms.h"

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

// The stages in the order a list must follow; the record applies its steps in this order too.
enum class Kind { kSizing, kFlip, kPad, kPixel, kNormalize, kTensor };

struct NameInfo {
  const char* name;
  Kind kind;
};
constexpr NameInfo kNames[] = {{"random_resized_crop", Kind::kSizing},
                               {"resize", Kind::kSizing},
                               {"center_crop", Kind::kSizing},
                               {"random_resize", Kind::kSizing},
                               {"random_crop", Kind::kSizing},
                               {"large_scale_jitter", Kind::kSizing},
                               {"resize_fit", Kind::kSizing},
                               {"hflip", Kind::kFlip},
                               {"pad", Kind::kPad},
                               {"rand_augment", Kind::kPixel},
                               {"photometric", Kind::kPixel},
                               {"normalize", Kind::kNormalize},
                               {"random_erasing", Kind::kTensor}};

class RandomResizedCrop final : public GeometryTransform {
 public:
  RandomResizedCrop(int64_t out, std::array<double, 2> scale, std::array<double, 2> ratio)
      : out_(out), scale_(scale), ratio_(ratio) {}
  std::string name() const override { return "random_resized_crop"; }
  void plan(Geometry& g, std::mt19937_64& rng) const override {
    g.box = random_resized_crop_params(g.box.height, g.box.width, scale_, ratio_, rng);
    g.resize_h = g.resize_w = out_;
    g.window = CropBox{0, 0, out_, out_};
  }

 private:
  int64_t out_;
  std::array<double, 2> scale_, ratio_;
};

// torchvision Resize(int): the shorter side to size, the longer side scaled and truncated.
class Resize final : public GeometryTransform {
 public:
  explicit Resize(int64_t size) : size_(size) {}
  std::string name() const override { return "resize"; }
  void plan(Geometry& g, std::mt19937_64&) const override {
    const int64_t h = g.box.height, w = g.box.width;
    g.resize_h = h <= w ? size_ : size_ * h / w;
    g.resize_w = h <= w ? size_ * w / h : size_;
    g.window = CropBox{0, 0, g.resize_h, g.resize_w};
  }

 private:
  int64_t size_;
};

// torchvision CenterCrop: the offset rounds half to even, as Python's round().
class CenterCrop final : public GeometryTransform {
 public:
  explicit CenterCrop(int64_t size) : size_(size) {}
  std::string name() const override { return "center_crop"; }
  void plan(Geometry& g, std::mt19937_64&) const override {
    if (g.window.height < size_ || g.window.width < size_) {
      throw InputError("augment.center_crop", "image of " + std::to_string(g.window.height) + "x" +
                                                  std::to_string(g.window.width) +
                                                  " is smaller than the crop " + std::to_string(size_));
    }
    const int64_t top = round_half_even(static_cast<double>(g.window.height - size_) / 2.0);
    const int64_t left = round_half_even(static_cast<double>(g.window.width - size_) / 2.0);
    g.window = CropBox{g.window.top + top, g.window.left + left, size_, size_};
  }

 private:
  int64_t size_;
};

// torchvision RandomHorizontalFlip: one uniform draw per sample, right after the sizing draws; the record
// says whether the window is mirrored (finish mirrors the pixels, the targets follow the record).
class HorizontalFlip final : public GeometryTransform {
 public:
  explicit HorizontalFlip(double p) : p_(p) {}
  std::string name() const override { return "hflip"; }
  void plan(Geometry& g, std::mt19937_64& rng) const override { g.flipped = core::uniform01(rng) < p_; }

 private:
  double p_;
};

// mmseg Pad(size): the window at the top left of a size x size canvas; the image's padding is image_fill
// (0 after normalization, where mmseg's and mmdet's data preprocessors pad), the label map's the ignore
// index.
class Pad final : public GeometryTransform {
 public:
  Pad(int64_t size, int64_t label_fill) : size_(size), label_fill_(label_fill) {}
  std::string name() const override { return "pad"; }
  void plan(Geometry& g, std::mt19937_64&) const override {
    if (g.window.height > size_ || g.window.width > size_) {
      throw InputError("augment.pad", "window of " + std::to_string(g.window.height) + "x" +
                                          std::to_string(g.window.width) + " is larger than the pad size " +
                                          std::to_string(size_));
    }
    g.pad_h = g.pad_w = size_;
    g.label_fill = label_fill_;
  }

 private:
  int64_t size_, label_fill_;
};

std::vector<std::string> default_names(bool random) {
  if (random) return {"random_resized_crop", "hflip", "normalize"};
  return {"resize", "center_crop", "normalize"};
}

const NameInfo& name_info(const std::string& name) {
  for (const NameInfo& k : kNames) {
    if (name == k.name) return k;
  }
  std::string known;
  for (const NameInfo& k : kNames) known += std::string(known.empty() ? "" : ", ") + k.name;
  throw InputError("augment.transforms", "unknown transform '" + name + "' (known: " + known + ")");
}

// The geometry step a name stands for, or null for the other stages.
std::shared_ptr<const GeometryTransform> make_geometry(const std::string& name, const AugmentConfig& cfg) {
  if (name == "random_resized_crop")
    return std::make_shared<RandomResizedCrop>(cfg.out_size, cfg.scale, cfg.ratio);
  if (name == "resize") {
    const auto size =
        static_cast<int64_t>(std::floor(static_cast<double>(cfg.out_size) / cfg.eval_crop_pct + 1e-9));
    return std::make_shared<Resize>(size);
  }
  if (name == "center_crop") return std::make_shared<CenterCrop>(cfg.out_size);
  if (name == "random_resize") return make_random_resize(cfg);
  if (name == "random_crop") return make_random_crop(cfg);
  if (name == "large_scale_jitter") return make_large_scale_jitter({cfg.out_size, cfg.lsj_scale});
  if (name == "resize_fit") return make_resize_fit(cfg.out_size);
  if (name == "hflip") return std::make_shared<HorizontalFlip>(cfg.hflip);
  if (name == "pad")
    return std::make_shared<Pad>(cfg.pad_size > 0 ? cfg.pad_size : cfg.out_size, cfg.ignore_index);
  return nullptr;
}

// timm's img_mean hparam: the normalization mean * 255, rounded (half to even, as Python's round) and capped.
std::vector<uint8_t> fill_color(const AugmentConfig& cfg, int64_t channels) {
  std::vector<uint8_t> fill;
  for (int64_t c = 0; c < channels; ++c) {
    const double m = cfg.mean[cfg.mean.size() == 1 ? 0 : static_cast<size_t>(c)];
    fill.push_back(static_cast<uint8_t>(std::clamp<int64_t>(round_half_even(255.0 * m), 0, 255)));
  }
  return fill;
}

ErasingSpec erasing_spec(const AugmentConfig& cfg) {
  ErasingSpec e;
  e.prob = cfg.reprob;
  e.mode = cfg.remode;
  e.max_count = cfg.recount;
  return e;
}

// The pixel or tensor transform a name stands for, added to the pipeline's lists.
void add_sample_transform(const std::string& name, const AugmentConfig& cfg, int64_t channels,
                          std::vector<std::shared_ptr<const PixelTransform>>& pixel,
                          std::vector<std::shared_ptr<const TensorTransform>>& tensor) {
  if (name == "rand_augment") {
    if (channels != 1 && channels != 3) {
      throw InputError("augment.transforms", "rand_augment needs 1- or 3-channel images, got " +
                                                 std::to_string(channels) + " channels");
    }
    const Resample r = cfg.interpolation == "bilinear" ? Resample::kBilinear : Resample::kBicubic;
    pixel.push_back(
        std::make_shared<RandAugment>(parse_rand_augment(cfg.auto_augment), fill_color(cfg, channels), r));
  }
  if (name == "photometric") {
    if (channels != 3) throw InputError("augment.transforms", "photometric needs 3-channel images");
    pixel.push_back(make_photometric());
  }
  if (name == "random_erasing") tensor.push_back(std::make_shared<RandomErasing>(erasing_spec(cfg)));
}

}  // namespace

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
  if (cfg.pad_size != 0 && cfg.pad_size < cfg.out_size) {
    fail("pad_size", "must be 0 (out_size) or at least out_size " + std::to_string(cfg.out_size) + ", got " +
                         std::to_string(cfg.pad_size));
  }
  const auto per_channel = static_cast<size_t>(channels);
  if (cfg.mean.size() != cfg.std.size() || (cfg.mean.size() != 1 && cfg.mean.size() != per_channel)) {
    fail("mean", "mean and std need 1 or " + std::to_string(channels) + " values, got " +
                     std::to_string(cfg.mean.size()) + " and " + std::to_string(cfg.std.size()));
  }
  for (double s : cfg.std) {
    if (!(s > 0)) fail("std", "must be positive");
  }
  if (!(cfg.seg_scale[0] >= 1 && cfg.seg_scale[1] >= 1)) fail("seg_scale", "both edges must be at least 1");
  if (!(cfg.ratio_range[0] > 0 && cfg.ratio_range[0] <= cfg.ratio_range[1]))
    fail("ratio_range", "need 0 < ratio_range[0] <= ratio_range[1]");
  if (!(cfg.cat_max_ratio > 0 && cfg.cat_max_ratio <= 1)) fail("cat_max_ratio", "need 0 < cat_max_ratio <= 1");
  cv_interpolation(cfg.interpolation);
  parse_rand_augment(cfg.auto_augment);
  RandomErasing{erasing_spec(cfg)};  // checks reprob, remode, recount
}

CropBox random_resized_crop_params(int64_t height, int64_t width, const std::array<double, 2>& scale,
                                   const std::array<double, 2>& ratio, std::mt19937_64& rng) {
  const double area = static_cast<double>(height * width);
  const double log_r0 = std::log(ratio[0]), log_r1 = std::log(ratio[1]);
  for (int attempt = 0; attempt < kCropAttempts; ++attempt) {
    const double target_area = area * (scale[0] + (scale[1] - scale[0]) * core::uniform01(rng));
    const double aspect = std::exp(log_r0 + (log_r1 - log_r0) * core::uniform01(rng));
    const int64_t w = round_half_even(std::sqrt(target_area * aspect));
    const int64_t h = round_half_even(std::sqrt(target_area / aspect));
    if (w > 0 && w <= width && h > 0 && h <= height) {
      const int64_t top = core::uniform_int(rng, height - h + 1);
      const int64_t left = core::uniform_int(rng, width - w + 1);
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

const std::vector<std::string>& transform_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> v;
    for (const NameInfo& n : kNames) v.emplace_back(n.name);
    return v;
  }();
  return names;
}

Pipeline Pipeline::build(const AugmentConfig& cfg, int64_t channels) {
  validate_augment(cfg, channels);
  Pipeline p;
  p.out_ = cfg.out_size;
  p.channels_ = channels;
  p.interpolation_ = cv_interpolation(cfg.interpolation);
  const std::vector<std::string> names = cfg.transforms.empty() ? default_names(cfg.random) : cfg.transforms;
  Kind last = Kind::kSizing;
  std::string joined, sizing;
  std::set<std::string> seen;
  for (const std::string& n : names) {
    joined += (joined.empty() ? "" : ", ") + n;
    const NameInfo& info = name_info(n);
    if (!seen.insert(n).second) throw InputError("augment.transforms", n + " listed twice");
    if (static_cast<int>(info.kind) < static_cast<int>(last)) {
      throw InputError("augment.transforms",
                       "'" + n + "' is out of order in [" + joined +
                           "]: geometry transforms first (sizing, then hflip, then pad), then "
                           "rand_augment, then normalize, then random_erasing");
    }
    last = info.kind;
    if (info.kind == Kind::kSizing) sizing += (sizing.empty() ? "" : ", ") + n;
    if (n == "pad" && cfg.pad_size > 0) p.out_ = cfg.pad_size;
    if (n == "normalize") p.normalize_ = true;
    if (auto g = make_geometry(n, cfg)) p.geometry_.push_back(std::move(g));
    add_sample_transform(n, cfg, channels, p.pixel_, p.tensor_);
  }
  const bool seg_crop = sizing == "random_resize, random_crop" || sizing == "random_crop";
  // The detection steps crop and pad to out_size x out_size themselves.
  const bool det_square = sizing == "large_scale_jitter" || sizing == "resize_fit";
  if (sizing != "random_resized_crop" && sizing != "resize, center_crop" && sizing != "center_crop" && !seg_crop &&
      !det_square) {
    throw InputError("augment.transforms",
                     "geometry [" + sizing +
                         "] does not end at out_size x out_size; use "
                         "[random_resized_crop], [resize, center_crop], [center_crop], [random_resize, "
                         "random_crop] with pad, [large_scale_jitter] or [resize_fit]");
  }
  if (det_square && seen.count("pad"))
    throw InputError("augment.transforms", sizing + " pads to out_size itself: do not list pad");
  if (seg_crop && !seen.count("pad"))
    throw InputError("augment.transforms", "random_crop keeps windows smaller than out_size: list pad after it");
  for (int64_t c = 0; c < channels; ++c) {
    const size_t ci = cfg.mean.size() == 1 ? 0 : static_cast<size_t>(c);
    p.scale_.push_back(p.normalize_ ? static_cast<float>(1.0 / (255.0 * cfg.std[ci]))
                                    : static_cast<float>(1.0 / 255.0));
    p.shift_.push_back(p.normalize_ ? static_cast<float>(-cfg.mean[ci] / cfg.std[ci]) : 0.0f);
  }
  return p;
}

std::vector<std::string> Pipeline::names() const {
  std::vector<std::string> v;
  for (const auto& g : geometry_) v.push_back(g->name());
  for (const auto& t : pixel_) v.push_back(t->name());
  if (normalize_) v.emplace_back("normalize");
  for (const auto& t : tensor_) v.push_back(t->name());
  return v;
}

Geometry Pipeline::plan(int64_t height, int64_t width, std::mt19937_64& rng, const at::Tensor* label_map) const {
  Geometry g;
  g.src_h = g.resize_h = height;
  g.src_w = g.resize_w = width;
  g.box = g.window = CropBox{0, 0, height, width};
  for (const auto& t : geometry_) {
    if (label_map)
      t->plan_with_label(g, rng, *label_map);
    else
      t->plan(g, rng);
  }
  return g;
}

void Pipeline::finish(const cv::Mat& src, const CropBox& region, const Geometry& g, std::mt19937_64& rng,
                      float* dst) const {
  const cv::Mat roi = src(cv::Rect(static_cast<int>(region.left), static_cast<int>(region.top),
                                   static_cast<int>(region.width), static_cast<int>(region.height)));
  thread_local cv::Mat buffer, flipped;  // reused across samples of a thread: no allocation per sample
  cv::Mat resized = roi;
  if (roi.rows != g.resize_h || roi.cols != g.resize_w) {
    // A source box shrunk by 2x or more in both directions is area-averaged (antialiased, as PIL's resize is;
    // the configured kernel would alias), also when a reduced-scale decode already did part of the shrinking;
    // anything else uses the configured kernel.
    const bool shrink = g.box.height >= 2 * g.resize_h && g.box.width >= 2 * g.resize_w;
    cv::resize(roi, buffer, cv::Size(static_cast<int>(g.resize_w), static_cast<int>(g.resize_h)), 0, 0,
               shrink ? cv::INTER_AREA : interpolation_);
    resized = buffer;
  }
  cv::Mat img = resized(cv::Rect(static_cast<int>(g.window.left), static_cast<int>(g.window.top),
                                 static_cast<int>(g.window.width), static_cast<int>(g.window.height)));
  if (g.flipped) {
    cv::flip(img, flipped, 1);
    img = flipped;
  }
  for (const auto& t : pixel_) t->apply(img, rng);
  const int64_t c = channels_, out = out_;
  if (img.rows != out || img.cols != out) std::fill(dst, dst + c * out * out, g.image_fill);
  for (int64_t y = 0; y < img.rows; ++y) {
    const uint8_t* row = img.ptr<uint8_t>(static_cast<int>(y));
    for (int64_t ch = 0; ch < c; ++ch) {
      const float scale = scale_[static_cast<size_t>(ch)], shift = shift_[static_cast<size_t>(ch)];
      float* drow = dst + (ch * out + y) * out;
      for (int64_t x = 0; x < img.cols; ++x) drow[x] = static_cast<float>(row[x * c + ch]) * scale + shift;
    }
  }
  for (const auto& t : tensor_) t->apply(dst, c, out, out, rng);
}

Geometry Pipeline::run(const cv::Mat& src, std::mt19937_64& rng, float* dst, const at::Tensor* label_map) const {
  const Geometry g = plan(src.rows, src.cols, rng, label_map);
  finish(src, g.box, g, rng, dst);
  return g;
}

cv::Mat hwc_view(const uint8_t* chw, int64_t channels, int64_t height, int64_t width) {
  const int h = static_cast<int>(height), w = static_cast<int>(width);
  auto* base = const_cast<uint8_t*>(chw);
  if (channels == 1) return cv::Mat(h, w, CV_8UC1, base);
  std::vector<cv::Mat> planes;
  for (int64_t c = 0; c < channels; ++c) planes.emplace_back(h, w, CV_8UC1, base + c * height * width);
  cv::Mat merged;
  cv::merge(planes, merged);
  return merged;
}

void transform_into(const uint8_t* src, int64_t channels, int64_t height, int64_t width,
                    const AugmentConfig& cfg, std::mt19937_64& rng, float* dst) {
  Pipeline::build(cfg, channels).run(hwc_view(src, channels, height, width), rng, dst);
}

at::Tensor transform_sample(const at::Tensor& img, const AugmentConfig& cfg, std::mt19937_64& rng) {
  if (img.dim() != 3 || img.scalar_type() != at::kByte) {
    throw InputError("transform_sample", "expected a (C, H, W) uint8 image, got " +
                                             std::to_string(img.dim()) + " dims of " +
                                             std::string(c10::toString(img.scalar_type())));
  }
  const Pipeline pipeline = Pipeline::build(cfg, img.size(0));
  const at::Tensor src = img.contiguous();
  const int64_t side = pipeline.out_size();
  at::Tensor out = at::empty({img.size(0), side, side}, at::TensorOptions().dtype(at::kFloat));
  pipeline.run(hwc_view(src.data_ptr<uint8_t>(), img.size(0), img.size(1), img.size(2)), rng,
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
  const Pipeline pipeline = Pipeline::build(eval_cfg, imgs.size(1));
  const at::Tensor src = imgs.contiguous();
  const int64_t n = imgs.size(0), c = imgs.size(1), h = imgs.size(2), w = imgs.size(3);
  const int64_t out = pipeline.out_size();
  at::Tensor result = at::empty({n, c, out, out}, at::TensorOptions().dtype(at::kFloat));
  std::mt19937_64 unused(0);
  const uint8_t* sp = src.data_ptr<uint8_t>();
  float* dp = result.data_ptr<float>();
  for (int64_t i = 0; i < n; ++i)
    pipeline.run(hwc_view(sp + i * c * h * w, c, h, w), unused, dp + i * c * out * out);
  return result;
}

}  // namespace semaim::data
