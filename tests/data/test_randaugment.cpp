// RandAugment and random erasing (randaugment.h): each op against timm's AugmentOp on PIL images
// (tests/data/timm_randaugment_reference.py), the string parser, the draws' statistics, erasing boxes and
// noise, and the pipeline stages `rand_augment` / `random_erasing`.
#include <gtest/gtest.h>

#include <opencv2/core.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "input_error.h"
#include "python_suite.h"
#include "semaim/config/config.h"
#include "semaim/core/errors.h"
#include "semaim/core/rng.h"
#include "semaim/data/config_keys.h"
#include "semaim/data/randaugment.h"
#include "semaim/data/settings.h"
#include "semaim/data/transforms.h"
#include "semaim_paths.h"
#include "temp_dir.h"

namespace semaim::data {
namespace {

namespace fs = std::filesystem;
using semaim::test::expect_input_error;

// A photo-like (H, W) image with `channels` channels: smooth gradients, hard-edged shapes and fine noise,
// each channel in its own sub-range so AutoContrast and Equalize have work to do.
cv::Mat synthetic_image(int h, int w, int channels) {
  cv::Mat img(h, w, CV_8UC(channels));
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      const double gx = static_cast<double>(x) / (w - 1), gy = static_cast<double>(y) / (h - 1);
      const bool box = x > w / 5 && x < w / 2 && y > h / 4 && y < (3 * h) / 5;
      const bool disc = (x - 0.7 * w) * (x - 0.7 * w) + (y - 0.6 * h) * (y - 0.6 * h) < 0.04 * w * h;
      const uint64_t noise = core::splitmix64(static_cast<uint64_t>(y * w + x)) % 31;
      for (int c = 0; c < channels; ++c) {
        double v = 0.5 + 0.35 * std::sin(6.0 * gx + 2.0 * c) * std::cos(4.0 * gy - c);
        if (box) v = 0.15 + 0.3 * c;
        if (disc) v = 0.9 - 0.25 * c;
        if (x >= w - 6 && x < w - 3) v = 1.1;  // a highlight stripe: clipped values for Solarize to invert
        const double lo = 12.0 + 20.0 * c, hi = 230.0 - 15.0 * c;
        img.ptr<uint8_t>(y)[x * channels + c] = static_cast<uint8_t>(
            std::clamp(lo + (hi - lo) * v + static_cast<double>(noise) - 15.0, 0.0, 255.0));
      }
    }
  }
  return img;
}

struct OpCase {
  std::string op;
  double magnitude;
  bool negate;
  Resample resample;
  int image;  // index into images()
  std::string key() const {
    std::ostringstream s;
    s << op << " m" << magnitude << (negate ? " neg" : "")
      << (resample == Resample::kBilinear ? " bilinear" : "") << " image" << image;
    return s.str();
  }
};

// RGB non-square, grayscale non-square, RGB square (PIL's quarter-turn transposes need a square).
const std::vector<cv::Mat>& images() {
  static const std::vector<cv::Mat> v = {synthetic_image(45, 61, 3), synthetic_image(38, 50, 1),
                                         synthetic_image(40, 40, 3)};
  return v;
}

std::vector<uint8_t> fill_for(const cv::Mat& img) {
  return img.channels() == 1 ? std::vector<uint8_t>{73} : std::vector<uint8_t>{124, 116, 104};
}

const std::set<std::string> kSigned = {"Rotate",
                                       "ShearX",
                                       "ShearY",
                                       "TranslateXRel",
                                       "TranslateYRel",
                                       "ColorIncreasing",
                                       "ContrastIncreasing",
                                       "BrightnessIncreasing",
                                       "SharpnessIncreasing"};

