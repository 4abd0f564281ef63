// mmseg EncoderDecoder.whole_inference / slide_inference and the test pipeline (Resize keep_ratio, then
// postprocess_result's resize of the logits to the original shape).
#include "semaim/eval/seg_inference.h"

#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>

#include "semaim/core/errors.h"
#include "semaim/core/log.h"
#include "semaim/data/decode.h"
#include "semaim/data/seg_transforms.h"

namespace semaim::eval {
namespace {

// Logits of an image of any size: zero-padded to multiples of the patch, logits cropped back.
// image: (1, 3, h, w) -> (1, K, h, w)
at::Tensor padded_logits(const SegLogitsFn& logits, const at::Tensor& image, int64_t patch) {
  const int64_t h = image.size(2), w = image.size(3);
  const int64_t ph = (patch - h % patch) % patch, pw = (patch - w % patch) % patch;
  const at::Tensor input = ph == 0 && pw == 0 ? image : at::constant_pad_nd(image, {0, pw, 0, ph}, 0.0);
  const at::Tensor out = logits(input).to(at::kFloat);
  if (out.dim() != 4 || out.size(2) != input.size(2) || out.size(3) != input.size(3))
    throw RuntimeFailure("segmentation logits of an input of " + c10::str(input.sizes()) + " came back as " +
                         c10::str(out.sizes()) + ": a SegLogitsFn returns them at the input's size");
  return ph == 0 && pw == 0 ? out : out.slice(2, 0, h).slice(3, 0, w);
}

}  // namespace

at::Tensor infer_logits(const SegLogitsFn& logits, const at::Tensor& image, const SegInferOptions& o) {
  if (o.mode == "whole") return padded_logits(logits, image, o.patch);
  if (o.mode != "slide") throw InputError("segment.mode", "unknown inference mode '" + o.mode + "' (whole | slide)");
  const int64_t h = image.size(2), w = image.size(3);
  const int64_t rows = std::max<int64_t>(h - o.crop + o.stride - 1, 0) / o.stride + 1;
  const int64_t cols = std::max<int64_t>(w - o.crop + o.stride - 1, 0) / o.stride + 1;
  at::Tensor sum, count = at::zeros({1, 1, h, w}, image.options().dtype(at::kFloat));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) {
      const int64_t y2 = std::min(r * o.stride + o.crop, h), x2 = std::min(c * o.stride + o.crop, w);
      const int64_t y1 = std::max<int64_t>(y2 - o.crop, 0), x1 = std::max<int64_t>(x2 - o.crop, 0);
      const at::Tensor part = padded_logits(logits, image.slice(2, y1, y2).slice(3, x1, x2), o.patch);
      if (!sum.defined()) sum = at::zeros({1, part.size(1), h, w}, part.options());
      sum.slice(2, y1, y2).slice(3, x1, x2).add_(part);
      count.slice(2, y1, y2).slice(3, x1, x2).add_(1.0);
    }
  return sum / count;
}

namespace {

// The test pipeline's input: the decoded image resized to fit `scale` (bilinear, aspect kept), normalized.
// rgb: (H, W) 3-channel uint8 -> (1, 3, h, w) float32
at::Tensor test_input(const cv::Mat& rgb, const std::array<double, 2>& scale, const SegEvalOptions& o) {
  const auto [h, w] = data::rescale_keep_ratio(rgb.rows, rgb.cols, scale[0], scale[1]);
  cv::Mat resized;
  cv::resize(rgb, resized, cv::Size(static_cast<int>(w), static_cast<int>(h)), 0, 0, cv::INTER_LINEAR);
  at::Tensor x = at::from_blob(resized.data, {h, w, 3}, at::kByte).permute({2, 0, 1}).to(at::kFloat).div_(255.0);
  for (int64_t c = 0; c < 3; ++c) {
    const size_t i = o.mean.size() == 1 ? 0 : static_cast<size_t>(c);
    x[c].sub_(o.mean[i]).div_(o.std[i]);
  }
  return x.unsqueeze(0);
}

// Class per pixel of a decoded image at its size. rgb: (H, W) 3-channel uint8 -> (H, W) int64
at::Tensor predict_rgb(const SegLogitsFn& logits, const cv::Mat& rgb, const SegEvalOptions& o) {
  const std::array<int64_t, 2> size{rgb.rows, rgb.cols};
  const bool single = o.ratios.size() == 1 && o.ratios[0] == 1.0 && !o.flip;
  if (single) {  // the argmax of the logits equals that of their softmax
    const at::Tensor lg = infer_logits(logits, test_input(rgb, o.test_scale, o), o.infer);
    return at::upsample_bilinear2d(lg, size, false).argmax(1).squeeze(0).to(at::kLong).cpu();
  }
  at::Tensor prob_sum;
  for (const double ratio : o.ratios) {
    const std::array<double, 2> scale{std::floor(o.test_scale[0] * ratio), std::floor(o.test_scale[1] * ratio)};
    const at::Tensor input = test_input(rgb, scale, o);
    for (const bool flipped : {false, true}) {
      if (flipped && !o.flip) break;
      at::Tensor lg = infer_logits(logits, flipped ? input.flip({3}) : input, o.infer);
      if (flipped) lg = lg.flip({3});
      const at::Tensor prob = at::upsample_bilinear2d(lg, size, false).softmax(1);
      prob_sum = prob_sum.defined() ? prob_sum + prob : prob;
    }
  }
  return prob_sum.argmax(1).squeeze(0).to(at::kLong).cpu();
}

}  // namespace

at::Tensor predict_image(const SegLogitsFn& logits, const std::string& path, const SegEvalOptions& o) {
  return predict_rgb(logits, data::decode_rgb(data::read_file_bytes(path), path), o);
}

int64_t evaluate_segmentation(const SegLogitsFn& logits, const data::SegDataset& set, int64_t begin, int64_t end,
                              const SegEvalOptions& o, SegMetric& metric) {
  int64_t bad = 0;
  for (int64_t i = begin; i < end; ++i) {
    at::Tensor labels;
    cv::Mat rgb;
    try {
      labels = set.target(i).label_map;
      const std::string path = set.source(i);
      rgb = data::decode_rgb(data::read_file_bytes(path), path);
      if (rgb.rows != labels.size(0) || rgb.cols != labels.size(1))
        throw data::BadImage(set.label_path(i), "label map is " + std::to_string(labels.size(1)) + "x" +
                                                    std::to_string(labels.size(0)) + " but the image " + path +
                                                    " is " + std::to_string(rgb.cols) + "x" +
                                                    std::to_string(rgb.rows));
    } catch (const data::BadImage& e) {
      if (o.fail_on_bad_image) throw InputError(std::string(e.what()) + " (data.on_bad_image: fail)");
      core::log_warn(std::string("evaluation skips a bad sample: ") + e.what());
      ++bad;
      continue;
    }
    metric.add(predict_rgb(logits, rgb, o), labels);
  }
  return bad;
}

}  // namespace semaim::eval
