// The maps and the drawing of `semaim visualize`'s rows (the SemAIM paper's figure of attention, similarity and
// orders; method.md §5-7): cls attention of the last block, cls similarity as the semantic pass computes it,
// each strategy's order through ordering::make_order, the reconstruction under the semantic order.
#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <array>
#include <opencv2/imgproc.hpp>
#include <zlib.h>

#include "semaim/core/errors.h"
#include "semaim/core/rng.h"
#include "semaim/data/settings.h"
#include "semaim/tasks/models.h"
#include "semaim/tasks/visualize.h"

namespace semaim::tasks {
namespace {

constexpr uint64_t kPictureStream = 0x70696374;  // "pict": the random orders of picture rows
constexpr int64_t kLabelHeight = 16, kGap = 4, kMinPanel = 112;

// Position of a strategy in ordering::strategy_table(): the key of its random stream, so a strategy draws the
// same order whichever panels are requested (the semantic panel is the reconstruction's order).
uint64_t table_index(ordering::Strategy s) {
  const auto& table = ordering::strategy_table();
  for (size_t i = 0; i < table.size(); ++i)
    if (&table[i] == &s.def()) return i;
  throw RuntimeFailure("strategy '" + ordering::strategy_name(s) + "' is not in the strategy table");
}

// Strategy s for every image, each from its own generator keyed (seed, id, strategy). tokens: (N, L+1, D)
// -> orders stacked over the images, (N, L) each
ordering::Ordering orders_of(ordering::Strategy strategy, const at::Tensor& tokens, const std::vector<int64_t>& ids,
                             const PictureSettings& s, int64_t gh, int64_t gw) {
  ordering::OrderingConfig cfg = s.ordering;
  cfg.strategy = strategy;
  std::vector<at::Tensor> keys, order, inverse;
  for (size_t i = 0; i < ids.size(); ++i) {
    at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(
        core::mix_seed(s.seed, kPictureStream, static_cast<uint64_t>(ids[i]), table_index(strategy)));
    const ordering::Ordering o = ordering::make_order(cfg, 1, gh, gw, tokens.narrow(0, static_cast<int64_t>(i), 1),
                                                      gen, tokens.device());
    keys.push_back(o.keys);
    order.push_back(o.order);
    inverse.push_back(o.inverse);
  }
  return {at::cat(keys), at::cat(order), at::cat(inverse)};
}

// (256, 3) uint8 RGB: OpenCV's colour map `map` at every grey level.
at::Tensor colour_table(int map) {
  cv::Mat ramp(256, 1, CV_8UC1), bgr, rgb;
  for (int i = 0; i < 256; ++i) ramp.at<uint8_t>(i, 0) = static_cast<uint8_t>(i);
  cv::applyColorMap(ramp, bgr, map);
  cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
  return at::from_blob(rgb.data, {256, 3}, at::kByte).clone();
}

// (h, w, 3) uint8 -> cv::Mat RGB of size side x side (nearest: cells stay cells).
cv::Mat to_panel(const at::Tensor& hwc, int64_t side, int interpolation = cv::INTER_NEAREST) {
  const at::Tensor c = hwc.contiguous();
  const cv::Mat m(static_cast<int>(c.size(0)), static_cast<int>(c.size(1)), CV_8UC3, c.data_ptr<uint8_t>());
  cv::Mat out;
  cv::resize(m, out, cv::Size(static_cast<int>(side), static_cast<int>(side)), 0, 0, interpolation);
  return out;
}

// A normalized image in [0, 255]. img: (C, H, W) -> (H, W, 3) uint8
at::Tensor image_pixels(const at::Tensor& img, const PictureSettings& s) {
  const int64_t c = img.size(0);
  auto stat = [&](const std::vector<double>& v) {
    at::Tensor t = at::tensor(v, at::kDouble).to(at::kFloat);
    return (t.numel() == 1 ? t.expand({c}) : t).reshape({c, 1, 1});
  };
  at::Tensor x = (img.to(at::kFloat) * stat(s.std) + stat(s.mean)).clamp(0, 1).mul(255).round().to(at::kByte);
  x = x.permute({1, 2, 0});
  return c == 1 ? x.expand({-1, -1, 3}) : x;
}

// A per-patch map bilinearly upsampled to the panel, min-max scaled, viridis. values: (gh*gw) -> panel
cv::Mat heat_panel(const at::Tensor& values, int64_t gh, int64_t gw, int64_t side) {
  at::Tensor g = values.to(at::kFloat).reshape({1, 1, gh, gw});
  g = (g - g.min()) / (g.max() - g.min()).clamp_min(1e-12);
  g = at::upsample_bilinear2d(g, {side, side}, /*align_corners=*/false).clamp(0, 1);
  const at::Tensor grey = g.mul(255).round().to(at::kByte).reshape({side, side}).contiguous();
  const cv::Mat m(static_cast<int>(side), static_cast<int>(side), CV_8UC1, grey.data_ptr<uint8_t>());
  cv::Mat bgr, rgb;
  cv::applyColorMap(m, bgr, cv::COLORMAP_VIRIDIS);
  cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
  return rgb;
}

// Panels side by side under their labels on white.
at::Tensor compose(const std::vector<std::pair<std::string, cv::Mat>>& panels, int64_t side) {
  const auto [h, w] = row_size(static_cast<int64_t>(panels.size()), side);
  cv::Mat row(static_cast<int>(h), static_cast<int>(w), CV_8UC3, cv::Scalar(255, 255, 255));
  for (size_t k = 0; k < panels.size(); ++k) {
    const int x0 = static_cast<int>(kGap + static_cast<int64_t>(k) * (side + kGap));
    panels[k].second.copyTo(row(cv::Rect(x0, static_cast<int>(kLabelHeight), static_cast<int>(side),
                                         static_cast<int>(side))));
    int base = 0;
    const cv::Size t = cv::getTextSize(panels[k].first, cv::FONT_HERSHEY_SIMPLEX, 0.4, 1, &base);
    const double scale = std::min(0.4, 0.4 * static_cast<double>(side) / std::max(t.width, 1));
    cv::putText(row, panels[k].first, {x0, static_cast<int>(kLabelHeight) - 4}, cv::FONT_HERSHEY_SIMPLEX, scale,
                cv::Scalar(0, 0, 0), 1, cv::LINE_AA);
  }
  return at::from_blob(row.data, {h, w, 3}, at::kByte).clone();
}

}  // namespace

std::vector<std::string> default_picture_strategies() { return {"raster", "stochastic", "similarity", "semantic"}; }

PictureSettings picture_settings(const config::Config& cfg, const std::vector<std::string>& strategies) {
  PictureSettings s;
  s.ordering = ordering_config(cfg);
  for (const auto& name : strategies.empty() ? default_picture_strategies() : strategies) {
    try {
      s.strategies.push_back(ordering::parse_strategy(name));
    } catch (const InputError& e) {
      throw InputError("--strategies", e.what());
    }
  }
  s.target = target_config(cfg);
  const models::VitConfig v = aim_config(cfg).vit;
  const data::AugmentConfig eval_tf = data::augment_config(cfg, v.img_size, v.in_chans, /*random=*/false);
  s.mean = eval_tf.mean;
  s.std = eval_tf.std;
  s.seed = static_cast<uint64_t>(cfg.get_int("run.seed"));
  return s;
}

// probs: (N, heads, L+1, L+1) -> (N, L)
at::Tensor cls_attention_map(const at::Tensor& probs) {
  const int64_t t = probs.size(-1);
  return probs.select(2, 0).narrow(-1, 1, t - 1).mean(1);
}

// pred: (N, L, p*p*C), imgs: (N, C, H, W) -> (N, L, p*p*C)
at::Tensor unnormalize_prediction(const at::Tensor& pred, const at::Tensor& imgs, int64_t patch,
                                  const models::TargetConfig& target) {
  if (!target.norm_pix) return pred.to(at::kFloat);
  models::TargetConfig raw = target;
  raw.norm_pix = false;
  const at::Tensor t = models::pixel_target(imgs, patch, raw).to(at::kFloat);  // the blurred patches
  const at::Tensor mean = t.mean(-1, /*keepdim=*/true);
  const at::Tensor var = t.var(-1, /*unbiased=*/true, /*keepdim=*/true);
  return pred.to(at::kFloat) * (var + 1e-6).sqrt() + mean;
}

// imgs: (N, C, H, W) -> maps on the CPU
PictureMaps picture_maps(models::AimVitImpl& model, const at::Tensor& imgs, const std::vector<int64_t>& ids,
                         const PictureSettings& s) {
  if (static_cast<int64_t>(ids.size()) != imgs.size(0))
    throw InputError("picture_maps", "one id per image needed, got " + std::to_string(ids.size()) + " for " +
                                         std::to_string(imgs.size(0)) + " images");
  at::NoGradGuard no_grad;
  const models::VitConfig& v = model.vit_config();
  const int64_t gh = v.grid_h(), gw = v.grid_w();
  auto [tokens, probs] = model.encode_with_attention(imgs);
  tokens = tokens.to(at::kFloat);
  PictureMaps m;
  m.gh = gh;
  m.gw = gw;
  m.attention = cls_attention_map(probs.to(at::kFloat)).cpu();
  m.similarity = ordering::cls_similarity(tokens, s.ordering.source).to(at::kFloat).cpu();
  for (const auto& strategy : s.strategies) m.ranks.push_back(orders_of(strategy, tokens, ids, s, gh, gw).inverse.cpu());
  if (s.target.features()) return m;  // a feature-target model predicts no pixels: no reconstruction panel
  const ordering::Ordering sem = orders_of(ordering::parse_strategy("semantic"), tokens, ids, s, gh, gw);
  const at::Tensor pred = model.forward_ordered(imgs, sem.keys, sem.order, sem.inverse);
  m.reconstruction = model.unpatchify(unnormalize_prediction(pred, imgs, v.patch_size, s.target)).cpu();
  return m;
}

// ranks: (...) int64 -> (..., 3) uint8
at::Tensor order_colours(const at::Tensor& ranks, int64_t l) {
  static const at::Tensor kJet = colour_table(cv::COLORMAP_JET);
  // First in the order -> grey level 255 (jet's warm end), last -> 0 (its cold end).
  const at::Tensor r = ranks.to(at::kDouble);
  const at::Tensor level = l > 1 ? (255.0 * (1.0 - r / static_cast<double>(l - 1))).round() : at::full_like(r, 255);
  return kJet.index_select(0, level.clamp(0, 255).to(at::kLong).flatten()).reshape(
      [&] {
        std::vector<int64_t> shape(ranks.sizes().begin(), ranks.sizes().end());
        shape.push_back(3);
        return shape;
      }());
}

int64_t panel_side(int64_t image_side) { return image_side * std::max<int64_t>(1, (kMinPanel + image_side - 1) / image_side); }

std::pair<int64_t, int64_t> row_size(int64_t panels, int64_t side) {
  return {kLabelHeight + side + kGap, kGap + panels * (side + kGap)};
}

int64_t row_panels(const PictureSettings& s) {
  return (s.target.features() ? 3 : 4) + static_cast<int64_t>(s.strategies.size());
}

// imgs: (N, C, H, W) -> (H', W', 3) uint8
at::Tensor picture_row(const PictureMaps& maps, const at::Tensor& imgs, int64_t i, const PictureSettings& s) {
  const int64_t gh = maps.gh, gw = maps.gw, l = gh * gw, side = panel_side(imgs.size(2));
  std::vector<std::pair<std::string, cv::Mat>> panels;
  panels.emplace_back("input", to_panel(image_pixels(imgs[i].cpu(), s), side));
  panels.emplace_back("cls attention", heat_panel(maps.attention[i], gh, gw, side));
  panels.emplace_back("cls similarity", heat_panel(maps.similarity[i], gh, gw, side));
  for (size_t k = 0; k < s.strategies.size(); ++k)
    panels.emplace_back(ordering::strategy_name(s.strategies[k]),
                        to_panel(order_colours(maps.ranks[k][i].reshape({gh, gw}), l), side));
  if (maps.reconstruction.defined())
    panels.emplace_back("reconstruction", to_panel(image_pixels(maps.reconstruction[i], s), side));
  return compose(panels, side);
}

// A PNG written with zlib alone (8-bit RGB, filter 0 on every row, one deflate stream at level 6), so rows can
// be written by a build without OpenCV's imgcodecs too; the bytes are a function of the pixels.
std::string encode_png(const at::Tensor& rgb) {
  if (rgb.dim() != 3 || rgb.size(2) != 3 || rgb.size(0) < 1 || rgb.size(1) < 1)
    throw InputError("encode_png", "expected (H, W, 3) pixels, got " + c10::str(rgb.sizes()));
  const at::Tensor c = rgb.to(at::kByte).contiguous();
  const int64_t h = c.size(0), stride = 3 * c.size(1);
  const char* px = reinterpret_cast<const char*>(c.data_ptr<uint8_t>());
  std::string raw;
  raw.reserve(static_cast<size_t>(h * (stride + 1)));
  for (int64_t y = 0; y < h; ++y) {
    raw.push_back('\0');  // filter type 0 (none)
    raw.append(px + y * stride, static_cast<size_t>(stride));
  }
  uLongf n = compressBound(static_cast<uLong>(raw.size()));
  std::string z(n, '\0');
  if (compress2(reinterpret_cast<Bytef*>(z.data()), &n, reinterpret_cast<const Bytef*>(raw.data()),
                static_cast<uLong>(raw.size()), 6) != Z_OK)
    throw RuntimeFailure("cannot compress a picture row for its PNG");
  z.resize(n);
  auto be32 = [](std::string& out, uint64_t v) {
    for (int s = 24; s >= 0; s -= 8) out.push_back(static_cast<char>((v >> s) & 0xffu));
  };
  std::string png("\x89PNG\r\n\x1a\n", 8);
  auto chunk = [&](const char* type, const std::string& data) {
    const std::string body = std::string(type, 4) + data;
    be32(png, data.size());
    png += body;
    be32(png, crc32(0, reinterpret_cast<const Bytef*>(body.data()), static_cast<uInt>(body.size())));
  };
  std::string ihdr;
  be32(ihdr, static_cast<uint64_t>(c.size(1)));
  be32(ihdr, static_cast<uint64_t>(h));
  ihdr += std::string("\x08\x02\x00\x00\x00", 5);  // bit depth 8, colour type 2 (RGB), deflate, filter 0, no interlace
  chunk("IHDR", ihdr);
  chunk("IDAT", z);
  chunk("IEND", "");
  return png;
}

}  // namespace semaim::tasks
