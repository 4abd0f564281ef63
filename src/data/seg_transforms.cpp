// mmseg RandomResize(scale, ratio_range, keep_ratio=True), RandomCrop(crop_size, cat_max_ratio) and
// PhotoMetricDistortion (mmseg/datasets/transforms), drawing from the sample's generator.
#include "semaim/data/seg_transforms.h"

#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>

#include "semaim/core/errors.h"
#include "semaim/core/rng.h"

namespace semaim::data {

std::pair<int64_t, int64_t> rescale_keep_ratio(int64_t h, int64_t w, double scale_a, double scale_b) {
  const double long_edge = std::max(scale_a, scale_b), short_edge = std::min(scale_a, scale_b);
  const double f = std::min(long_edge / static_cast<double>(std::max(h, w)),
                            short_edge / static_cast<double>(std::min(h, w)));
  return {std::max<int64_t>(1, static_cast<int64_t>(static_cast<double>(h) * f + 0.5)),
          std::max<int64_t>(1, static_cast<int64_t>(static_cast<double>(w) * f + 0.5))};
}

namespace {

double uniform(std::mt19937_64& rng, double lo, double hi) { return lo + (hi - lo) * core::uniform01(rng); }

// RandomResize: target scale = seg_scale * U(ratio_range), then the whole image rescaled to fit it.
class RandomResize final : public GeometryTransform {
 public:
  RandomResize(std::array<double, 2> scale, std::array<double, 2> ratio) : scale_(scale), ratio_(ratio) {}
  std::string name() const override { return "random_resize"; }
  void plan(Geometry& g, std::mt19937_64& rng) const override {
    const double r = uniform(rng, ratio_[0], ratio_[1]);
    // mmseg casts the scaled target to int before rescaling.
    const auto [h, w] = rescale_keep_ratio(g.box.height, g.box.width, std::floor(scale_[0] * r),
                                           std::floor(scale_[1] * r));
    g.resize_h = h;
    g.resize_w = w;
    g.window = CropBox{0, 0, h, w};
  }

 private:
  std::array<double, 2> scale_, ratio_;
};

// RandomCrop: a crop_size window of the resized image (smaller sides kept whole); with a label map and
// cat_max_ratio < 1, up to 10 windows are redrawn while one class covers cat_max_ratio or more of the window's
// labelled pixels (or only one class is present), and the last one drawn is kept, as mmseg does.
class RandomCrop final : public GeometryTransform {
 public:
  RandomCrop(int64_t crop, double cat_max_ratio, int64_t ignore_index)
      : crop_(crop), cat_max_ratio_(cat_max_ratio), ignore_(ignore_index) {}
  std::string name() const override { return "random_crop"; }
  void plan(Geometry& g, std::mt19937_64& rng) const override { g.window = draw(g, rng); }
  void plan_with_label(Geometry& g, std::mt19937_64& rng, const at::Tensor& label) const override {
    g.window = draw(g, rng);
    if (cat_max_ratio_ >= 1.0) return;
    for (int attempt = 0; attempt < 10; ++attempt) {
      if (spread_enough(g, label)) return;
      g.window = draw(g, rng);
    }
  }

 private:
  CropBox draw(const Geometry& g, std::mt19937_64& rng) const {
    const int64_t h = std::min(crop_, g.resize_h), w = std::min(crop_, g.resize_w);
    return CropBox{core::uniform_int(rng, g.resize_h - h + 1), core::uniform_int(rng, g.resize_w - w + 1), h, w};
  }
  // The window's labels (nearest source pixels, as the label map will be sampled) are spread over classes.
  bool spread_enough(const Geometry& g, const at::Tensor& label) const {
    Geometry probe = g;
    probe.flipped = false;
    probe.pad_h = probe.pad_w = 0;
    const auto [rows, cols] = nearest_source_indices(probe);
    const at::Tensor window = label.index_select(0, rows).index_select(1, cols).reshape(-1).to(at::kLong);
    at::Tensor counts = at::bincount(window.masked_select(window != ignore_), {}, 256);
    counts = counts.masked_select(counts > 0);
    if (counts.numel() < 2) return false;
    return counts.max().item<double>() / counts.sum().item<double>() < cat_max_ratio_;
  }
  int64_t crop_;
  double cat_max_ratio_;
  int64_t ignore_;
};

// uint8 arithmetic as mmseg's convert(): float, clip to [0, 255], truncate.
void convert(cv::Mat& m, double alpha, double beta) { m.convertTo(m, CV_32F, alpha, beta); m.convertTo(m, CV_8U); }

// PhotoMetricDistortion: brightness, then contrast first or last (a coin), saturation and hue in HSV; each
// applied with probability 0.5, on the RGB window (OpenCV's 8-bit HSV: hue in [0, 180)).
class Photometric final : public PixelTransform {
 public:
  std::string name() const override { return "photometric"; }
  void apply(cv::Mat& img, std::mt19937_64& rng) const override {
    if (img.channels() != 3) throw InputError("augment.transforms", "photometric needs 3-channel images");
    cv::Mat out = img.clone();
    auto coin = [&] { return core::uniform_int(rng, 2) == 1; };
    if (coin()) convert(out, 1.0, uniform(rng, -32, 32));
    const bool contrast_first = coin();
    auto contrast = [&] {
      if (coin()) convert(out, uniform(rng, 0.5, 1.5), 0.0);
    };
    if (contrast_first) contrast();
    if (coin()) {  // saturation
      cv::Mat hsv;
      cv::cvtColor(out, hsv, cv::COLOR_RGB2HSV);
      std::vector<cv::Mat> ch;
      cv::split(hsv, ch);
      convert(ch[1], uniform(rng, 0.5, 1.5), 0.0);
      cv::merge(ch, hsv);
      cv::cvtColor(hsv, out, cv::COLOR_HSV2RGB);
    }
    if (coin()) {  // hue: shift by an integer in [-18, 18), modulo 180
      cv::Mat hsv;
      cv::cvtColor(out, hsv, cv::COLOR_RGB2HSV);
      const int delta = static_cast<int>(core::uniform_int(rng, 36)) - 18;
      for (int y = 0; y < hsv.rows; ++y) {
        auto* p = hsv.ptr<uint8_t>(y);
        for (int x = 0; x < hsv.cols; ++x) p[3 * x] = static_cast<uint8_t>(((p[3 * x] + delta) % 180 + 180) % 180);
      }
      cv::cvtColor(hsv, out, cv::COLOR_HSV2RGB);
    }
    if (!contrast_first) contrast();
    img = out;
  }
};

}  // namespace

std::shared_ptr<const GeometryTransform> make_random_resize(const AugmentConfig& cfg) {
  return std::make_shared<RandomResize>(cfg.seg_scale, cfg.ratio_range);
}
std::shared_ptr<const GeometryTransform> make_random_crop(const AugmentConfig& cfg) {
  return std::make_shared<RandomCrop>(cfg.out_size, cfg.cat_max_ratio, cfg.ignore_index);
}
std::shared_ptr<const PixelTransform> make_photometric() { return std::make_shared<Photometric>(); }

}  // namespace semaim::data