// Every op of both sets at three levels (both signs when signed) on the RGB and grayscale images, the
// geometric ops also bilinear, and rotations past timm's default clip (90 and 180 degrees, on the square
// image too). Posterize levels below 2.5 and PosterizeIncreasing at 10 keep 0 bits, which Pillow 13 refuses.
std::vector<OpCase> op_cases() {
  std::set<std::string> names;
  for (bool inc : {false, true})
    for (const auto& n : rand_augment_op_names(inc)) names.insert(n);
  std::vector<OpCase> cases;
  for (const std::string& n : names) {
    for (int image : {0, 1}) {
      for (double m : {3.0, 5.5, 9.0, 10.0}) {
        if (n == "PosterizeIncreasing" && m == 10.0) continue;
        for (bool neg : {false, true}) {
          if (neg && !kSigned.count(n)) continue;
          cases.push_back({n, m, neg, Resample::kBicubic, image});
          const bool geometric = n == "Rotate" || n.rfind("Shear", 0) == 0 || n.rfind("Translate", 0) == 0;
          if (geometric && m == 9.0) cases.push_back({n, m, neg, Resample::kBilinear, image});
        }
      }
    }
  }
  for (int image : {0, 2})
    for (double m : {30.0, 60.0, 13.0}) cases.push_back({"Rotate", m, false, Resample::kBicubic, image});
  return cases;
}

void write_raw(const std::string& path, const cv::Mat& img) {
  std::ofstream f(path, std::ios::binary);
  for (int y = 0; y < img.rows; ++y)
    f.write(reinterpret_cast<const char*>(img.ptr<uint8_t>(y)), img.cols * img.channels());
}

cv::Mat read_raw(const std::string& path, const cv::Mat& like) {
  cv::Mat img(like.size(), like.type());
  std::ifstream f(path, std::ios::binary);
  for (int y = 0; y < img.rows; ++y)
    f.read(reinterpret_cast<char*>(img.ptr<uint8_t>(y)), img.cols * img.channels());
  return f ? img : cv::Mat();
}

// Runs timm once for the suite; skips with the reason when the venv or timm is missing.
class RandAugmentTimm : public semaim::test::PythonSuite<RandAugmentTimm> {
 protected:
  static void SetUpTestSuite() {
    if (!have_python()) return;
    const semaim::test::TempDir tmp;
    std::ofstream list(tmp.file("cases.txt"));
    for (size_t i = 0; i < images().size(); ++i)
      write_raw(tmp.file("in" + std::to_string(i) + ".raw"), images()[i]);
    const std::vector<OpCase> cases = op_cases();
    for (size_t k = 0; k < cases.size(); ++k) {
      const OpCase& c = cases[k];
      const cv::Mat& img = images()[static_cast<size_t>(c.image)];
      std::string fill;
      for (uint8_t v : fill_for(img)) {
        if (!fill.empty()) fill += ',';
        fill += std::to_string(v);
      }
      list << c.op << ' ' << c.magnitude << ' ' << (c.negate ? 1 : 0) << ' '
           << (c.resample == Resample::kBilinear ? "bilinear" : "bicubic") << ' ' << fill << ' '
           << tmp.file("in" + std::to_string(c.image) + ".raw") << ' ' << img.rows << ' ' << img.cols << ' '
           << img.channels() << ' ' << tmp.file("out" + std::to_string(k) + ".raw") << '\n';
    }
    list.close();
    using semaim::test::quoted;
    if (!run_script("data/timm_randaugment_reference.py",
                    quoted(tmp.file("cases.txt")) + " " + quoted(tmp.file("ops.txt")), &skip_reason_))
      return;
    for (size_t k = 0; k < cases.size(); ++k)
      ref_[cases[k].key()] = read_raw(tmp.file("out" + std::to_string(k) + ".raw"),
                                      images()[static_cast<size_t>(cases[k].image)]);
    std::ifstream ops(tmp.file("ops.txt"));
    for (auto* set : {&timm_rand_, &timm_increasing_}) {
      std::string line, name;
      std::getline(ops, line);
      std::istringstream words(line);
      while (words >> name) set->push_back(name);
    }
  }
  static inline std::map<std::string, cv::Mat> ref_;
  static inline std::vector<std::string> timm_rand_, timm_increasing_;
};

