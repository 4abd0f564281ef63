// timm's RandAugment ops (timm/data/auto_augment.py: the *_level_to_arg functions, AugmentOp.__call__,
// RandAugment.__call__) on OpenCV uint8 HWC images with PIL's arithmetic (ImageOps, ImageEnhance,
// Image.blend, the SMOOTH filter and Image.transform's AFFINE sampler), and timm's RandomErasing
// (random_erasing.py).
#include "semaim/data/randaugment.h"

#include <opencv2/core.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <numbers>
#include <set>

#include "semaim/core/errors.h"
#include "semaim/core/rng.h"

namespace semaim::data {
namespace {

constexpr double kLevelDenom = 10.0;  // timm's _LEVEL_DENOM: a magnitude of 10 is the full op strength
constexpr int kEraseAttempts = 10;

enum class Op {
  kAutoContrast,
  kEqualize,
  kInvert,
  kRotate,
  kPosterize,
  kPosterizeIncreasing,
  kSolarize,
  kSolarizeIncreasing,
  kSolarizeAdd,
  kColor,
  kColorIncreasing,
  kContrast,
  kContrastIncreasing,
  kBrightness,
  kBrightnessIncreasing,
  kSharpness,
  kSharpnessIncreasing,
  kShearX,
  kShearY,
  kTranslateXRel,
  kTranslateYRel
};

struct OpInfo {
  const char* name;
  Op op;
  bool signed_level;  // its level function calls timm's _randomly_negate
};
constexpr OpInfo kOps[] = {{"AutoContrast", Op::kAutoContrast, false},
                           {"Equalize", Op::kEqualize, false},
                           {"Invert", Op::kInvert, false},
                           {"Rotate", Op::kRotate, true},
                           {"Posterize", Op::kPosterize, false},
                           {"PosterizeIncreasing", Op::kPosterizeIncreasing, false},
                           {"Solarize", Op::kSolarize, false},
                           {"SolarizeIncreasing", Op::kSolarizeIncreasing, false},
                           {"SolarizeAdd", Op::kSolarizeAdd, false},
                           {"Color", Op::kColor, false},
                           {"ColorIncreasing", Op::kColorIncreasing, true},
                           {"Contrast", Op::kContrast, false},
                           {"ContrastIncreasing", Op::kContrastIncreasing, true},
                           {"Brightness", Op::kBrightness, false},
                           {"BrightnessIncreasing", Op::kBrightnessIncreasing, true},
                           {"Sharpness", Op::kSharpness, false},
                           {"SharpnessIncreasing", Op::kSharpnessIncreasing, true},
                           {"ShearX", Op::kShearX, true},
                           {"ShearY", Op::kShearY, true},
                           {"TranslateXRel", Op::kTranslateXRel, true},
                           {"TranslateYRel", Op::kTranslateYRel, true}};

const OpInfo& op_info(const std::string& name) {
  for (const OpInfo& o : kOps) {
    if (name == o.name) return o;
  }
  throw InputError("data.auto_augment", "unknown RandAugment op '" + name + "'");
}

using Lut = std::array<uint8_t, 256>;

// One table per channel (or one for all), applied to a copy.
cv::Mat apply_luts(const cv::Mat& img, const std::vector<Lut>& luts) {
  const int c = img.channels();
  cv::Mat table(1, 256, CV_8UC(c));
  for (int i = 0; i < 256; ++i) {
    for (int ch = 0; ch < c; ++ch) table.ptr<uint8_t>()[i * c + ch] = luts[luts.size() == 1 ? 0 : ch][i];
  }
  cv::Mat out;
  cv::LUT(img, table, out);
  return out;
}

template <typename F>
cv::Mat pointwise(const cv::Mat& img, F f) {
  Lut lut;
  for (int i = 0; i < 256; ++i) lut[i] = static_cast<uint8_t>(f(i));
  return apply_luts(img, {lut});
}

// Per-channel histograms. img: (H, W, C) uint8 -> C x 256 counts
std::vector<std::array<int64_t, 256>> histograms(const cv::Mat& img) {
  const int c = img.channels();
  std::vector<std::array<int64_t, 256>> h(static_cast<size_t>(c));
  for (auto& v : h) v.fill(0);
  for (int y = 0; y < img.rows; ++y) {
    const uint8_t* row = img.ptr<uint8_t>(y);
    for (int x = 0; x < img.cols * c; ++x) ++h[static_cast<size_t>(x % c)][row[x]];
  }
  return h;
}

// PIL ImageOps.autocontrast (cutoff 0): each channel's [lo, hi] stretched to [0, 255].
cv::Mat auto_contrast(const cv::Mat& img) {
  std::vector<Lut> luts;
  for (const auto& h : histograms(img)) {
    int lo = 0, hi = 255;
    while (lo < 255 && h[lo] == 0) ++lo;
    while (hi > 0 && h[hi] == 0) --hi;
    Lut lut;
    const double scale = hi > lo ? 255.0 / (hi - lo) : 0.0;
    const double offset = -static_cast<double>(lo) * scale;
    for (int i = 0; i < 256; ++i) {
      lut[i] = hi <= lo ? static_cast<uint8_t>(i)
                        : static_cast<uint8_t>(std::clamp(static_cast<int>(i * scale + offset), 0, 255));
    }
    luts.push_back(lut);
  }
  return apply_luts(img, luts);
}

// PIL ImageOps.equalize: each channel through its cumulative histogram, step (n - last bin) // 255.
cv::Mat equalize(const cv::Mat& img) {
  std::vector<Lut> luts;
  for (const auto& h : histograms(img)) {
    int64_t total = 0, last = 0;
    int used = 0;
    for (int64_t v : h) {
      if (v == 0) continue;
      total += v;
      last = v;
      ++used;
    }
    const int64_t step = used <= 1 ? 0 : (total - last) / 255;
    Lut lut;
    int64_t n = step / 2;
    for (int i = 0; i < 256; ++i) {
      lut[i] = step == 0 ? static_cast<uint8_t>(i) : static_cast<uint8_t>(std::min<int64_t>(n / step, 255));
      n += h[i];
    }
    luts.push_back(lut);
  }
  return apply_luts(img, luts);
}

// PIL ImageOps.posterize: keep the top `bits`; 0 bits (timm's level 10, which Pillow >= 11 refuses) gives
// black, as older Pillow did.
cv::Mat posterize(const cv::Mat& img, int bits) {
  if (bits >= 8) return img.clone();
  const int mask = bits <= 0 ? 0 : (~((1 << (8 - bits)) - 1)) & 0xff;
  return pointwise(img, [mask](int i) { return i & mask; });
}

// PIL Image.blend(degenerate, image, factor) for one value: single-precision, truncated, clipped.
inline uint8_t blend(int degenerate, int image, float alpha) {
  const float t = static_cast<float>(degenerate) + alpha * static_cast<float>(image - degenerate);
  return t <= 0.0f ? 0 : t >= 255.0f ? 255 : static_cast<uint8_t>(t);
}

// PIL's RGB -> L conversion (ITU-R 601-2 luma in 16-bit fixed point).
inline int luma(const uint8_t* p) { return (p[0] * 19595 + p[1] * 38470 + p[2] * 7471 + 0x8000) >> 16; }

// ImageEnhance.Color: blend with the image's grayscale (an 'L' image is its own grayscale: unchanged).
cv::Mat color(const cv::Mat& img, double factor) {
  if (img.channels() == 1) return img.clone();
  const auto alpha = static_cast<float>(factor);
  cv::Mat out(img.size(), img.type());
  for (int y = 0; y < img.rows; ++y) {
    const uint8_t* s = img.ptr<uint8_t>(y);
    uint8_t* d = out.ptr<uint8_t>(y);
    for (int x = 0; x < img.cols; ++x, s += 3, d += 3) {
      const int l = luma(s);
      for (int ch = 0; ch < 3; ++ch) d[ch] = blend(l, s[ch], alpha);
    }
  }
  return out;
}

// ImageEnhance.Contrast: blend with the mean of the grayscale image, rounded as int(mean + 0.5).
cv::Mat contrast(const cv::Mat& img, double factor) {
  int64_t sum = 0;
  for (int y = 0; y < img.rows; ++y) {
    const uint8_t* s = img.ptr<uint8_t>(y);
    for (int x = 0; x < img.cols; ++x) sum += img.channels() == 1 ? s[x] : luma(s + 3 * x);
  }
  const double mean = static_cast<double>(sum) / static_cast<double>(img.total());
  const int degenerate = static_cast<int>(mean + 0.5);
  const auto alpha = static_cast<float>(factor);
  return pointwise(img, [&](int i) { return blend(degenerate, i, alpha); });
}

// ImageEnhance.Sharpness: blend with PIL's SMOOTH filter ([[1,1,1],[1,5,1],[1,1,1]] / 13 in single precision,
// summed row below, row, row above, + 0.5 and truncated); the border pixels are the image's own.
cv::Mat sharpness(const cv::Mat& img, double factor) {
  cv::Mat out = img.clone();
  const int c = img.channels();
  if (img.rows < 3 || img.cols < 3) return out;
  const float k1 = 1.0f / 13.0f, k5 = 5.0f / 13.0f;
  const auto alpha = static_cast<float>(factor);
  for (int y = 1; y + 1 < img.rows; ++y) {
    const uint8_t* above = img.ptr<uint8_t>(y - 1);
    const uint8_t* mid = img.ptr<uint8_t>(y);
    const uint8_t* below = img.ptr<uint8_t>(y + 1);
    uint8_t* d = out.ptr<uint8_t>(y);
    for (int i = c; i < (img.cols - 1) * c; ++i) {
      float ss = 0.5f;
      ss += static_cast<float>(below[i - c]) * k1 + static_cast<float>(below[i]) * k1 +
            static_cast<float>(below[i + c]) * k1;
      ss += static_cast<float>(mid[i - c]) * k1 + static_cast<float>(mid[i]) * k5 +
            static_cast<float>(mid[i + c]) * k1;
      ss += static_cast<float>(above[i - c]) * k1 + static_cast<float>(above[i]) * k1 +
            static_cast<float>(above[i + c]) * k1;
      const int smooth = ss <= 0.0f ? 0 : ss >= 255.0f ? 255 : static_cast<int>(ss);
      d[i] = blend(smooth, mid[i], alpha);
    }
  }
  return out;
}

// PIL's cubic convolution (a = -1) through four samples at fraction d.
inline double cubic(double v1, double v2, double v3, double v4, double d) {
  const double p1 = v2, p2 = -v1 + v3, p3 = 2 * (v1 - v2) + v3 - v4, p4 = -v1 + v2 - v3 + v4;
  return p1 + d * (p2 + d * (p3 + d * p4));
}

// One output pixel of PIL's filter at (xin, yin), already shifted to pixel centers (edges repeated).
void sample(const cv::Mat& src, double xin, double yin, Resample resample, uint8_t* out) {
  const int w = src.cols, h = src.rows, c = src.channels();
  const int x = static_cast<int>(std::floor(xin)), y = static_cast<int>(std::floor(yin));
  const double dx = xin - x, dy = yin - y;
  auto col = [&](int i) { return std::clamp(i, 0, w - 1) * c; };
  auto row = [&](int j) { return src.ptr<uint8_t>(std::clamp(j, 0, h - 1)); };
  if (resample == Resample::kBilinear) {
    const int x0 = col(x), x1 = col(x + 1);
    const uint8_t *r0 = row(y), *r1 = row(y + 1);
    for (int ch = 0; ch < c; ++ch) {
      const double v1 = r0[x0 + ch] + (r0[x1 + ch] - r0[x0 + ch]) * dx;
      const double v2 = r1[x0 + ch] + (r1[x1 + ch] - r1[x0 + ch]) * dx;
      out[ch] = static_cast<uint8_t>(v1 + (v2 - v1) * dy);
    }
    return;
  }
  const int xs[4] = {col(x - 1), col(x), col(x + 1), col(x + 2)};
  const uint8_t* rows[4] = {row(y - 1), row(y), row(y + 1), row(y + 2)};
  // cubic(v1, v2, v3, v4, 0) is exactly v2, so at a whole-pixel position (the shears keep one coordinate on
  // the grid) the passes it would discard are skipped with the same bytes out.
  for (int ch = 0; ch < c; ++ch) {
    double v[4] = {0, 0, 0, 0};
    for (int j = 0; j < 4; ++j) {
      if (dy == 0.0 && j != 1) continue;
      const uint8_t* r = rows[j] + ch;
      v[j] = dx == 0.0 ? r[xs[1]] : cubic(r[xs[0]], r[xs[1]], r[xs[2]], r[xs[3]], dx);
    }
    const double s = dy == 0.0 ? v[1] : cubic(v[0], v[1], v[2], v[3], dy);
    out[ch] = s <= 0.0 ? 0 : s >= 255.0 ? 255 : static_cast<uint8_t>(s);
  }
}

// PIL's bicubic affine when the input column depends on the output column only and the input row on the
// output row only (m1 == m3 == 0: the translations): each source row's horizontal pass is computed once and
// shared by the up to four output rows that read it, with sample()'s arithmetic value for value.
cv::Mat affine_bicubic_separable(const cv::Mat& src, const std::array<double, 6>& m,
                                 const std::vector<uint8_t>& fill) {
  const int w = src.cols, h = src.rows, c = src.channels();
  struct Tap {
    bool inside = false;
    int at[4] = {0, 0, 0, 0};  // clamped source indices (columns pre-multiplied by c)
    double d = 0;
  };
  // m1 * 0.5 and m3 * 0.5 are the same signed zeros the full expression adds, so `in` is bit-identical.
  auto taps = [](int n, int limit, int stride, auto coordinate) {
    std::vector<Tap> t(static_cast<size_t>(n));
    for (int k = 0; k < n; ++k) {
      const double in = coordinate(k + 0.5);
      Tap& tap = t[static_cast<size_t>(k)];
      tap.inside = !(in < 0.0 || in >= limit);
      const int i = static_cast<int>(std::floor(in - 0.5));
      tap.d = (in - 0.5) - i;
      for (int j = 0; j < 4; ++j) tap.at[j] = std::clamp(i - 1 + j, 0, limit - 1) * stride;
    }
    return t;
  };
  const auto cols = taps(w, w, c, [&](double xi) { return m[0] * xi + m[1] * 0.5 + m[2]; });
  const auto rows = taps(h, h, 1, [&](double yi) { return m[3] * 0.5 + m[4] * yi + m[5]; });
  std::vector<std::vector<double>> pass(static_cast<size_t>(h));  // per source row: (w, c), filled lazily
  auto horizontal = [&](int r) -> const double* {
    auto& p = pass[static_cast<size_t>(r)];
    if (p.empty()) {
      p.assign(static_cast<size_t>(w * c), 0.0);
      const uint8_t* s = src.ptr<uint8_t>(r);
      for (int x = 0; x < w; ++x) {
        const Tap& t = cols[static_cast<size_t>(x)];
        if (!t.inside) continue;
        for (int ch = 0; ch < c; ++ch)
          p[static_cast<size_t>(x * c + ch)] =
              cubic(s[t.at[0] + ch], s[t.at[1] + ch], s[t.at[2] + ch], s[t.at[3] + ch], t.d);
      }
    }
    return p.data();
  };
  cv::Mat out(src.size(), src.type());
  for (int y = 0; y < h; ++y) {
    uint8_t* d = out.ptr<uint8_t>(y);
    const Tap& ty = rows[static_cast<size_t>(y)];
    const double* v[4] = {nullptr, nullptr, nullptr, nullptr};
    if (ty.inside)
      for (int j = 0; j < 4; ++j) v[j] = horizontal(ty.at[j]);
    for (int x = 0; x < w; ++x, d += c) {
      if (!ty.inside || !cols[static_cast<size_t>(x)].inside) {
        for (int ch = 0; ch < c; ++ch) d[ch] = fill[static_cast<size_t>(fill.size() == 1 ? 0 : ch)];
        continue;
      }
      for (int ch = 0; ch < c; ++ch) {
        const int i = x * c + ch;
        const double s = cubic(v[0][i], v[1][i], v[2][i], v[3][i], ty.d);
        d[ch] = s <= 0.0 ? 0 : s >= 255.0 ? 255 : static_cast<uint8_t>(s);
      }
    }
  }
  return out;
}

// PIL Image.transform(size, AFFINE, m, resample, fillcolor): output pixel (x, y) reads the input at
// (m0 (x+.5) + m1 (y+.5) + m2, m3 (x+.5) + m4 (y+.5) + m5); a point outside the image takes `fill`.
cv::Mat affine(const cv::Mat& src, const std::array<double, 6>& m, const std::vector<uint8_t>& fill,
               Resample resample) {
  if (resample == Resample::kBicubic && m[1] == 0.0 && m[3] == 0.0)
    return affine_bicubic_separable(src, m, fill);
  const int w = src.cols, h = src.rows, c = src.channels();
  cv::Mat out(src.size(), src.type());
  for (int y = 0; y < h; ++y) {
    uint8_t* d = out.ptr<uint8_t>(y);
    const double yi = y + 0.5;
    for (int x = 0; x < w; ++x, d += c) {
      const double xi = x + 0.5;
      const double xin = m[0] * xi + m[1] * yi + m[2], yin = m[3] * xi + m[4] * yi + m[5];
      if (xin < 0.0 || xin >= w || yin < 0.0 || yin >= h) {
        for (int ch = 0; ch < c; ++ch) d[ch] = fill[static_cast<size_t>(fill.size() == 1 ? 0 : ch)];
        continue;
      }
      sample(src, xin - 0.5, yin - 0.5, resample, d);
    }
  }
  return out;
}

// Python's round(v, 15) (correctly rounded through the shortest decimal, as CPython's dtoa).
double round15(double v) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.15f", v);
  return std::strtod(buf, nullptr);
}

// PIL Image.rotate(degrees) about the center, same size: the exact quarter turns PIL transposes, any other
// angle its rounded inverse rotation matrix.
cv::Mat rotate(const cv::Mat& img, double degrees, const std::vector<uint8_t>& fill, Resample resample) {
  double angle = std::fmod(degrees, 360.0);
  if (angle < 0) angle += 360.0;  // Python's float %
  if (angle == 0) return img.clone();
  cv::Mat out;
  if (angle == 180) cv::rotate(img, out, cv::ROTATE_180);
  if ((angle == 90 || angle == 270) && img.rows == img.cols)
    cv::rotate(img, out, angle == 90 ? cv::ROTATE_90_COUNTERCLOCKWISE : cv::ROTATE_90_CLOCKWISE);
  if (!out.empty()) return out;
  const double rad = -(angle * (std::numbers::pi / 180.0));
  const double cs = round15(std::cos(rad)), sn = round15(std::sin(rad)), nsn = round15(-std::sin(rad));
  const double cx = img.cols / 2.0, cy = img.rows / 2.0;
  std::array<double, 6> m{cs, sn, 0.0, nsn, cs, 0.0};
  m[2] = m[0] * -cx + m[1] * -cy + 0.0 + cx;
  m[5] = m[3] * -cx + m[4] * -cy + 0.0 + cy;
  return affine(img, m, fill, resample);
}

// timm's _enhance_increasing_level_to_arg: 1 -/+ 0.9 level, at least 0.1.
double increasing_factor(double level, bool negate) {
  const double l = level * 0.9;
  return std::max(0.1, 1.0 + (negate ? -l : l));
}

cv::Mat run_op(Op op, const cv::Mat& img, double magnitude, bool negate, const std::vector<uint8_t>& fill,
               Resample resample) {
  const double level = magnitude / kLevelDenom;
  auto sign = [negate](double v) { return negate ? -v : v; };
  switch (op) {
    case Op::kAutoContrast:
      return auto_contrast(img);
    case Op::kEqualize:
      return equalize(img);
    case Op::kInvert:
      return pointwise(img, [](int i) { return 255 - i; });
    case Op::kRotate:
      return rotate(img, sign(level * 30.0), fill, resample);
    case Op::kPosterize:
      return posterize(img, static_cast<int>(level * 4));
    case Op::kPosterizeIncreasing:
      return posterize(img, 4 - static_cast<int>(level * 4));
    case Op::kSolarize:
    case Op::kSolarizeIncreasing: {
      const int t = std::min(256, static_cast<int>(level * 256));
      const int thresh = op == Op::kSolarize ? t : 256 - t;
      return pointwise(img, [thresh](int i) { return i < thresh ? i : 255 - i; });
    }
    case Op::kSolarizeAdd: {
      const int add = std::min(128, static_cast<int>(level * 110));
      return pointwise(img, [add](int i) { return i < 128 ? std::min(255, i + add) : i; });
    }
    case Op::kColor:
      return color(img, level * 1.8 + 0.1);
    case Op::kColorIncreasing:
      return color(img, increasing_factor(level, negate));
    case Op::kContrast:
      return contrast(img, level * 1.8 + 0.1);
    case Op::kContrastIncreasing:
      return contrast(img, increasing_factor(level, negate));
    case Op::kBrightness:
    case Op::kBrightnessIncreasing: {
      const auto alpha =
          static_cast<float>(op == Op::kBrightness ? level * 1.8 + 0.1 : increasing_factor(level, negate));
      return pointwise(img, [alpha](int i) { return blend(0, i, alpha); });
    }
    case Op::kSharpness:
      return sharpness(img, level * 1.8 + 0.1);
    case Op::kSharpnessIncreasing:
      return sharpness(img, increasing_factor(level, negate));
    case Op::kShearX:
      return affine(img, {1, sign(level * 0.3), 0, 0, 1, 0}, fill, resample);
    case Op::kShearY:
      return affine(img, {1, 0, 0, sign(level * 0.3), 1, 0}, fill, resample);
    case Op::kTranslateXRel:
      return affine(img, {1, 0, sign(level * 0.45) * img.cols, 0, 1, 0}, fill, resample);
    case Op::kTranslateYRel:
      return affine(img, {1, 0, 0, 0, 1, sign(level * 0.45) * img.rows}, fill, resample);
  }
  return img.clone();
}

// timm's op sets, in its order.
const std::vector<std::string> kRandNames = {"AutoContrast", "Equalize",      "Invert",       "Rotate",
                                             "Posterize",    "Solarize",      "SolarizeAdd",  "Color",
                                             "Contrast",     "Brightness",    "Sharpness",    "ShearX",
                                             "ShearY",       "TranslateXRel", "TranslateYRel"};
const std::vector<std::string> kRandIncreasingNames = {"AutoContrast",
                                                       "Equalize",
                                                       "Invert",
                                                       "Rotate",
                                                       "PosterizeIncreasing",
                                                       "SolarizeIncreasing",
                                                       "SolarizeAdd",
                                                       "ColorIncreasing",
                                                       "ContrastIncreasing",
                                                       "BrightnessIncreasing",
                                                       "SharpnessIncreasing",
                                                       "ShearX",
                                                       "ShearY",
                                                       "TranslateXRel",
                                                       "TranslateYRel"};

}  // namespace

