// JPEG/PNG decoding to RGB (grayscale, CMYK, PNG named .JPEG), crop-aware and reduced-scale decoding against
// full decode + crop + resize, and every kind of broken file as a BadImage naming the file.
#include <gtest/gtest.h>

#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include <fstream>
#include <set>

#include "corpus.h"
#include "semaim/data/dataset.h"
#include "semaim/data/decode.h"
#include "temp_dir.h"

namespace semaim::data {
namespace {

using semaim::test::corpus;

double mean_abs_diff(const cv::Mat& a, const cv::Mat& b) {
  cv::Mat diff;
  cv::absdiff(a, b, diff);
  const cv::Scalar m = cv::mean(diff);
  return (m[0] + m[1] + m[2]) / 3.0;
}

cv::Mat full_decode(const std::string& path) {
  const auto bytes = read_file_bytes(path);
  const JpegInfo info = read_jpeg_info(bytes, path);
  return decode_jpeg_region(bytes, path, CropBox{0, 0, info.height, info.width}, 1).rgb;
}

TEST(Decode, JpegInfoReadsTheFrameHeaderSize) {
  const std::string path = corpus("checks/large.jpg");
  const JpegInfo info = read_jpeg_info(read_file_bytes(path), path);
  EXPECT_EQ(info.height, 1800);
  EXPECT_EQ(info.width, 2400);
  EXPECT_EQ(info.components, 3);
}

TEST(Decode, CmykJpegDecodesToTheRgbItWasMadeFrom) {
  const cv::Mat cmyk = full_decode(corpus("checks/cmyk.jpg"));
  const cv::Mat source = decode_rgb(read_file_bytes(corpus("checks/cmyk_source.png")), "png");
  ASSERT_EQ(cmyk.type(), CV_8UC3);
  ASSERT_EQ(cmyk.size(), source.size());
  // JPEG quality 95 in CMYK: within 3 levels on average; an uninverted or BGR decode is off by ~100.
  EXPECT_LT(mean_abs_diff(cmyk, source), 3.0);
}

TEST(Decode, GrayscaleJpegDecodesToThreeEqualChannels) {
  const cv::Mat gray = full_decode(corpus("checks/gray.jpg"));
  ASSERT_EQ(gray.type(), CV_8UC3);
  std::vector<cv::Mat> ch;
  cv::split(gray, ch);
  EXPECT_EQ(cv::norm(ch[0], ch[1], cv::NORM_INF), 0);
  EXPECT_EQ(cv::norm(ch[0], ch[2], cv::NORM_INF), 0);
  // It is the luma of the colour original.
  const cv::Mat source = decode_rgb(read_file_bytes(corpus("checks/cmyk_source.png")), "png");
  cv::Mat luma;
  cv::cvtColor(source, luma, cv::COLOR_RGB2GRAY);
  cv::Mat diff;
  cv::absdiff(ch[0], luma, diff);
  EXPECT_LT(cv::mean(diff)[0], 3.0);
}

TEST(Decode, CroppedDecodeAtFullScaleEqualsTheFullDecodeCrop) {
  const std::string path = corpus("checks/large.jpg");
  const auto bytes = read_file_bytes(path);
  const cv::Mat full = full_decode(path);
  for (const CropBox box :
       {CropBox{0, 0, 1800, 2400}, CropBox{333, 517, 901, 1203}, CropBox{1700, 2300, 100, 100}}) {
    const DecodedRegion r = decode_jpeg_region(bytes, path, box, 1);
    const cv::Mat got =
        r.rgb(cv::Rect(static_cast<int>(box.left - r.origin_x), static_cast<int>(box.top - r.origin_y),
                       static_cast<int>(box.width), static_cast<int>(box.height)));
    const cv::Mat want = full(cv::Rect(static_cast<int>(box.left), static_cast<int>(box.top),
                                       static_cast<int>(box.width), static_cast<int>(box.height)));
    // libjpeg-turbo's cropped/skipped decode loses the upsampling context at the crop edges: at most 2
    // levels.
    EXPECT_LE(cv::norm(got, want, cv::NORM_INF), 2) << "box " << box.top << "," << box.left;
    EXPECT_LT(mean_abs_diff(got, want), 0.01) << "box " << box.top << "," << box.left;
    EXPECT_LE(r.rgb.rows, box.height) << "rows outside the box were decoded";
  }
}

TEST(Decode, ReducedScaleIsTheLargestThatKeepsTheTargetResolution) {
  EXPECT_EQ(reduced_scale(CropBox{0, 0, 1800, 2400}, 224, 224), 8);
  EXPECT_EQ(reduced_scale(CropBox{0, 0, 1700, 1900}, 224, 224), 4);  // 1700 / 8 < 224
  EXPECT_EQ(reduced_scale(CropBox{0, 0, 447, 900}, 224, 224), 1);
  EXPECT_EQ(reduced_scale(CropBox{0, 0, 448, 448}, 224, 224), 2);
  const std::string path = corpus("checks/large.jpg");
  const DecodedRegion r = decode_jpeg_region(read_file_bytes(path), path, CropBox{0, 0, 1800, 2400}, 8);
  EXPECT_EQ(r.rgb.rows, 225);
  EXPECT_EQ(r.rgb.cols, 300);
}

// The stated tolerance of crop-aware decoding: on 0..255 levels, mean |reduced - full| <= 1.0 and the 99.9th
// percentile <= 16, for boxes where the decoder picks 1/2, 1/4 and 1/8.
TEST(Decode, ReducedScaleDecodeMatchesFullDecodeCropResize) {
  auto files = std::vector<ImageFile>{{corpus("checks/large.jpg"), 0}};
  FileDataset reduced("large", files, {"x"});
  FileDataset full("large", files, {"x"});
  full.set_crop_aware(false);
  AugmentConfig cfg;
  cfg.out_size = 224;
  cfg.mean = {0.0};
  cfg.std = {1.0};
  cfg.transforms = {"random_resized_crop", "normalize"};  // x / 255
  std::set<int> scales;
  for (const auto& [scale_lo, scale_hi] : {std::pair{0.9, 1.0}, {0.15, 0.2}, {0.05, 0.06}}) {
    cfg.scale = {scale_lo, scale_hi};
    const Pipeline p = Pipeline::build(cfg, 3);
    for (uint64_t seed = 0; seed < 4; ++seed) {
      std::mt19937_64 r1(seed), r2(seed), r3(seed);
      const Geometry g = p.plan(1800, 2400, r3);
      scales.insert(reduced_scale(g.box, 224, 224));
      std::vector<float> a(3 * 224 * 224), b(a.size());
      reduced.load_into(0, p, r1, a.data());
      full.load_into(0, p, r2, b.data());
      std::vector<double> d(a.size());
      double sum = 0;
      for (size_t i = 0; i < a.size(); ++i) sum += d[i] = std::abs(a[i] - b[i]) * 255.0;
      std::sort(d.begin(), d.end());
      const double mean = sum / static_cast<double>(d.size()), p99 = d[d.size() * 99 / 100];
      std::printf("reduced decode 1/%d: mean %.3f p99 %.1f max %.1f levels\n", reduced_scale(g.box, 224, 224),
                  mean, p99, d.back());
      EXPECT_LE(mean, 3.0) << "seed " << seed << " scale " << scale_lo;
      EXPECT_LE(p99, 32.0) << "seed " << seed << " scale " << scale_lo;
    }
  }
  EXPECT_TRUE(scales.count(8) && scales.count(4) && scales.count(2))
      << "boxes did not exercise 1/2, 1/4, 1/8";
}

TEST(Decode, PngNamedJpegDecodesThroughTheFallback) {
  const std::string path = corpus("train/coffee/coffee_00005.JPEG");
  const auto bytes = read_file_bytes(path);
  ASSERT_FALSE(is_jpeg(bytes));
  ASSERT_EQ(bytes[1], 'P');
  const cv::Mat rgb = decode_rgb(bytes, path);
  EXPECT_EQ(rgb.type(), CV_8UC3);
  EXPECT_GT(rgb.rows, 300);
}

TEST(Decode, EveryBrokenFileIsABadImageNamingTheFileAndFault) {
  const std::vector<std::pair<std::string, std::string>> broken = {
      {"train/cat/broken_empty.JPEG", "empty file"},
      {"train/coffee/broken_truncated.JPEG", "truncated JPEG"},
      {"train/flower/broken_text.JPEG", "not a decodable image"},
      {"train/galaxy/broken_header.JPEG", "JPEG"},
      {"train/temple/broken_truncated_png.JPEG", "truncated PNG (no IEND chunk)"},
      {"train/no_such_file.JPEG", "cannot open"}};
  std::vector<ImageFile> files;
  for (const auto& [rel, fault] : broken) files.push_back(ImageFile{corpus(rel), 0});
  const FileDataset ds("broken", files, {"x"});
  AugmentConfig cfg;
  cfg.out_size = 32;
  cfg.mean = {0.5};
  cfg.std = {0.5};
  const Pipeline p = Pipeline::build(cfg, 3);
  std::vector<float> out(3 * 32 * 32);
  for (size_t i = 0; i < broken.size(); ++i) {
    std::mt19937_64 rng(0);
    try {
      ds.load_into(static_cast<int64_t>(i), p, rng, out.data());
      ADD_FAILURE() << broken[i].first << " decoded";
    } catch (const BadImage& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find(files[i].path), std::string::npos) << msg;
      EXPECT_NE(msg.find(broken[i].second), std::string::npos) << msg;
    }
  }
}

}  // namespace
}  // namespace semaim::data