TEST_F(RandAugmentTimm, OpSetsAreTimms) {
  EXPECT_EQ(rand_augment_op_names(false), timm_rand_);
  EXPECT_EQ(rand_augment_op_names(true), timm_increasing_);
}

// Tolerance: none. Pointwise ops, blends and the SMOOTH filter follow PIL's integer and single-precision
// arithmetic; the geometric ops use PIL's own affine sampler (pixel-area coordinates, edge repeat, cubic a =
// -1, truncation), so every op is byte-equal to timm on RGB and 'L' images.
TEST_F(RandAugmentTimm, EveryOpEqualsTimmsPilResult) {
  int checked = 0;
  for (const OpCase& c : op_cases()) {
    const cv::Mat& img = images()[static_cast<size_t>(c.image)];
    const cv::Mat ref = ref_[c.key()];
    ASSERT_FALSE(ref.empty()) << "timm produced no " << c.key();
    const cv::Mat ours = rand_augment_op(c.op, img, c.magnitude, c.negate, fill_for(img), c.resample);
    ASSERT_EQ(ours.type(), img.type()) << c.key();
    cv::Mat diff;
    cv::absdiff(ours, ref, diff);
    double max_diff = 0;
    cv::minMaxLoc(diff.reshape(1), nullptr, &max_diff);
    EXPECT_EQ(max_diff, 0.0) << c.key() << ": " << cv::countNonZero(diff.reshape(1)) << " values differ";
    ++checked;
  }
  EXPECT_GT(checked, 200);
}

TEST_F(RandAugmentTimm, OpsChangeTheImage) {
  // Guards the comparison above against ops that would do nothing on both sides.
  for (const OpCase& c : op_cases()) {
    if (c.op == "Color" || c.op == "ColorIncreasing") continue;  // the identity on 'L' images, as PIL
    if (c.image != 0) continue;
    if (c.op == "Solarize" && c.magnitude >= 10)
      continue;  // threshold 256: timm's Solarize at 10 is the identity
    const cv::Mat& img = images()[0];
    const cv::Mat ours = rand_augment_op(c.op, img, c.magnitude, c.negate, fill_for(img), c.resample);
    cv::Mat diff;
    cv::absdiff(ours, img, diff);
    EXPECT_GT(cv::countNonZero(diff.reshape(1)), 0) << c.key();
  }
}

TEST(RandAugmentOps, ColorIsTheIdentityOnGrayscale) {
  const cv::Mat& gray = images()[1];
  cv::Mat diff;
  cv::absdiff(rand_augment_op("Color", gray, 2.0, false, {73}, Resample::kBicubic), gray, diff);
  EXPECT_EQ(cv::countNonZero(diff), 0);
}

TEST(RandAugmentOps, PosterizeKeepingNoBitsIsBlack) {
  const cv::Mat out =
      rand_augment_op("PosterizeIncreasing", images()[0], 10.0, false, {1, 2, 3}, Resample::kBicubic);
  EXPECT_EQ(cv::countNonZero(out.reshape(1)), 0);
}

TEST(RandAugmentOps, UnknownOpIsAnInputError) {
  expect_input_error(
      [] {
        rand_augment_op("Cutout", images()[0], 5, false, {0, 0, 0}, Resample::kBicubic);
      },
      {"data.auto_augment", "Cutout"});
}

