// timm's RandAugment (timm/data/auto_augment.py: rand_augment_transform, AugmentOp, the _RAND_TRANSFORMS and
// _RAND_INCREASING_TRANSFORMS op sets) with PIL's pixel arithmetic, and timm's RandomErasing
// (timm/data/random_erasing.py): the fine-tuning augmentations of MAE's recipe, per sample, on the worker
// threads.
#pragma once
#include <opencv2/core/mat.hpp>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "semaim/data/transforms.h"

namespace semaim::data {

// A parsed timm RandAugment string such as `rand-m9-n2-mstd0.5-inc1` (sections after `rand`, any order).
struct RandAugmentSpec {
  double magnitude = 10;      // m: integer level 0..mmax
  int64_t num_ops = 2;        // n: ops chosen per image, uniformly with replacement
  double magnitude_std = 0;   // mstd: gaussian noise on the level; infinity (mstd > 100): uniform in [0, m]
  double magnitude_max = 10;  // mmax: the noisy level is clipped to [0, mmax] (mmax0 means 10, as timm)
  double prob = 0.5;          // p: each chosen op runs with this probability
  bool increasing = false;    // inc: the op set whose severity grows with the level
};

// Throws InputError("data.auto_augment", fault) naming the section at fault (timm asserts or ignores them).
RandAugmentSpec parse_rand_augment(const std::string& text);

// timm's op names of the set a spec selects: _RAND_INCREASING_TRANSFORMS (inc1) or _RAND_TRANSFORMS.
const std::vector<std::string>& rand_augment_op_names(bool increasing);

// The interpolation of the geometric ops (PIL's affine filters: bilinear, or bicubic with a = -1).
enum class Resample { kBilinear, kBicubic };

// One op on an (H, W) uint8 image of 1 or 3 channels at a level (after noise and clipping), with the sign the
// signed ops would have drawn; `fill` (one value per channel) colours what geometric ops uncover. Returns a
// new image; img is never written. Throws InputError("data.auto_augment", ...) for an unknown name.
cv::Mat rand_augment_op(const std::string& name, const cv::Mat& img, double magnitude, bool negate,
                        const std::vector<uint8_t>& fill, Resample resample);

// The noisy level of one op: gaussian(m, mstd) (uniform(0, m) when mstd is infinite) clipped to [0, mmax].
double sample_magnitude(const RandAugmentSpec& spec, std::mt19937_64& rng);

// A standard normal draw (Box-Muller on two uniforms of rng, so every standard library draws the same).
double standard_normal(std::mt19937_64& rng);
// n standard normals, two from each pair of uniforms (the first of a pair equals standard_normal's draw).
void fill_standard_normal(float* dst, int64_t n, std::mt19937_64& rng);

// What one chosen op of an image does: its index in the op set, whether it runs, its level and sign.
struct RandAugmentDraw {
  int64_t op = 0;
  bool applied = false;
  double magnitude = 0;
  bool negate = false;
};

class RandAugment final : public PixelTransform {
 public:
  // fill: per channel, the dataset mean * 255 rounded (timm's img_mean hparam).
  RandAugment(const RandAugmentSpec& spec, std::vector<uint8_t> fill, Resample resample);
  std::string name() const override { return "rand_augment"; }
  // timm's draws for one image: the num_ops op indices first, then per op the probability draw (when p < 1),
  // the level noise (when mstd > 0) and, for a signed op that runs, the sign.
  std::vector<RandAugmentDraw> draw(std::mt19937_64& rng) const;
  // img: (H, W) uint8 with 1 or 3 channels; replaced by a new image when an op runs (its pixels may belong to
  // the source, so they are never written).
  void apply(cv::Mat& img, std::mt19937_64& rng) const override;

 private:
  RandAugmentSpec spec_;
  std::vector<uint8_t> fill_;
  Resample resample_;
};

// timm RandomErasing on the normalized CHW sample: with probability prob, count boxes (1 .. max_count drawn
// uniformly; each box's area range divided by the count), each from up to 10 attempts of an area fraction in
// [min_area, max_area] and a log-uniform aspect in [min_aspect, 1 / min_aspect], filled per mode.
struct ErasingSpec {
  double prob = 0.25;
  std::string mode = "pixel";  // pixel: per-pixel N(0, 1) | rand: per-channel N(0, 1) | const: 0
  int64_t max_count = 1;
  double min_area = 0.02, max_area = 1.0 / 3.0, min_aspect = 0.3;
};

class RandomErasing final : public TensorTransform {
 public:
  // Throws InputError("augment.remode" / "augment.reprob" / "augment.recount", fault) for a bad spec.
  explicit RandomErasing(const ErasingSpec& spec);
  std::string name() const override { return "random_erasing"; }
  void apply(float* chw, int64_t channels, int64_t height, int64_t width,
             std::mt19937_64& rng) const override;

 private:
  enum class Mode { kPixel, kRand, kConst };
  void erase_box(float* chw, int64_t channels, int64_t height, int64_t width, const CropBox& box,
                 std::mt19937_64& rng) const;
  ErasingSpec spec_;
  Mode mode_;
};

}  // namespace semaim::data