const std::vector<std::string>& rand_augment_op_names(bool increasing) {
  return increasing ? kRandIncreasingNames : kRandNames;
}

RandAugmentSpec parse_rand_augment(const std::string& text) {
  auto fail = [&](const std::string& fault) {
    throw InputError("data.auto_augment", "'" + text + "': " + fault);
  };
  std::vector<std::string> sections;
  size_t start = 0;
  for (size_t dash = text.find('-');; dash = text.find('-', start)) {
    sections.push_back(text.substr(start, dash == std::string::npos ? std::string::npos : dash - start));
    if (dash == std::string::npos) break;
    start = dash + 1;
  }
  if (sections[0] != "rand") fail("must start with 'rand' (timm's RandAugment, e.g. rand-m9-mstd0.5-inc1)");
  RandAugmentSpec spec;
  std::set<std::string> seen;
  for (size_t i = 1; i < sections.size(); ++i) {
    const std::string& s = sections[i];
    const size_t digit = s.find_first_of("0123456789");  // timm splits a section at its first digit
    const std::string key = s.substr(0, digit), value = digit == std::string::npos ? "" : s.substr(digit);
    if (key != "m" && key != "n" && key != "mstd" && key != "mmax" && key != "p" && key != "inc")
      fail("unknown section '" + s + "' (keys: m, n, mstd, mmax, p, inc)");
    if (value.empty()) fail("section '" + s + "' has no value");
    if (!seen.insert(key).second) fail("key '" + key + "' given twice");
    char* end = nullptr;
    const bool integer = key != "mstd" && key != "p";
    const double v = integer ? static_cast<double>(std::strtoll(value.c_str(), &end, 10))
                             : std::strtod(value.c_str(), &end);
    if (*end != '\0')
      fail("'" + key + "' needs " + (integer ? "an integer" : "a number") + ", got '" + value + "'");
    if (key == "m") spec.magnitude = v;
    if (key == "n") spec.num_ops = static_cast<int64_t>(v);
    if (key == "mstd") spec.magnitude_std = v > 100 ? std::numeric_limits<double>::infinity() : v;
    if (key == "mmax") spec.magnitude_max = v > 0 ? v : kLevelDenom;
    if (key == "p") spec.prob = v;
    if (key == "inc") spec.increasing = v != 0;
    if (key == "p" && v > 1) fail("'p' is a probability, got " + value);
    if (key == "inc" && v > 1) fail("'inc' is 0 or 1, got " + value);
  }
  return spec;
}