TEST(RandAugmentParse, GoodStrings) {
  const RandAugmentSpec a = parse_rand_augment("rand-m9-mstd0.5-inc1");
  EXPECT_EQ(a.magnitude, 9);
  EXPECT_EQ(a.num_ops, 2);
  EXPECT_EQ(a.magnitude_std, 0.5);
  EXPECT_EQ(a.magnitude_max, 10);
  EXPECT_EQ(a.prob, 0.5);
  EXPECT_TRUE(a.increasing);
  const RandAugmentSpec b = parse_rand_augment("rand-inc0-n3-p0.7-mmax12-m7-mstd101");
  EXPECT_EQ(b.magnitude, 7);
  EXPECT_EQ(b.num_ops, 3);
  EXPECT_TRUE(std::isinf(b.magnitude_std));  // timm: mstd > 100 means uniform sampling
  EXPECT_EQ(b.magnitude_max, 12);
  EXPECT_EQ(b.prob, 0.7);
  EXPECT_FALSE(b.increasing);
  const RandAugmentSpec c = parse_rand_augment("rand");
  EXPECT_EQ(c.magnitude, 10);  // timm's defaults: magnitude _LEVEL_DENOM, 2 ops
  EXPECT_EQ(c.num_ops, 2);
  EXPECT_EQ(parse_rand_augment("rand-mmax0").magnitude_max, 10);  // timm: `magnitude_max or _LEVEL_DENOM`
}

TEST(RandAugmentParse, BadStringsNameTheFault) {
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"", "must start with 'rand'"},
      {"augmix-m5", "must start with 'rand'"},
      {"rand-x5", "unknown section 'x5'"},
      {"rand-tweights", "unknown section 'tweights'"},
      {"rand-m", "section 'm' has no value"},
      {"rand-m9x", "'m' needs an integer, got '9x'"},
      {"rand-m9.5", "'m' needs an integer, got '9.5'"},
      {"rand-p0.5.1", "'p' needs a number"},
      {"rand-p2", "'p' is a probability"},
      {"rand-inc2", "'inc' is 0 or 1"},
      {"rand-m9-m8", "key 'm' given twice"},
      {"rand--m9", "unknown section ''"},
  };
  for (const auto& [text, fault] : bad) {
    SCOPED_TRACE(text);
    expect_input_error([&] { parse_rand_augment(text); }, {"data.auto_augment", fault.c_str()});
  }
}

TEST(RandAugmentDraws, MagnitudeNoiseIsAGaussianClippedToMmax) {
  RandAugmentSpec s = parse_rand_augment("rand-m9-mstd0.5");
  std::mt19937_64 rng(11);
  const int n = 40000;
  int at_max = 0;
  double sum = 0, sum_sq = 0;
  for (int i = 0; i < n; ++i) {
    const double m = sample_magnitude(s, rng);
    ASSERT_GE(m, 0.0);
    ASSERT_LE(m, 10.0);
    at_max += m == 10.0;
    sum += m;
    sum_sq += m * m;
  }
  // P(N(9, 0.5) >= 10) = P(z >= 2) = 0.0228; the clipped mean and std of N(9, 0.5) at 10: 8.9975 and 0.4892.
  EXPECT_NEAR(static_cast<double>(at_max) / n, 0.0228, 0.003);
  EXPECT_NEAR(sum / n, 8.9975, 0.01);
  EXPECT_NEAR(std::sqrt(sum_sq / n - (sum / n) * (sum / n)), 0.4892, 0.01);
  // Uniform in [0, m] when mstd > 100; a larger mmax lets the noise past 10.
  s = parse_rand_augment("rand-m9-mstd101");
  sum = 0;
  for (int i = 0; i < n; ++i) {
    const double m = sample_magnitude(s, rng);
    ASSERT_LE(m, 9.0);
    sum += m;
  }
  EXPECT_NEAR(sum / n, 4.5, 0.05);
  s = parse_rand_augment("rand-m15-mstd2-mmax20");
  double top = 0;
  for (int i = 0; i < 1000; ++i) top = std::max(top, sample_magnitude(s, rng));
  EXPECT_GT(top, 17.0);
  EXPECT_LE(top, 20.0);
  // No noise: the level itself, and no draw.
  s = parse_rand_augment("rand-m7");
  std::mt19937_64 a(3), b(3);
  EXPECT_EQ(sample_magnitude(s, a), 7.0);
  EXPECT_EQ(a(), b());
}

