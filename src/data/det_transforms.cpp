// ViTDet's LSJ training augmentation and test resize (detectron2 transforms ResizeScale, FixedSizeCrop,
// ResizeShortestEdge; projects/ViTDet/configs/common/coco_loader_lsj.py) as geometry records.
#include "semaim/data/det_transforms.h"

#include <algorithm>
#include <cmath>

#include "semaim/core/errors.h"
#include "semaim/core/rng.h"

namespace semaim::data {
namespace {

// np.round: half to even (the default rounding mode of std::nearbyint).
int64_t round_half_even(double v) { return static_cast<int64_t>(std::nearbyint(v)); }

class LargeScaleJitter final : public GeometryTransform {
 public:
  explicit LargeScaleJitter(const LsjConfig& cfg) : cfg_(cfg) { validate_lsj(cfg_); }
  std::string name() const override { return "large_scale_jitter"; }
  void plan(Geometry& g, std::mt19937_64& rng) const override {
    const double scale = cfg_.scale[0] + (cfg_.scale[1] - cfg_.scale[0]) * core::uniform01(rng);
    const auto [h, w] = resize_scale_size(g.box.height, g.box.width, cfg_.size, scale);
    g.resize_h = h;
    g.resize_w = w;
    const double u = core::uniform01(rng);
    const int64_t ch = std::min(cfg_.size, h), cw = std::min(cfg_.size, w);
    g.window = CropBox{round_half_even(static_cast<double>(h - ch) * u),
                       round_half_even(static_cast<double>(w - cw) * u), ch, cw};
    g.pad_h = g.pad_w = cfg_.size;
  }

 private:
  LsjConfig cfg_;
};

class ResizeFit final : public GeometryTransform {
 public:
  explicit ResizeFit(int64_t size) : size_(size) {
    if (size_ < 1) throw InputError("data.lsj_size", "must be at least 1, got " + std::to_string(size_));
  }
  std::string name() const override { return "resize_fit"; }
  void plan(Geometry& g, std::mt19937_64&) const override {
    const auto [h, w] = shortest_edge_size(g.box.height, g.box.width, size_, size_);
    g.resize_h = std::min(h, size_);
    g.resize_w = std::min(w, size_);
    g.window = CropBox{0, 0, g.resize_h, g.resize_w};
    g.pad_h = g.pad_w = size_;
  }

 private:
  int64_t size_;
};

}  // namespace

void validate_lsj(const LsjConfig& cfg) {
  if (cfg.size < 1) throw InputError("data.lsj_size", "must be at least 1, got " + std::to_string(cfg.size));
  if (!(cfg.scale[0] > 0 && cfg.scale[0] <= cfg.scale[1] && std::isfinite(cfg.scale[1])))
    throw InputError("data.lsj_scale", "needs 0 < low <= high");
}

std::pair<int64_t, int64_t> resize_scale_size(int64_t h, int64_t w, int64_t size, double scale) {
  const double target = static_cast<double>(size) * scale;
  const double f = std::min(target / static_cast<double>(h), target / static_cast<double>(w));
  return {std::max<int64_t>(1, round_half_even(static_cast<double>(h) * f)),
          std::max<int64_t>(1, round_half_even(static_cast<double>(w) * f))};
}

std::pair<int64_t, int64_t> shortest_edge_size(int64_t h, int64_t w, int64_t short_edge, int64_t max_size) {
  const auto hd = static_cast<double>(h), wd = static_cast<double>(w), s = static_cast<double>(short_edge);
  const double scale = s / std::min(hd, wd);
  double nh = h < w ? s : scale * hd, nw = h < w ? scale * wd : s;
  if (std::max(nh, nw) > static_cast<double>(max_size)) {
    const double down = static_cast<double>(max_size) / std::max(nh, nw);
    nh *= down;
    nw *= down;
  }
  return {std::max<int64_t>(1, static_cast<int64_t>(nh + 0.5)),
          std::max<int64_t>(1, static_cast<int64_t>(nw + 0.5))};
}

std::shared_ptr<const GeometryTransform> make_large_scale_jitter(const LsjConfig& cfg) {
  return std::make_shared<LargeScaleJitter>(cfg);
}

std::shared_ptr<const GeometryTransform> make_resize_fit(int64_t size) {
  return std::make_shared<ResizeFit>(size);
}

void drop_vanished_instances(Target& t) {
  if (!t.masks.defined() || t.masks.size(0) == 0) return;
  const at::Tensor kept = t.masks.flatten(1).any(1).nonzero().squeeze(1);
  if (kept.size(0) == t.masks.size(0)) return;
  t.dropped_boxes += t.masks.size(0) - kept.size(0);
  t.boxes = t.boxes.index_select(0, kept);
  t.box_classes = t.box_classes.index_select(0, kept);
  t.masks = t.masks.index_select(0, kept);
}

}  // namespace semaim::data