cv::Mat rand_augment_op(const std::string& name, const cv::Mat& img, double magnitude, bool negate,
                        const std::vector<uint8_t>& fill, Resample resample) {
  return run_op(op_info(name).op, img, magnitude, negate, fill, resample);
}

double standard_normal(std::mt19937_64& rng) {
  const double u1 = 1.0 - core::uniform01(rng);  // (0, 1]: the log stays finite
  const double u2 = core::uniform01(rng);
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
}

void fill_standard_normal(float* dst, int64_t n, std::mt19937_64& rng) {
  for (int64_t i = 0; i < n; i += 2) {
    const double u1 = 1.0 - core::uniform01(rng);
    const double u2 = core::uniform01(rng);
    const double r = std::sqrt(-2.0 * std::log(u1)), t = 2.0 * std::numbers::pi * u2;
    dst[i] = static_cast<float>(r * std::cos(t));
    if (i + 1 < n) dst[i + 1] = static_cast<float>(r * std::sin(t));
  }
}

double sample_magnitude(const RandAugmentSpec& spec, std::mt19937_64& rng) {
  double m = spec.magnitude;
  if (std::isinf(spec.magnitude_std)) {
    m = spec.magnitude * core::uniform01(rng);
  } else if (spec.magnitude_std > 0) {
    m = spec.magnitude + spec.magnitude_std * standard_normal(rng);
  }
  return std::max(0.0, std::min(m, spec.magnitude_max));
}