TEST(RandAugmentDraws, OpsAreUniformWithReplacementAndRunWithProbabilityP) {
  const RandAugment ra(parse_rand_augment("rand-m9-n2-p0.3-inc1"), {0, 0, 0}, Resample::kBicubic);
  const auto& names = rand_augment_op_names(true);
  std::vector<int> count(names.size(), 0);
  int same = 0, applied = 0, negated = 0, signed_applied = 0;
  std::mt19937_64 rng(5);
  const int n = 30000;
  for (int i = 0; i < n; ++i) {
    const auto draws = ra.draw(rng);
    ASSERT_EQ(draws.size(), 2u);
    same += draws[0].op == draws[1].op;
    for (const auto& d : draws) {
      ++count[static_cast<size_t>(d.op)];
      applied += d.applied;
      const bool is_signed = kSigned.count(names[static_cast<size_t>(d.op)]) > 0;
      if (!is_signed || !d.applied) EXPECT_FALSE(d.negate);
      if (is_signed && d.applied) {
        ++signed_applied;
        negated += d.negate;
      }
      if (d.applied) EXPECT_EQ(d.magnitude, 9.0);
    }
  }
  for (int c : count) EXPECT_NEAR(static_cast<double>(c) / (2 * n), 1.0 / 15, 0.006);
  EXPECT_NEAR(static_cast<double>(same) / n, 1.0 / 15, 0.006);  // with replacement
  EXPECT_NEAR(static_cast<double>(applied) / (2 * n), 0.3, 0.01);
  EXPECT_NEAR(static_cast<double>(negated) / signed_applied, 0.5, 0.02);
}

TEST(RandAugmentTransform, DeterministicPerSeedAndNeverWritesItsInput) {
  const RandAugment ra(parse_rand_augment("rand-m9-n3-p1.0-mstd0.5-inc1"), {124, 116, 104},
                       Resample::kBicubic);
  const cv::Mat source = images()[0].clone(), pristine = source.clone();
  int changed = 0;
  for (uint64_t seed = 0; seed < 20; ++seed) {
    cv::Mat a = source, b = source;  // views of the source, as the pipeline hands them over
    std::mt19937_64 ra_rng(seed), rb_rng(seed);
    ra.apply(a, ra_rng);
    ra.apply(b, rb_rng);
    cv::Mat diff;
    cv::absdiff(a, b, diff);
    EXPECT_EQ(cv::countNonZero(diff.reshape(1)), 0) << "seed " << seed;
    cv::absdiff(a, pristine, diff);
    changed += cv::countNonZero(diff.reshape(1)) > 0;
  }
  cv::Mat diff;
  cv::absdiff(source, pristine, diff);
  EXPECT_EQ(cv::countNonZero(diff.reshape(1)), 0);
  EXPECT_GE(changed, 18);  // three ops that always run change almost every image
}

// Finds the erased box of a (C, H, W) sample that was `sentinel` everywhere before.
struct Found {
  int64_t top = -1, left = -1, bottom = -1, right = -1, changed = 0;
};
Found erased_region(const std::vector<float>& x, int64_t c, int64_t h, int64_t w, float sentinel) {
  Found f;
  for (int64_t y = 0; y < h; ++y) {
    for (int64_t xx = 0; xx < w; ++xx) {
      if (x[static_cast<size_t>(y * w + xx)] == sentinel) continue;
      ++f.changed;
      f.top = f.top < 0 ? y : std::min(f.top, y);
      f.left = f.left < 0 ? xx : std::min(f.left, xx);
      f.bottom = std::max(f.bottom, y);
      f.right = std::max(f.right, xx);
    }
  }
  return f;
}

