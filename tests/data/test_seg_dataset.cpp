// Segmentation datasets: ADE20K and folder layouts paired by name, reduce_zero_label, label maps checked
// against their image and the classes (bad pairs are BadImage, so data.on_bad_image covers them), and label
// maps following the geometry record through the loader's transforms.
#include <gtest/gtest.h>
#include <opencv2/imgcodecs.hpp>

#include <filesystem>
#include <fstream>

#include "input_error.h"
#include "semaim/data/decode.h"
#include "semaim/data/seg_dataset.h"
#include "semaim_paths.h"
#include "temp_dir.h"

namespace {
namespace fs = std::filesystem;
using semaim::data::SegDataset;
using semaim::data::SegLayout;

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

// n JPEG images of (h, w) with label maps of values 0..k (0: "other" before reduce_zero_label).
SegLayout write_pairs(const semaim::test::TempDir& dir, int n, int h, int w, int k) {
  SegLayout l;
  l.img_dir = dir.file("img");
  l.ann_dir = dir.file("ann");
  fs::create_directories(l.img_dir);
  fs::create_directories(l.ann_dir);
  for (int i = 0; i < n; ++i) {
    cv::Mat rgb(h, w, CV_8UC3, cv::Scalar(10 * i, 50, 90));
    cv::imwrite(l.img_dir + "/s" + std::to_string(i) + ".jpg", rgb);
    const at::Tensor labels = at::arange(h * w, at::kLong).remainder(k + 1).reshape({h, w}).to(at::kByte);
    write_file(l.ann_dir + "/s" + std::to_string(i) + ".png", semaim::data::encode_label_png(labels));
  }
  l.reduce_zero_label = true;
  l.num_classes = k;
  return l;
}

semaim::data::Pipeline identity_pipeline(int64_t side) {
  semaim::data::AugmentConfig cfg;
  cfg.out_size = side;
  cfg.random = false;
  cfg.mean = {0.5};
  cfg.std = {0.5};
  return semaim::data::Pipeline::build(cfg, 3);
}

TEST(SegDataset, PairsImagesWithLabelMapsAndReducesZeroLabel) {
  semaim::test::TempDir dir;
  const SegLayout l = write_pairs(dir, 3, 16, 16, 5);
  const SegDataset set(l);
  ASSERT_EQ(set.size(), 3);
  EXPECT_EQ(set.label_path(1), l.ann_dir + "/s1.png");
  const auto t = set.target(0);
  const at::Tensor raw = semaim::data::read_label_map(set.label_path(0));
  EXPECT_TRUE(at::equal(t.label_map, semaim::data::reduce_zero_label(raw)));
  EXPECT_EQ(t.label_map[0][0].item<int>(), 255);  // raw 0 -> ignored
  EXPECT_EQ(t.label_map[0][1].item<int>(), 0);    // raw 1 -> class 0
}

TEST(SegDataset, LabelMapsFollowTheGeometryThroughTheLoaderPath) {
  semaim::test::TempDir dir;
  const SegDataset set(write_pairs(dir, 1, 20, 30, 4));
  const auto pipeline = identity_pipeline(10);
  std::mt19937_64 rng(1);
  std::vector<float> dst(3 * 10 * 10);
  semaim::data::Target t;
  const auto g = set.load_with_target(0, pipeline, rng, dst.data(), &t);
  EXPECT_EQ(g.src_h, 20);
  EXPECT_EQ(g.src_w, 30);
  const auto out = semaim::data::transform_target(g, t, set.source(0));
  EXPECT_EQ(out.label_map.sizes(), (at::IntArrayRef{10, 10}));
  // Nearest neighbour: every output label is one of the source's values.
  const at::Tensor values = std::get<0>(at::_unique(out.label_map));
  for (int64_t i = 0; i < values.numel(); ++i) {
    const int v = values[i].item<int>();
    EXPECT_TRUE(v == 255 || (v >= 0 && v < 4)) << v;
  }
}

TEST(SegDataset, MissingLabelMapsAreErrorsOrSkippedAndCounted) {
  semaim::test::TempDir dir;
  SegLayout l = write_pairs(dir, 3, 8, 8, 3);
  fs::remove(l.ann_dir + "/s1.png");
  semaim::test::expect_input_error([&] { SegDataset s(l); }, {"s1.jpg", "s1.png"});
  l.skip_unpaired = true;
  const SegDataset set(l);
  EXPECT_EQ(set.size(), 2);
  EXPECT_EQ(set.unpaired(), 1);
  l.num_classes = 300;
  semaim::test::expect_input_error([&] { SegDataset s(l); }, "num_classes");
  l.num_classes = 3;
  l.classes = {"a", "b"};
  semaim::test::expect_input_error([&] { SegDataset s(l); }, "2 class names for 3 classes");
  l.img_dir = dir.file("nowhere");
  semaim::test::expect_input_error([&] { SegDataset s(l); }, "nowhere");
}

TEST(SegDataset, UnknownValuesWrongSizesAndColourLabelMapsAreBadImagesNamingTheFile) {
  semaim::test::TempDir dir;
  SegLayout l = write_pairs(dir, 3, 8, 8, 6);
  l.num_classes = 4;  // raw values 5 and 6 become 4 and 5: not classes
  const SegDataset set(l);
  const auto pipeline = identity_pipeline(8);
  std::mt19937_64 rng(1);
  std::vector<float> dst(3 * 8 * 8);
  semaim::data::Target t;
  auto expect_bad = [&](int64_t i, std::initializer_list<const char*> needles) {
    try {
      set.load_with_target(i, pipeline, rng, dst.data(), &t);
      ADD_FAILURE() << "no BadImage for sample " << i;
    } catch (const semaim::data::BadImage& e) {
      for (const char* n : needles) EXPECT_NE(std::string(e.what()).find(n), std::string::npos) << e.what();
    }
  };
  expect_bad(0, {"s0.png", "label value 4"});
  write_file(l.ann_dir + "/s1.png", semaim::data::encode_label_png(at::zeros({8, 9}, at::kByte)));
  expect_bad(1, {"s1.png", "9x8", "s1.jpg", "8x8"});
  std::vector<uchar> rgb;
  cv::imencode(".png", cv::Mat(8, 8, CV_8UC3, cv::Scalar(1, 1, 1)), rgb);
  write_file(l.ann_dir + "/s2.png", std::string(rgb.begin(), rgb.end()));
  expect_bad(2, {"s2.png", "grayscale or palette"});
}

TEST(SegDataset, ReadsTheFmnistSegDatasetInTheAde20kLayout) {
  const std::string root = SEMAIM_SEGDATA_DIR;
  if (!fs::exists(root + "/.complete")) GTEST_SKIP() << "no fmnist-seg at " << root << " (run tools/setup.sh)";
  const auto layout = semaim::data::ade20k_layout(root, "validation");
  EXPECT_EQ(layout.num_classes, 11);
  const SegDataset set(layout);
  EXPECT_EQ(set.size(), 500);
  EXPECT_EQ(set.classes().front(), "background");
  const auto pipeline = identity_pipeline(56);
  std::mt19937_64 rng(1);
  std::vector<float> dst(3 * 56 * 56);
  at::Tensor seen = at::zeros({256}, at::kLong);
  for (int64_t i = 0; i < 50; ++i) {
    semaim::data::Target t;
    set.load_with_target(i, pipeline, rng, dst.data(), &t);
    seen += at::bincount(t.label_map.reshape(-1).to(at::kLong), {}, 256);
  }
  EXPECT_GT(seen[0].item<int64_t>(), 0);    // background
  EXPECT_GT(seen[255].item<int64_t>(), 0);  // item rims ("other") are ignored
  EXPECT_EQ(seen.slice(0, 11, 255).sum().item<int64_t>(), 0);
}

}  // namespace