RandAugment::RandAugment(const RandAugmentSpec& spec, std::vector<uint8_t> fill, Resample resample)
    : spec_(spec), fill_(std::move(fill)), resample_(resample) {}

std::vector<RandAugmentDraw> RandAugment::draw(std::mt19937_64& rng) const {
  const auto& names = rand_augment_op_names(spec_.increasing);
  std::vector<RandAugmentDraw> draws(static_cast<size_t>(spec_.num_ops));
  for (auto& d : draws) d.op = core::uniform_int(rng, static_cast<int64_t>(names.size()));
  for (auto& d : draws) {
    d.applied = spec_.prob >= 1.0 || core::uniform01(rng) <= spec_.prob;
    if (!d.applied) continue;
    d.magnitude = sample_magnitude(spec_, rng);
    d.negate = op_info(names[static_cast<size_t>(d.op)]).signed_level && core::uniform01(rng) > 0.5;
  }
  return draws;
}

void RandAugment::apply(cv::Mat& img, std::mt19937_64& rng) const {
  const auto& names = rand_augment_op_names(spec_.increasing);
  for (const RandAugmentDraw& d : draw(rng)) {
    if (!d.applied) continue;
    img = run_op(op_info(names[static_cast<size_t>(d.op)]).op, img, d.magnitude, d.negate, fill_, resample_);
  }
}