TEST(RandomErasingTest, BoxAreasAndAspectsStayInTimmsBounds) {
  ErasingSpec spec;
  spec.prob = 0.25;
  spec.mode = "const";
  const RandomErasing erase(spec);
  const int64_t c = 3, h = 96, w = 128;
  const double area = static_cast<double>(h * w);
  std::mt19937_64 rng(2);
  int erased = 0;
  const int n = 4000;
  for (int i = 0; i < n; ++i) {
    std::vector<float> x(static_cast<size_t>(c * h * w), 7.0f);
    erase.apply(x.data(), c, h, w, rng);
    const Found f = erased_region(x, c, h, w, 7.0f);
    if (f.changed == 0) continue;
    ++erased;
    const double bh = static_cast<double>(f.bottom - f.top + 1),
                 bw = static_cast<double>(f.right - f.left + 1);
    ASSERT_EQ(f.changed, static_cast<int64_t>(bh * bw)) << "not one filled rectangle";
    ASSERT_LT(bh, h);
    ASSERT_LT(bw, w);
    // h = round(sqrt(area * aspect)), w = round(sqrt(area / aspect)): half a pixel of rounding per side.
    EXPECT_LE((bh - 0.5) * (bw - 0.5), area / 3.0);
    EXPECT_GE((bh + 0.5) * (bw + 0.5), 0.02 * area);
    EXPECT_GE((bh + 0.5) / (bw - 0.5), 0.3);
    EXPECT_LE((bh - 0.5) / (bw + 0.5), 1.0 / 0.3);
    for (int64_t ch = 0; ch < c; ++ch)
      EXPECT_EQ(x[static_cast<size_t>((ch * h + f.top) * w + f.left)], 0.0f);  // const: zeros
  }
  EXPECT_NEAR(static_cast<double>(erased) / n, 0.25, 0.025);
}

TEST(RandomErasingTest, PixelModeIsStandardNormalNoiseAndRandModeOneValuePerChannel) {
  ErasingSpec spec;
  spec.prob = 1.0;
  const int64_t c = 3, h = 64, w = 64;
  std::mt19937_64 rng(9);
  double sum = 0, sum_sq = 0;
  int64_t count = 0;
  const RandomErasing pixel(spec);
  for (int i = 0; i < 200; ++i) {
    std::vector<float> x(static_cast<size_t>(c * h * w), 1e6f);
    pixel.apply(x.data(), c, h, w, rng);
    for (float v : x) {
      if (v == 1e6f) continue;
      sum += v;
      sum_sq += static_cast<double>(v) * v;
      ++count;
    }
  }
  ASSERT_GT(count, 100000);
  EXPECT_NEAR(sum / static_cast<double>(count), 0.0, 0.01);
  EXPECT_NEAR(std::sqrt(sum_sq / static_cast<double>(count)), 1.0, 0.01);
  spec.mode = "rand";
  const RandomErasing rand(spec);
  std::vector<float> x(static_cast<size_t>(c * h * w), 1e6f);
  rand.apply(x.data(), c, h, w, rng);
  const Found f = erased_region(x, c, h, w, 1e6f);
  ASSERT_GT(f.changed, 0);
  std::set<float> per_channel;
  for (int64_t ch = 0; ch < c; ++ch) {
    const float first = x[static_cast<size_t>((ch * h + f.top) * w + f.left)];
    per_channel.insert(first);
    for (int64_t y = f.top; y <= f.bottom; ++y)
      for (int64_t xx = f.left; xx <= f.right; ++xx)
        ASSERT_EQ(x[static_cast<size_t>((ch * h + y) * w + xx)], first);
  }
  EXPECT_EQ(per_channel.size(), 3u);
}

