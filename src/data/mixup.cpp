// Mixup / CutMix in batch mode (timm.data.mixup: _params_per_batch, rand_bbox, rand_bbox_minmax,
// cutmix_bbox_and_lam, _mix_batch, mixup_target), with every draw from a caller-seeded generator.
#include "semaim/data/mixup.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "semaim/core/errors.h"
#include "semaim/core/rng.h"

namespace semaim::data {
namespace {

std::string num(double v) {
  std::string s = std::to_string(v);
  while (s.size() > 1 && s.back() == '0' && s[s.size() - 2] != '.') s.pop_back();
  return s;
}

// A uniform integer in [lo, hi) as numpy's randint(lo, hi); InputError when the range is empty.
int64_t randint(int64_t lo, int64_t hi, std::mt19937_64& rng, const std::string& what) {
  if (hi <= lo)
    throw InputError("mixup.cutmix_minmax", what + " range [" + std::to_string(lo) + ", " +
                                                std::to_string(hi) + ") is empty for this image size");
  return lo + core::uniform_int(rng, hi - lo);
}

}  // namespace

void MixupConfig::validate(const std::string& where) const {
  auto fail = [&](const std::string& key, const std::string& fault) {
    throw InputError(where, key + " " + fault);
  };
  if (!(mixup_alpha >= 0) || !std::isfinite(mixup_alpha))
    fail("mixup_alpha", "must be >= 0, got " + num(mixup_alpha));
  if (!(cutmix_alpha >= 0) || !std::isfinite(cutmix_alpha))
    fail("cutmix_alpha", "must be >= 0, got " + num(cutmix_alpha));
  if (!(prob >= 0 && prob <= 1)) fail("prob", "must be in [0, 1], got " + num(prob));
  if (!(switch_prob >= 0 && switch_prob <= 1))
    fail("switch_prob", "must be in [0, 1], got " + num(switch_prob));
  if (!(label_smoothing >= 0 && label_smoothing < 1))
    fail("label_smoothing", "must be in [0, 1), got " + num(label_smoothing));
  if (num_classes < 1) fail("num_classes", "must be >= 1, got " + std::to_string(num_classes));
  if (cutmix_minmax) {
    const auto [lo, hi] = *cutmix_minmax;
    if (!(lo >= 0 && lo < hi && hi <= 1))
      fail("cutmix_minmax",
           "must be [min, max] with 0 <= min < max <= 1, got [" + num(lo) + ", " + num(hi) + "]");
  }
  if (mixup_alpha == 0 && cutmix_alpha == 0 && !cutmix_minmax)
    fail("mixup_alpha", "and cutmix_alpha are both 0 and cutmix_minmax is unset: nothing to mix");
}

CutBox bbox_at(int64_t h, int64_t w, double lam, int64_t cy, int64_t cx) {
  const double ratio = std::sqrt(1.0 - lam);
  const auto cut_h = static_cast<int64_t>(static_cast<double>(h) * ratio);
  const auto cut_w = static_cast<int64_t>(static_cast<double>(w) * ratio);
  // timm centres the box on (cy, cx) with the odd pixel after the centre, then clips it to the image.
  return CutBox{std::clamp<int64_t>(cy - cut_h / 2, 0, h), std::clamp<int64_t>(cy + (cut_h + 1) / 2, 0, h),
                std::clamp<int64_t>(cx - cut_w / 2, 0, w), std::clamp<int64_t>(cx + (cut_w + 1) / 2, 0, w)};
}

CutBox rand_bbox(int64_t h, int64_t w, double lam, std::mt19937_64& rng) {
  const int64_t cy = core::uniform_int(rng, h);
  const int64_t cx = core::uniform_int(rng, w);
  return bbox_at(h, w, lam, cy, cx);
}

CutBox rand_bbox_minmax(int64_t h, int64_t w, const std::array<double, 2>& minmax, std::mt19937_64& rng) {
  const auto side = [&](int64_t n, double f) { return static_cast<int64_t>(static_cast<double>(n) * f); };
  const int64_t cut_h = randint(side(h, minmax[0]), side(h, minmax[1]), rng, "box height");
  const int64_t cut_w = randint(side(w, minmax[0]), side(w, minmax[1]), rng, "box width");
  const int64_t y0 = randint(0, h - cut_h + 1, rng, "box top");
  const int64_t x0 = randint(0, w - cut_w + 1, rng, "box left");
  return CutBox{y0, y0 + cut_h, x0, x0 + cut_w};
}

double box_lam(const CutBox& box, int64_t h, int64_t w) {
  return 1.0 - static_cast<double>(box.area()) / static_cast<double>(h * w);
}

double sample_beta(double alpha, std::mt19937_64& rng) {
  std::gamma_distribution<double> gamma(alpha, 1.0);
  const double x = gamma(rng);
  const double y = gamma(rng);
  // With a tiny alpha both draws can underflow to 0; the Beta's mass is then at the two ends.
  if (x + y == 0) return core::uniform01(rng) < 0.5 ? 0.0 : 1.0;
  return x / (x + y);
}

MixParams draw_mix_params(const MixupConfig& cfg, int64_t h, int64_t w, std::mt19937_64& rng) {
  MixParams p;
  const double cut_alpha = cfg.cutmix_minmax ? 1.0 : cfg.cutmix_alpha;  // timm forces alpha 1 with minmax
  if (!(core::uniform01(rng) < cfg.prob)) return p;
  if (cfg.mixup_alpha > 0 && cut_alpha > 0) {
    p.cutmix = core::uniform01(rng) < cfg.switch_prob;
    p.lam = sample_beta(p.cutmix ? cut_alpha : cfg.mixup_alpha, rng);
  } else if (cfg.mixup_alpha > 0) {
    p.lam = sample_beta(cfg.mixup_alpha, rng);
  } else {
    p.cutmix = true;
    p.lam = sample_beta(cut_alpha, rng);
  }
  if (p.lam == 1.0) return MixParams{};  // timm leaves such a batch unmixed and draws no box
  if (p.cutmix) {
    p.box = cfg.cutmix_minmax ? rand_bbox_minmax(h, w, *cfg.cutmix_minmax, rng) : rand_bbox(h, w, p.lam, rng);
    if (cfg.correct_lam || cfg.cutmix_minmax) p.lam = box_lam(p.box, h, w);
  }
  return p;
}

at::Tensor mixup_target(const at::Tensor& labels, int64_t num_classes, double lam, double smoothing) {
  const double off = smoothing / static_cast<double>(num_classes);
  const double on = 1.0 - smoothing + off;
  const at::Tensor y1 = at::full({labels.size(0), num_classes}, off, labels.options().dtype(at::kFloat))
                            .scatter_(1, labels.to(at::kLong).view({-1, 1}), on);
  return y1 * lam + y1.flip(0) * (1.0 - lam);
}

at::Tensor mix_batch(at::Tensor& images, const at::Tensor& labels, const MixParams& p, double smoothing,
                     int64_t num_classes) {
  if (p.cutmix) {
    const auto region = [&](const at::Tensor& t) {
      return t.slice(2, p.box.y0, p.box.y1).slice(3, p.box.x0, p.box.x1);
    };
    region(images).copy_(region(images).flip(0));  // flip copies, so the paste reads the unmixed pixels
  } else if (p.lam != 1.0) {
    const at::Tensor flipped = images.flip(0).mul_(1.0 - p.lam);
    images.mul_(p.lam).add_(flipped);
  }
  return mixup_target(labels, num_classes, p.lam, smoothing);
}

Mixup::Mixup(MixupConfig cfg) : cfg_(std::move(cfg)) { cfg_.validate(); }

MixParams Mixup::apply(Batch& b, std::mt19937_64& rng) const {
  if (!b.images.defined() || b.images.dim() != 4 || !b.images.is_floating_point())
    throw InputError("mixup", "needs a batch of float images (B, C, H, W)");
  const int64_t n = b.images.size(0);
  if (n % 2 != 0)
    throw InputError("mixup",
                     "a batch of " + std::to_string(n) +
                         " images: batch mode mixes image i with image B-1-i and needs an even batch size "
                         "(as timm); use an even batch size and drop the last partial batch");
  if (b.soft_labels.defined())
    throw InputError("mixup",
                     "the batch already carries its dataset's soft labels; mixup builds soft labels "
                     "from class labels");
  if (n > 0) {
    const int64_t lo = b.labels.min().item<int64_t>(), hi = b.labels.max().item<int64_t>();
    if (lo < 0 || hi >= cfg_.num_classes)
      throw InputError("mixup", "label " + std::to_string(lo < 0 ? lo : hi) +
                                    " is outside [0, num_classes = " + std::to_string(cfg_.num_classes) +
                                    ") (unlabeled images cannot be mixed)");
  }
  const MixParams p = draw_mix_params(cfg_, b.images.size(2), b.images.size(3), rng);
  b.soft_labels = mix_batch(b.images, b.labels, p, cfg_.label_smoothing, cfg_.num_classes);
  return p;
}

}  // namespace semaim::data
