// JPEG/PNG decoding to RGB (grayscale, CMYK, PNG named .JPEG), crop-aware and reduced-scale decoding against
// full decode + crop + resize, and every kind of broken file as a BadImage naming the file.
#include <gtest/gtest.h>

#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include <fstream>
#include <functional>
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

std::string bad_image_message(const std::function<void()>& f) {
  try {
    f();
  } catch (const BadImage& e) {
    return e.what();
  }
  return "";
}

// The BadImage message of loading sample i of `ds` through a 32x32 pipeline ("" when it loads).
std::string load_message(const FileDataset& ds, int64_t i) {
  AugmentConfig cfg;
  cfg.out_size = 32;
  cfg.mean = {0.5};
  cfg.std = {0.5};
  const Pipeline p = Pipeline::build(cfg, 3);
  std::vector<float> out(3 * 32 * 32);
  std::mt19937_64 rng(0);
  return bad_image_message([&] { ds.load_into(i, p, rng, out.data()); });
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
  for (size_t i = 0; i < broken.size(); ++i) {
    const std::string msg = load_message(ds, static_cast<int64_t>(i));
    EXPECT_FALSE(msg.empty()) << broken[i].first << " decoded";
    EXPECT_NE(msg.find(files[i].path), std::string::npos) << msg;
    EXPECT_NE(msg.find(broken[i].second), std::string::npos) << msg;
  }
}

// Headers that claim a decompression-bomb size (issue 21): rejected from the header, before any decoding.

// SOI, a baseline frame header (3 components, 4:4:4) of the given size, EOI: enough for the size check.
std::vector<uint8_t> jpeg_header(uint16_t height, uint16_t width) {
  std::vector<uint8_t> b = {0xFF, 0xD8, 0xFF, 0xC0, 0x00, 0x11, 0x08};
  for (uint16_t v : {height, width}) {
    b.push_back(static_cast<uint8_t>(v >> 8));
    b.push_back(static_cast<uint8_t>(v & 0xFF));
  }
  b.push_back(3);
  for (uint8_t c : {1, 2, 3}) b.insert(b.end(), {c, 0x11, 0x00});
  b.insert(b.end(), {0xFF, 0xD9});
  return b;
}

// A real JPEG whose frame header is rewritten to claim height x width; its scan data stays as it was.
std::vector<uint8_t> with_frame_size(std::vector<uint8_t> b, uint16_t height, uint16_t width) {
  for (size_t pos = 2; pos + 9 < b.size() && b[pos] == 0xFF; pos += 2 + (b[pos + 2] << 8 | b[pos + 3])) {
    if (b[pos + 1] == 0xC0 || b[pos + 1] == 0xC1 || b[pos + 1] == 0xC2) {
      b[pos + 5] = static_cast<uint8_t>(height >> 8), b[pos + 6] = static_cast<uint8_t>(height & 0xFF);
      b[pos + 7] = static_cast<uint8_t>(width >> 8), b[pos + 8] = static_cast<uint8_t>(width & 0xFF);
      return b;
    }
  }
  ADD_FAILURE() << "no frame header found";
  return b;
}

uint32_t crc32(const uint8_t* p, size_t n) {
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; ++i) {
    c ^= p[i];
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
  }
  return c ^ 0xFFFFFFFFu;
}

// A PNG signature, a valid IHDR chunk of the given size (8-bit RGB) and IEND: no image data.
std::vector<uint8_t> png_header(uint32_t width, uint32_t height) {
  std::vector<uint8_t> b = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  auto be32 = [&](uint32_t v) {
    for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<uint8_t>(v >> s));
  };
  be32(13);
  const size_t type_at = b.size();
  b.insert(b.end(), {'I', 'H', 'D', 'R'});
  be32(width);
  be32(height);
  b.insert(b.end(), {8, 2, 0, 0, 0});
  be32(crc32(&b[type_at], b.size() - type_at));
  be32(0);
  b.insert(b.end(), {'I', 'E', 'N', 'D', 0xAE, 0x42, 0x60, 0x82});
  return b;
}

TEST(Decode, JpegHeaderClaimingAHugeSizeIsABadImageBeforeDecoding) {
  const auto bomb = jpeg_header(65500, 65500);
  const auto patched = with_frame_size(read_file_bytes(corpus("checks/gray.jpg")), 65500, 65500);
  ASSERT_EQ(read_jpeg_info(with_frame_size(patched, 10, 20), "x").width, 20);
  for (const std::string& msg :
       {bad_image_message([&] { read_jpeg_info(bomb, "bomb.jpg"); }), bad_image_message([&] {
          decode_jpeg_region(patched, "bomb.jpg", CropBox{0, 0, 64, 64}, 1);
        })}) {
    EXPECT_NE(msg.find("bomb.jpg"), std::string::npos) << msg;
    EXPECT_NE(msg.find("65500 x 65500"), std::string::npos) << msg;
    EXPECT_NE(msg.find(std::to_string(kMaxImagePixels)), std::string::npos) << msg;
  }
  // The limit is on width x height: just under it the header is read, just over it is refused.
  const JpegInfo ok = read_jpeg_info(jpeg_header(13000, 13000), "ok.jpg");
  EXPECT_EQ(ok.height * ok.width, 169000000);
  ASSERT_LE(ok.height * ok.width, kMaxImagePixels);
  ASSERT_GT(int64_t{14000} * 13000, kMaxImagePixels);
  EXPECT_NE(
      bad_image_message([&] { read_jpeg_info(jpeg_header(14000, 13000), "x.jpg"); }).find("13000 x 14000"),
      std::string::npos);
}

TEST(Decode, PngHeaderClaimingAHugeSizeIsABadImageBeforeDecoding) {
  // 0xd9d9d9d9 squared overflows 64 bits: the check must not multiply the sides.
  for (const auto& [w, h] :
       {std::pair<uint32_t, uint32_t>{65500, 65500}, {20000, 10000}, {0xd9d9d9d9u, 0xd9d9d9d9u}}) {
    const std::string msg = bad_image_message([&] { decode_rgb(png_header(w, h), "bomb.png"); });
    EXPECT_NE(msg.find("bomb.png"), std::string::npos) << msg;
    EXPECT_NE(msg.find(std::to_string(w) + " x " + std::to_string(h)), std::string::npos) << msg;
  }
}

TEST(Decode, HugeImageInADatasetIsABadImageTheLoaderCanSkip) {
  semaim::test::TempDir tmp;
  const std::string jpg = tmp.file("bomb.JPEG"), png = tmp.file("bomb_png.JPEG");
  for (const auto& [path, bytes] :
       {std::pair{jpg, jpeg_header(65500, 65500)}, {png, png_header(65500, 65500)}}) {
    std::ofstream(path, std::ios::binary)
        .write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  }
  const FileDataset ds("bombs", {ImageFile{jpg, 0}, ImageFile{png, 0}}, {"x"});
  for (int64_t i = 0; i < 2; ++i) {
    const std::string msg = load_message(ds, i);
    EXPECT_NE(msg.find(i == 0 ? jpg : png), std::string::npos) << msg;
    EXPECT_NE(msg.find("65500 x 65500"), std::string::npos) << msg;
  }
}

}  // namespace
}  // namespace semaim::data
