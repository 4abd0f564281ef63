// mmseg's segmentation transforms as pipeline steps: RandomResize's keep-ratio rescale, RandomCrop's
// cat_max_ratio redraws read off the label map, PhotoMetricDistortion, and label maps that stay aligned with
// their image through resize, crop, flip and pad.
#include <gtest/gtest.h>
#include <opencv2/imgcodecs.hpp>

#include <filesystem>
#include <fstream>

#include "semaim/core/errors.h"
#include "semaim/data/seg_dataset.h"
#include "semaim/data/seg_transforms.h"
#include "temp_dir.h"

namespace {
using semaim::data::AugmentConfig;
using semaim::data::Pipeline;

AugmentConfig seg_cfg(int64_t crop, double cat_max_ratio) {
  AugmentConfig c;
  c.out_size = crop;
  c.transforms = {"random_resize", "random_crop", "hflip", "pad", "normalize"};
  c.seg_scale = {64, 32};
  c.ratio_range = {0.5, 2.0};
  c.cat_max_ratio = cat_max_ratio;
  c.interpolation = "bilinear";
  c.mean = {0.5};
  c.std = {0.5};
  return c;
}

TEST(SegTransforms, RescaleKeepsTheAspectAsMmcv) {
  EXPECT_EQ(semaim::data::rescale_keep_ratio(512, 683, 2048, 512), (std::pair<int64_t, int64_t>{512, 683}));
  EXPECT_EQ(semaim::data::rescale_keep_ratio(300, 400, 1024, 256), (std::pair<int64_t, int64_t>{256, 341}));
  EXPECT_EQ(semaim::data::rescale_keep_ratio(100, 1000, 512, 2048), (std::pair<int64_t, int64_t>{205, 2048}));
}

TEST(SegTransforms, PipelineNeedsPadAfterRandomCropAndValidatesItsRanges) {
  AugmentConfig c = seg_cfg(16, 0.75);
  EXPECT_EQ(Pipeline::build(c, 3).out_size(), 16);
  c.transforms = {"random_resize", "random_crop", "normalize"};
  EXPECT_THROW(Pipeline::build(c, 3), semaim::InputError);
  c = seg_cfg(16, 0.0);
  EXPECT_THROW(Pipeline::build(c, 3), semaim::InputError);
  c = seg_cfg(16, 0.75);
  c.ratio_range = {2.0, 1.0};
  EXPECT_THROW(Pipeline::build(c, 3), semaim::InputError);
}

// The window's labelled pixels are spread over classes as mmseg's RandomCrop requires.
bool spread(const at::Tensor& window, double ratio) {
  const at::Tensor v = window.reshape(-1).to(at::kLong);
  at::Tensor counts = at::bincount(v.masked_select(v != 255), {}, 256);
  counts = counts.masked_select(counts > 0);
  return counts.numel() > 1 && counts.max().item<double>() / counts.sum().item<double>() < ratio;
}

TEST(SegTransforms, RandomCropRedrawsUpToTenTimesWhileOneClassDominates) {
  // Class 1 everywhere but a 12x12 corner of classes 2 and 3: most 16x16 windows hold one class.
  at::Tensor label = at::ones({48, 48}, at::kByte);
  label.slice(0, 0, 12).slice(1, 0, 6).fill_(2);
  label.slice(0, 0, 12).slice(1, 6, 12).fill_(3);
  AugmentConfig c = seg_cfg(16, 0.75);
  c.transforms = {"random_crop", "pad"};
  const Pipeline with = Pipeline::build(c, 3);
  c.cat_max_ratio = 1.0;
  const Pipeline plain = Pipeline::build(c, 3);
  int satisfied = 0, fallback = 0;
  for (uint64_t seed = 0; seed < 200; ++seed) {
    std::mt19937_64 rng(seed), replay(seed);
    const auto g = with.plan(48, 48, rng, &label);
    // The draws without the check, in the same order: the kept window is the first that satisfies it, else
    // the eleventh.
    std::vector<semaim::data::CropBox> draws;
    for (int k = 0; k < 11; ++k) draws.push_back(plain.plan(48, 48, replay, &label).window);
    size_t expected = 10;
    for (size_t k = 0; k < 10; ++k) {
      const auto& w = draws[k];
      if (spread(label.slice(0, w.top, w.top + w.height).slice(1, w.left, w.left + w.width), 0.75)) {
        expected = k;
        break;
      }
    }
    EXPECT_EQ(g.window.top, draws[expected].top) << seed;
    EXPECT_EQ(g.window.left, draws[expected].left) << seed;
    satisfied += expected < 10;
    fallback += expected == 10;
  }
  EXPECT_GT(satisfied, 20);
  EXPECT_GT(fallback, 0);
}

TEST(SegTransforms, PhotometricKeepsGrayImagesGrayAndIsDeterministicPerSeed) {
  AugmentConfig c = seg_cfg(16, 1.0);
  c.transforms = {"center_crop", "photometric"};
  const Pipeline p = Pipeline::build(c, 3);
  cv::Mat gray(16, 16, CV_8UC3);
  for (int y = 0; y < 16; ++y)
    for (int x = 0; x < 16; ++x) gray.at<cv::Vec3b>(y, x) = cv::Vec3b(8 * x + y, 8 * x + y, 8 * x + y);
  std::vector<float> a(3 * 256), b(3 * 256);
  int changed = 0;
  for (uint64_t seed = 0; seed < 20; ++seed) {
    std::mt19937_64 r1(seed), r2(seed);
    p.run(gray, r1, a.data());
    p.run(gray, r2, b.data());
    EXPECT_EQ(a, b);
    for (int i = 0; i < 256; ++i) {
      ASSERT_FLOAT_EQ(a[i], a[256 + i]) << seed;  // R == G == B after brightness, contrast, saturation, hue
      ASSERT_FLOAT_EQ(a[i], a[512 + i]) << seed;
    }
    changed += a[17] != (8.0f * 1 + 2) / 255.0f;
  }
  EXPECT_GT(changed, 5);
}

TEST(SegTransforms, LabelMapsStayAlignedWithTheirImageThroughResizeCropFlipAndPad) {
  semaim::test::TempDir dir;
  std::filesystem::create_directories(dir.path() / "img");
  std::filesystem::create_directories(dir.path() / "ann");
  // Image colour = 40 * label in 8-pixel blocks, so a pixel's label can be read back off its colour.
  at::Tensor label = at::randint(0, 6, {5, 7}, at::kLong).repeat_interleave(8, 0).repeat_interleave(8, 1).to(at::kByte);
  cv::Mat rgb(40, 56, CV_8UC3);
  for (int y = 0; y < 40; ++y)
    for (int x = 0; x < 56; ++x) {
      const uchar v = static_cast<uchar>(40 * label[y][x].item<int>());
      rgb.at<cv::Vec3b>(y, x) = cv::Vec3b(v, v, v);
    }
  cv::imwrite((dir.path() / "img" / "a.png").string(), rgb);
  std::ofstream((dir.path() / "ann" / "a.png").string(), std::ios::binary)
      << semaim::data::encode_label_png(label);
  semaim::data::SegLayout l;
  l.img_dir = (dir.path() / "img").string();
  l.ann_dir = (dir.path() / "ann").string();
  l.img_suffix = ".png";
  l.num_classes = 6;
  const semaim::data::SegDataset set(l);
  AugmentConfig c = seg_cfg(32, 0.75);
  c.transforms = {"random_resize", "random_crop", "hflip", "pad"};  // no normalize: values are x / 255
  const Pipeline p = Pipeline::build(c, 3);
  for (uint64_t seed = 0; seed < 10; ++seed) {
    std::mt19937_64 rng(seed);
    std::vector<float> img(3 * 32 * 32);
    semaim::data::Target t;
    const auto g = set.load_with_target(0, p, rng, img.data(), &t);
    const auto out = semaim::data::transform_target(g, t, set.source(0)).label_map;
    ASSERT_EQ(out.sizes(), (at::IntArrayRef{32, 32}));
    int64_t agree = 0, labelled = 0;
    for (int y = 0; y < 32; ++y)
      for (int x = 0; x < 32; ++x) {
        const int64_t lab = out[y][x].item<int64_t>();
        if (y >= g.window.height || x >= g.window.width) {
          EXPECT_EQ(lab, 255);  // padding
          continue;
        }
        ++labelled;
        agree += std::lround(img[y * 32 + x] * 255.0f / 40.0f) == lab;
      }
    EXPECT_GT(static_cast<double>(agree) / labelled, 0.85) << "seed " << seed;
  }
}

}  // namespace
