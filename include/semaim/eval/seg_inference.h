// Segmentation inference as mmseg's EncoderDecoder runs it at test time: the image resized to the test scale
// (aspect kept), logits from the whole image or from sliding windows averaged by a count map, resized back to
// the original size, argmax; and the split's scores (eval/segmentation.h) from it.
#pragma once
#include <ATen/ATen.h>

#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "semaim/data/seg_dataset.h"
#include "semaim/eval/segmentation.h"

namespace semaim::eval {

// Logits of a normalized batch whose sides are multiples of the model's patch size.
// imgs: (N, 3, h, w) -> (N, K, h, w)
using SegLogitsFn = std::function<at::Tensor(const at::Tensor& imgs)>;

struct SegInferOptions {
  std::string mode = "slide";  // whole | slide
  int64_t crop = 512, stride = 341;
  int64_t patch = 16;  // inputs are zero-padded at the bottom / right to multiples of it, logits cropped back
};

// Logits of one image. image: (1, 3, H, W) normalized -> (1, K, H, W) float32
at::Tensor infer_logits(const SegLogitsFn& logits, const at::Tensor& image, const SegInferOptions& o);

struct SegEvalOptions {
  SegInferOptions infer;
  std::array<double, 2> test_scale{2048, 512};  // keep-ratio resize target (long, short edges)
  std::vector<double> mean{0.485, 0.456, 0.406}, std{0.229, 0.224, 0.225};  // on [0, 1]
  bool fail_on_bad_image = false;
  // Test-time augmentation as mmseg's MultiScaleFlipAug + aug_test: the image at every ratio of test_scale
  // (each edge floored), each also flipped horizontally when flip, and the softmax probabilities at the
  // original size averaged before the argmax. {1.0} without flip is the single-scale test.
  std::vector<double> ratios{1.0};
  bool flip = false;
};

// The predicted class of every pixel of the image file at `path`, at its original size, through the test
// pipeline and infer_logits (with o's test-time augmentation). -> (H, W) int64; BadImage for a file that
// does not decode.
at::Tensor predict_image(const SegLogitsFn& logits, const std::string& path, const SegEvalOptions& o);

// Samples [begin, end) of `set` predicted as predict_image does, predictions at each image's original size, added to
// `metric`. -> the samples skipped because their image or label map is bad (BadImage; thrown instead when
// fail_on_bad_image)
int64_t evaluate_segmentation(const SegLogitsFn& logits, const data::SegDataset& set, int64_t begin, int64_t end,
                              const SegEvalOptions& o, SegMetric& metric);

}  // namespace semaim::eval