RandomErasing::RandomErasing(const ErasingSpec& spec) : spec_(spec), mode_(Mode::kPixel) {
  if (spec.mode == "rand") {
    mode_ = Mode::kRand;
  } else if (spec.mode == "const") {
    mode_ = Mode::kConst;
  } else if (spec.mode != "pixel") {
    throw InputError("augment.remode", "unknown mode '" + spec.mode + "' (pixel | const | rand)");
  }
  if (!(spec.prob >= 0 && spec.prob <= 1)) throw InputError("augment.reprob", "probability outside [0, 1]");
  if (spec.max_count < 1)
    throw InputError("augment.recount", "must be at least 1, got " + std::to_string(spec.max_count));
  if (!(spec.min_area > 0 && spec.min_area <= spec.max_area && spec.max_area <= 1 && spec.min_aspect > 0))
    throw InputError("augment.random_erasing", "need 0 < min_area <= max_area <= 1 and min_aspect > 0");
}

void RandomErasing::apply(float* chw, int64_t channels, int64_t height, int64_t width,
                          std::mt19937_64& rng) const {
  if (core::uniform01(rng) > spec_.prob) return;
  const double area = static_cast<double>(height * width);
  const int64_t count = spec_.max_count == 1 ? 1 : 1 + core::uniform_int(rng, spec_.max_count);
  const double log_lo = std::log(spec_.min_aspect), log_hi = std::log(1.0 / spec_.min_aspect);
  for (int64_t k = 0; k < count; ++k) {
    for (int attempt = 0; attempt < kEraseAttempts; ++attempt) {
      const double fraction = spec_.min_area + (spec_.max_area - spec_.min_area) * core::uniform01(rng);
      const double target = fraction * area / static_cast<double>(count);
      const double aspect = std::exp(log_lo + (log_hi - log_lo) * core::uniform01(rng));
      // Python's round(): half to even, which std::nearbyint gives in the default rounding mode.
      const auto h = static_cast<int64_t>(std::nearbyint(std::sqrt(target * aspect)));
      const auto w = static_cast<int64_t>(std::nearbyint(std::sqrt(target / aspect)));
      if (!(w < width && h < height)) continue;
      const int64_t top = core::uniform_int(rng, height - h + 1);
      const int64_t left = core::uniform_int(rng, width - w + 1);
      erase_box(chw, channels, height, width, CropBox{top, left, h, w}, rng);
      break;
    }
  }
}

// Fills box in every channel: (C, h, w) normals drawn channel by channel, row by row (pixel), one normal per
// channel (rand), or zeros (const).
void RandomErasing::erase_box(float* chw, int64_t channels, int64_t height, int64_t width, const CropBox& box,
                              std::mt19937_64& rng) const {
  thread_local std::vector<float> values;
  const int64_t per_channel = mode_ == Mode::kPixel ? box.height * box.width : 1;
  values.assign(static_cast<size_t>(channels * per_channel), 0.0f);
  if (mode_ != Mode::kConst) fill_standard_normal(values.data(), static_cast<int64_t>(values.size()), rng);
  const float* v = values.data();
  for (int64_t c = 0; c < channels; ++c) {
    for (int64_t y = box.top; y < box.top + box.height; ++y) {
      float* row = chw + (c * height + y) * width;
      for (int64_t x = box.left; x < box.left + box.width; ++x) row[x] = mode_ == Mode::kPixel ? *v++ : *v;
    }
    if (mode_ != Mode::kPixel) ++v;
  }
}

}  // namespace semaim::data