TEST(RandomErasingTest, SeveralBoxesShareTheAreaRange) {
  ErasingSpec spec;
  spec.prob = 1.0;
  spec.mode = "const";
  spec.max_count = 3;
  const RandomErasing erase(spec);
  const int64_t h = 90, w = 120;
  std::mt19937_64 rng(4);
  for (int i = 0; i < 500; ++i) {
    std::vector<float> x(static_cast<size_t>(h * w), 5.0f);
    erase.apply(x.data(), 1, h, w, rng);
    int64_t zeros = 0;
    for (float v : x) zeros += v == 0.0f;
    // Each of up to 3 boxes covers at most a third of the image divided by the count (plus rounding).
    EXPECT_LE(static_cast<double>(zeros), (1.0 / 3.0) * h * w * 1.1);
    EXPECT_GT(zeros, 0);
  }
}

TEST(RandomErasingTest, BadSpecsAreInputErrors) {
  ErasingSpec s;
  s.mode = "noise";
  expect_input_error([&] { RandomErasing{s}; }, {"augment.remode", "noise"});
  s = ErasingSpec();
  s.prob = 1.5;
  expect_input_error([&] { RandomErasing{s}; }, "augment.reprob");
  s = ErasingSpec();
  s.max_count = 0;
  expect_input_error([&] { RandomErasing{s}; }, "augment.recount");
}

AugmentConfig rgb_config(std::vector<std::string> names) {
  AugmentConfig cfg;
  cfg.out_size = 32;
  cfg.mean = {0.485, 0.456, 0.406};
  cfg.std = {0.229, 0.224, 0.225};
  cfg.transforms = std::move(names);
  return cfg;
}

// The pipeline on an image; returns the output and the rng's next value (what the run left of the stream).
std::pair<std::vector<float>, uint64_t> run_pipeline(const AugmentConfig& cfg, const cv::Mat& img,
                                                     uint64_t seed) {
  const Pipeline p = Pipeline::build(cfg, img.channels());
  std::vector<float> out(static_cast<size_t>(img.channels() * p.out_size() * p.out_size()));
  std::mt19937_64 rng(seed);
  p.run(img, rng, out.data());
  return {out, rng()};
}

TEST(RandAugmentPipeline, WithoutTheNewNamesNothingChanges) {
  const cv::Mat img = synthetic_image(48, 64, 3);
  const AugmentConfig base = rgb_config({"random_resized_crop", "hflip", "normalize"});
  AugmentConfig other = base;
  other.auto_augment = "rand-m3-n4-p1.0";
  other.reprob = 1.0;
  other.remode = "rand";
  other.recount = 3;
  for (uint64_t seed = 0; seed < 10; ++seed) {
    EXPECT_EQ(run_pipeline(base, img, seed), run_pipeline(other, img, seed));  // same pixels, same draws
  }
  EXPECT_EQ(Pipeline::build(other, 3).names(), base.transforms);
}

TEST(RandAugmentPipeline, NewNamesRunInTheirStages) {
  const cv::Mat img = synthetic_image(48, 64, 3);
  const AugmentConfig plain = rgb_config({"random_resized_crop", "hflip", "normalize"});
  AugmentConfig cfg =
      rgb_config({"random_resized_crop", "hflip", "rand_augment", "normalize", "random_erasing"});
  EXPECT_EQ(Pipeline::build(cfg, 3).names(), cfg.transforms);
  // Ops that never run and erasing that never erases leave the geometry's pixels unchanged.
  cfg.auto_augment = "rand-n2-p0";
  cfg.reprob = 0.0;
  EXPECT_EQ(run_pipeline(cfg, img, 3).first, run_pipeline(plain, img, 3).first);
  // Erasing after normalization: the const fill is an exact 0 in the output.
  cfg.reprob = 1.0;
  cfg.remode = "const";
  const auto erased = run_pipeline(cfg, img, 3).first;
  const auto reference = run_pipeline(plain, img, 3).first;
  int zeros = 0;
  for (size_t i = 0; i < erased.size(); ++i) {
    if (erased[i] != reference[i]) {
      EXPECT_EQ(erased[i], 0.0f);
      ++zeros;
    }
  }
  EXPECT_GT(zeros, 0);
  // RandAugment with ops that always run changes the image.
  cfg.reprob = 0.0;
  cfg.auto_augment = "rand-m9-n2-p1.0-inc1";
  int differ = 0;
  for (uint64_t seed = 0; seed < 10; ++seed)
    differ += run_pipeline(cfg, img, seed).first != run_pipeline(plain, img, seed).first;
  EXPECT_GE(differ, 8);
}

