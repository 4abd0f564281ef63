// Mixup and CutMix in batch mode with soft targets (timm.data.mixup.Mixup with mode 'batch': one lambda per
// batch, every image mixed with the batch flipped; Zhang et al. 2018, Yun et al. 2019).
#pragma once
#include <ATen/ATen.h>

#include <array>
#include <cstdint>
#include <optional>
#include <random>
#include <string>

#include "semaim/data/loader.h"

namespace semaim::data {

// timm's Mixup arguments and defaults (mode 'batch').
struct MixupConfig {
  double mixup_alpha = 1.0;   // lambda ~ Beta(alpha, alpha) for mixup; 0: no mixup
  double cutmix_alpha = 0.0;  // lambda ~ Beta(alpha, alpha) for cutmix; 0: no cutmix
  // Box sides as fractions [min, max) of the image sides, drawn independently (timm rand_bbox_minmax). When
  // set, cutmix is on with alpha 1 whatever cutmix_alpha says, and lambda always follows the box area.
  std::optional<std::array<double, 2>> cutmix_minmax;
  double prob = 1.0;         // probability that a batch is mixed at all
  double switch_prob = 0.5;  // probability of cutmix instead of mixup when both are on
  bool correct_lam = true;   // cutmix lambda = 1 - (box area after clipping to the image) / image area
  double label_smoothing = 0.1;
  int64_t num_classes = 1000;

  // InputError naming `where` for negative alphas, probabilities outside [0, 1], smoothing outside [0, 1),
  // no class, a minmax range that is not 0 <= min < max <= 1, or nothing to mix (both alphas 0, no minmax).
  void validate(const std::string& where = "mixup") const;
};

// Image rows [y0, y1) and columns [x0, x1) that cutmix pastes from the flipped batch.
struct CutBox {
  int64_t y0 = 0, y1 = 0, x0 = 0, x1 = 0;
  int64_t area() const { return (y1 - y0) * (x1 - x0); }
};

// What one batch does: lam == 1 leaves the images as they are (the targets are still smoothed one-hot).
struct MixParams {
  double lam = 1.0;  // weight of the batch itself; with cutmix the one matching the box (when corrected)
  bool cutmix = false;
  CutBox box;  // with cutmix
};

// timm rand_bbox: sides int(h * sqrt(1 - lam)) x int(w * sqrt(1 - lam)) centred on (cy, cx), clipped to the
// (h, w) image. bbox_at is the deterministic part; rand_bbox draws cy in [0, h) and cx in [0, w).
CutBox bbox_at(int64_t h, int64_t w, double lam, int64_t cy, int64_t cx);
CutBox rand_bbox(int64_t h, int64_t w, double lam, std::mt19937_64& rng);
// timm rand_bbox_minmax: side in [int(h * min), int(h * max)) per axis, placed uniformly inside the image.
// InputError when a range is empty for this image size.
CutBox rand_bbox_minmax(int64_t h, int64_t w, const std::array<double, 2>& minmax, std::mt19937_64& rng);
// 1 - box area / (h * w), as timm's cutmix_bbox_and_lam corrects lambda.
double box_lam(const CutBox& box, int64_t h, int64_t w);
// Beta(alpha, alpha) as X / (X + Y) with X, Y ~ Gamma(alpha, 1).
double sample_beta(double alpha, std::mt19937_64& rng);

// One batch's draws for (h, w) images, in timm's order: apply (prob), cutmix or mixup (switch_prob), lambda,
// then the cutmix box and the corrected lambda.
MixParams draw_mix_params(const MixupConfig& cfg, int64_t h, int64_t w, std::mt19937_64& rng);

// timm mixup_target: smoothed one-hot (off = smoothing / K, on = 1 - smoothing + off) mixed with its batch
// flip. labels: (B) int64 in [0, K) -> (B, K) float32
at::Tensor mixup_target(const at::Tensor& labels, int64_t num_classes, double lam, double smoothing);

// The deterministic core: mixes `images` in place with images.flip(0) as `p` says (the same float ops as
// timm's _mix_batch) and returns the soft targets. images: (B, C, H, W) float; labels: (B) -> (B, K) float32
at::Tensor mix_batch(at::Tensor& images, const at::Tensor& labels, const MixParams& p, double smoothing,
                     int64_t num_classes);

class Mixup {
 public:
  explicit Mixup(MixupConfig cfg);  // validates cfg
  // Draws the batch's parameters from `rng`, mixes b.images in place and sets b.soft_labels (B, K) float32.
  // InputError for an odd batch (batch mode pairs image i with image B-1-i, timm requires an even batch), a
  // label outside [0, num_classes) (unlabeled samples included) or a batch that already has soft labels.
  MixParams apply(Batch& b, std::mt19937_64& rng) const;
  const MixupConfig& config() const { return cfg_; }

 private:
  MixupConfig cfg_;
};

}  // namespace semaim::data