TEST(RandAugmentPipeline, GrayscaleImagesRunEveryOp) {
  const cv::Mat img = synthetic_image(28, 28, 1);
  AugmentConfig cfg;
  cfg.transforms = {"random_resized_crop", "hflip", "rand_augment", "normalize", "random_erasing"};
  cfg.auto_augment = "rand-m9-n3-p1.0-mstd0.5-inc1";
  cfg.reprob = 0.5;
  for (uint64_t seed = 0; seed < 200; ++seed) {
    const auto [out, next] = run_pipeline(cfg, img, seed);
    ASSERT_EQ(out.size(), 28u * 28u);
    for (float v : out) ASSERT_TRUE(std::isfinite(v));
    EXPECT_EQ(run_pipeline(cfg, img, seed).first, out);  // deterministic per seed
  }
}

TEST(RandAugmentPipeline, BadConfigsAreInputErrors) {
  AugmentConfig cfg = rgb_config({"random_resized_crop", "normalize", "rand_augment"});
  expect_input_error([&] { Pipeline::build(cfg, 3); },
                     {"augment.transforms", "'rand_augment' is out of order"});
  cfg.transforms = {"random_resized_crop", "random_erasing", "normalize"};
  expect_input_error([&] { Pipeline::build(cfg, 3); }, {"augment.transforms", "'normalize' is out of order"});
  cfg.transforms = {"random_resized_crop", "rand_augment", "normalize"};
  cfg.mean = {0.5, 0.5};
  cfg.std = {0.2, 0.2};
  expect_input_error([&] { Pipeline::build(cfg, 2); }, {"augment.transforms", "1- or 3-channel"});
  cfg = rgb_config({"random_resized_crop", "normalize"});
  cfg.auto_augment = "rand-q3";
  expect_input_error([&] { Pipeline::build(cfg, 3); }, {"data.auto_augment", "unknown section 'q3'"});
  cfg.auto_augment = "rand-m9";
  cfg.remode = "zeros";
  expect_input_error([&] { Pipeline::build(cfg, 3); }, "augment.remode");
}

TEST(RandAugmentPipeline, SettingsReadTheDataKeys) {
  config::Schema schema;
  register_config_keys(schema);
  auto cfg = config::Config::defaults(schema);
  AugmentConfig a = augment_config(cfg, 28, 1, true);
  EXPECT_EQ(a.auto_augment, "rand-m9-mstd0.5-inc1");
  EXPECT_EQ(a.reprob, 0.25);
  EXPECT_EQ(a.remode, "pixel");
  EXPECT_EQ(a.recount, 1);
  EXPECT_EQ(Pipeline::build(a, 1).names(),
            (std::vector<std::string>{"random_resized_crop", "hflip", "normalize"}));
  cfg.apply_overrides(
      {"data.transforms=[random_resized_crop, hflip, rand_augment, normalize, random_erasing]",
       "data.auto_augment=rand-m7-n1", "data.reprob=0.5", "data.remode=rand", "data.recount=2"});
  a = augment_config(cfg, 28, 1, true);
  EXPECT_EQ(a.auto_augment, "rand-m7-n1");
  EXPECT_EQ(a.reprob, 0.5);
  EXPECT_EQ(a.remode, "rand");
  EXPECT_EQ(a.recount, 2);
  EXPECT_EQ(Pipeline::build(a, 1).names(), a.transforms);
  expect_input_error([&] { cfg.apply_overrides({"data.remode=zeros"}); }, "data.remode");
}

}  // namespace
}  // namespace semaim::data
