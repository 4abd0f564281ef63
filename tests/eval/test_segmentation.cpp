// mmseg's IoU metric (per-class areas over the split, NaN-skipping means) against hand-computed values and an
// independent NumPy implementation, and label-map PNGs (palette indices, reduce_zero_label, bad files).
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iostream>

#include "input_error.h"
#include "run_command.h"
#include "semaim/core/errors.h"
#include "semaim/data/label_map.h"
#include "semaim/eval/seg_inference.h"
#include "semaim/eval/segmentation.h"
#include "semaim/io/atomic_file.h"
#include "semaim_paths.h"
#include "temp_dir.h"

namespace {

using semaim::eval::SegMetric;

at::Tensor labels_of(std::initializer_list<int> v, int64_t h, int64_t w) {
  return at::tensor(std::vector<int>(v), at::kInt).to(at::kByte).reshape({h, w});
}

TEST(LabelMap, PaletteAndGrayPngsRoundTripTheirIndices) {
  semaim::test::TempDir dir;
  at::manual_seed(3);
  const at::Tensor labels = at::randint(0, 256, {37, 53}, at::kLong).to(at::kByte);
  semaim::data::Palette palette = {{255, 0, 0}, {0, 255, 0}, {0, 0, 255}};
  for (bool use_palette : {true, false}) {
    const std::string path = dir.file(use_palette ? "p.png" : "g.png");
    semaim::io::atomic_write(path, semaim::data::encode_label_png(labels, use_palette ? palette : semaim::data::Palette{}));
    EXPECT_TRUE(at::equal(semaim::data::read_label_map(path), labels)) << path;
  }
  // OpenCV expands a palette image to its colours: the indices must not depend on them.
  const cv::Mat colours = cv::imread(dir.file("p.png"), cv::IMREAD_UNCHANGED);
  EXPECT_EQ(colours.channels(), 3);
}

TEST(LabelMap, RgbTruncatedAndNonPngFilesAreInputErrorsNamingTheFile) {
  semaim::test::TempDir dir;
  std::vector<uchar> rgb;
  cv::imencode(".png", cv::Mat(4, 4, CV_8UC3, cv::Scalar(1, 2, 3)), rgb);
  semaim::io::atomic_write(dir.file("rgb.png"), std::string(rgb.begin(), rgb.end()));
  semaim::test::expect_input_error([&] { semaim::data::read_label_map(dir.file("rgb.png")); },
                                   {"rgb.png", "grayscale or palette"});
  const std::string good = semaim::data::encode_label_png(at::zeros({64, 64}, at::kByte).add_(7));
  semaim::io::atomic_write(dir.file("cut.png"), good.substr(0, good.size() / 2));
  semaim::test::expect_input_error([&] { semaim::data::read_label_map(dir.file("cut.png")); }, {"cut.png", "truncated"});
  semaim::io::atomic_write(dir.file("text.png"), "not an image at all");
  semaim::test::expect_input_error([&] { semaim::data::read_label_map(dir.file("text.png")); }, {"text.png", "not a PNG"});
  semaim::test::expect_input_error([&] { semaim::data::read_label_map(dir.file("absent.png")); }, "absent.png");
}

TEST(LabelMap, ReduceZeroLabelIgnoresZeroAndShiftsTheRestAsMmseg) {
  const at::Tensor in = labels_of({0, 1, 2, 150, 254, 255}, 1, 6);
  EXPECT_TRUE(at::equal(semaim::data::reduce_zero_label(in), labels_of({255, 0, 1, 149, 253, 255}, 1, 6)));
}

TEST(SegMetric, HandComputedSplitWithIgnoredAbsentAndOutOfRangePixels) {
  SegMetric m(4);
  // label 255 is ignored; class 3 never appears in the labels but is predicted once; 9 is out of range.
  m.add(labels_of({0, 0, 1, 3, 2, 9}, 2, 3), labels_of({0, 1, 1, 0, 255, 1}, 2, 3));
  m.add(labels_of({2, 2}, 1, 2), labels_of({2, 0}, 1, 2));
  const auto s = m.scores();
  // intersect (1, 1, 1, 0); pred (2, 1, 2, 1); label (3, 3, 1, 0); union (4, 3, 2, 1)
  EXPECT_DOUBLE_EQ(s.aacc, 100.0 * 3 / 7);
  EXPECT_DOUBLE_EQ(s.iou[0], 25.0);
  EXPECT_DOUBLE_EQ(s.iou[3], 0.0);
  EXPECT_TRUE(std::isnan(s.acc[3]));  // no label pixels: left out of mAcc, kept in mIoU as 0
  EXPECT_DOUBLE_EQ(s.miou, (25.0 + 100.0 / 3 + 50.0 + 0.0) / 4);
  EXPECT_DOUBLE_EQ(s.macc, (100.0 / 3 + 100.0 / 3 + 100.0) / 3);
  EXPECT_EQ(s.images, 2);
}

TEST(SegMetric, AreasSumAcrossShardsToTheWholeSplit) {
  at::manual_seed(5);
  const at::Tensor p = at::randint(0, 6, {4, 9, 11}, at::kLong), l = at::randint(0, 6, {4, 9, 11}, at::kLong);
  SegMetric whole(6), a(6), b(6), merged(6);
  whole.add(p, l);
  a.add(p.slice(0, 0, 1), l.slice(0, 0, 1));
  b.add(p.slice(0, 1), l.slice(0, 1));
  merged.set_areas(a.areas() + b.areas());
  EXPECT_TRUE(at::equal(merged.areas(), whole.areas()));
  EXPECT_DOUBLE_EQ(merged.scores().miou, whole.scores().miou);
}

// Random label folders: NUM classes, ignored pixels, one class absent from the ground truth but predicted, one
// never predicted, zero labels for reduce_zero_label.
void write_random_folders(const semaim::test::TempDir& dir, int64_t k) {
  std::filesystem::create_directories(dir.path() / "gt");
  std::filesystem::create_directories(dir.path() / "pred");
  at::manual_seed(11);
  for (int i = 0; i < 5; ++i) {
    const int64_t h = 20 + 3 * i, w = 31 - 2 * i;
    at::Tensor gt = at::randint(0, k, {h, w}, at::kLong);
    gt.masked_fill_(gt == k - 2, 0);  // class k-2 never in the ground truth (after the shift: k-3)
    gt.masked_fill_(at::rand({h, w}) < 0.1, 255);
    at::Tensor pred = at::where(at::rand({h, w}) < 0.6, gt, at::randint(0, k, {h, w}, at::kLong));
    pred.masked_fill_(pred == k - 1, 1);  // class k-1 never predicted
    pred.masked_fill_(pred == 255, 0);
    const std::string name = "img" + std::to_string(i) + ".png";
    semaim::io::atomic_write((dir.path() / "gt" / name).string(), semaim::data::encode_label_png(gt.to(at::kByte)));
    semaim::io::atomic_write((dir.path() / "pred" / name).string(),
                             semaim::data::encode_label_png(pred.to(at::kByte), {{0, 0, 0}, {9, 9, 9}}));
  }
}

// The largest |semaim - NumPy| seen, printed by the test.
double g_worst_difference = 0;

void expect_near_or_both_nan(const nlohmann::json& ref, double got, const std::string& what) {
  if (ref.is_null()) {
    EXPECT_TRUE(std::isnan(got)) << what;
  } else {
    EXPECT_NEAR(got, ref.get<double>(), 1e-9) << what;
    g_worst_difference = std::max(g_worst_difference, std::abs(got - ref.get<double>()));
  }
}

TEST(SegMetric, FolderScoresEqualAnIndependentNumpyImplementation) {
  if (!std::filesystem::exists(SEMAIM_PYTHON)) GTEST_SKIP() << "no venv python at " << SEMAIM_PYTHON;
  semaim::test::TempDir dir;
  const int64_t k = 8;
  write_random_folders(dir, k);
  for (bool reduce : {false, true}) {
    semaim::eval::LabelFolders f;
    f.pred_dir = (dir.path() / "pred").string();
    f.gt_dir = (dir.path() / "gt").string();
    f.reduce_zero_label = reduce;
    f.num_classes = k;
    const auto s = semaim::eval::evaluate_label_folders(f);
    const auto r = semaim::testing::run_command(std::string("'") + SEMAIM_PYTHON + "' '" + SEMAIM_SOURCE_DIR +
                                                "/tests/eval/seg_metric_reference.py' '" + f.pred_dir + "' '" +
                                                f.gt_dir + "' " + std::to_string(k) + " 255 " + (reduce ? "1" : "0"));
    ASSERT_EQ(r.exit_code, 0) << r.output;
    const auto ref = nlohmann::json::parse(r.output);
    expect_near_or_both_nan(ref["aAcc"], s.aacc, "aAcc");
    expect_near_or_both_nan(ref["mIoU"], s.miou, "mIoU");
    expect_near_or_both_nan(ref["mAcc"], s.macc, "mAcc");
    int nan_classes = 0;
    for (int64_t c = 0; c < k; ++c) {
      expect_near_or_both_nan(ref["IoU"][c], s.iou[c], "IoU " + std::to_string(c));
      expect_near_or_both_nan(ref["Acc"][c], s.acc[c], "Acc " + std::to_string(c));
      nan_classes += std::isnan(s.acc[c]);
    }
    EXPECT_GE(nan_classes, 1) << "the data must hold a class absent from the ground truth";
    EXPECT_EQ(s.images, 5);
  }
  std::cout << "largest |semaim - NumPy| over every score: " << g_worst_difference << "\n";
}

TEST(SegMetric, FolderEvaluationNamesMissingAndMismatchedPredictions) {
  semaim::test::TempDir dir;
  write_random_folders(dir, 6);
  semaim::eval::LabelFolders f;
  f.pred_dir = (dir.path() / "pred").string();
  f.gt_dir = (dir.path() / "gt").string();
  semaim::io::atomic_write((dir.path() / "pred" / "img2.png").string(),
                           semaim::data::encode_label_png(at::zeros({3, 3}, at::kByte)));
  semaim::test::expect_input_error([&] { semaim::eval::evaluate_label_folders(f); }, {"img2.png", "[3, 3]"});
  std::filesystem::remove(dir.path() / "pred" / "img2.png");
  semaim::test::expect_input_error([&] { semaim::eval::evaluate_label_folders(f); }, {"img2.png", "missing"});
}

TEST(SegInference, SlidingWindowsOfAPointwiseModelEqualTheWholeImageAndInputsArePatchMultiples) {
  int calls = 0;
  const semaim::eval::SegLogitsFn model = [&calls](const at::Tensor& x) {
    ++calls;
    EXPECT_EQ(x.size(2) % 4, 0);
    EXPECT_EQ(x.size(3) % 4, 0);
    return at::cat({x * 2 + 1, -x}, 1);  // pointwise: no window sees its neighbours
  };
  const at::Tensor img = at::randn({1, 3, 13, 17});
  semaim::eval::SegInferOptions o;
  o.patch = 4;
  o.mode = "whole";
  const at::Tensor whole = semaim::eval::infer_logits(model, img, o);
  EXPECT_EQ(whole.sizes(), (at::IntArrayRef{1, 6, 13, 17}));
  EXPECT_TRUE(at::allclose(whole, at::cat({img * 2 + 1, -img}, 1)));
  o.mode = "slide";
  o.crop = 8;
  o.stride = 5;
  calls = 0;
  const at::Tensor slid = semaim::eval::infer_logits(model, img, o);
  EXPECT_EQ(calls, 2 * 3);  // mmseg: rows (13 - 8 + 5 - 1) / 5 + 1 = 2, columns (17 - 8 + 5 - 1) / 5 + 1 = 3
  EXPECT_TRUE(at::allclose(slid, whole, 1e-6, 1e-6));
}

TEST(SegInference, FlipAndMultiScaleAverageSoftmaxAtTheOriginalSizeAsMmsegAugTest) {
  semaim::test::TempDir dir;
  cv::Mat img(20, 30, CV_8UC3);
  cv::randu(img, 0, 255);
  const std::string path = dir.file("img.png");
  ASSERT_TRUE(cv::imwrite(path, img));
  std::vector<at::Tensor> inputs, outputs;
  // Position-dependent logits, so a flip changes them.
  const semaim::eval::SegLogitsFn model = [&](const at::Tensor& x) {
    const at::Tensor ramp = at::linspace(-2, 2, x.size(3)).view({1, 1, 1, -1});
    at::Tensor y = at::cat({x.slice(1, 0, 1) + ramp, x.slice(1, 1, 2), -ramp.expand_as(x.slice(1, 2, 3))}, 1);
    inputs.push_back(x), outputs.push_back(y);
    return y;
  };
  semaim::eval::SegEvalOptions o;
  o.infer.mode = "whole";
  o.infer.patch = 1;
  o.test_scale = {40, 16};
  // Single scale: the argmax of the logits resized to the image.
  const at::Tensor single = semaim::eval::predict_image(model, path, o);
  ASSERT_EQ(outputs.size(), 1u);
  EXPECT_EQ(inputs[0].sizes(), (at::IntArrayRef{1, 3, 16, 24}));  // 20x30 scaled by min(40/30, 16/20) = 0.8
  EXPECT_TRUE(single.equal(at::upsample_bilinear2d(outputs[0], {20, 30}, false).argmax(1).squeeze(0)));
  // Ratios 0.5 and 1 (scales 20x8 and 40x16), each flipped too: four passes, softmax averaged.
  inputs.clear(), outputs.clear();
  o.ratios = {0.5, 1.0};
  o.flip = true;
  const at::Tensor aug = semaim::eval::predict_image(model, path, o);
  ASSERT_EQ(outputs.size(), 4u);
  EXPECT_EQ(inputs[0].sizes(), (at::IntArrayRef{1, 3, 8, 12}));  // scale min(20/30, 8/20) = 0.4
  EXPECT_TRUE(inputs[1].equal(inputs[0].flip({3})));
  EXPECT_EQ(inputs[2].sizes(), (at::IntArrayRef{1, 3, 16, 24}));
  EXPECT_TRUE(inputs[3].equal(inputs[2].flip({3})));
  at::Tensor prob = at::zeros({1, 3, 20, 30});
  for (size_t k = 0; k < 4; ++k) {
    const at::Tensor lg = k % 2 ? outputs[k].flip({3}) : outputs[k];
    prob += at::upsample_bilinear2d(lg, {20, 30}, false).softmax(1);
  }
  EXPECT_EQ(aug.sizes(), (at::IntArrayRef{20, 30}));
  EXPECT_TRUE(aug.equal(prob.argmax(1).squeeze(0)));
  // The flipped passes matter: without them the ramp's classes win on opposite sides.
  EXPECT_FALSE(aug.equal(single));
}

TEST(SegInference, LogitsThatAreNotAtTheInputSizeAreRefused) {
  // A decode head's quarter-size map must be resized to the input first (UperNet::predict_logits); summing it
  // into the window's place of a full-size map was wrong (slide: a shape error; whole: misplaced padding).
  const semaim::eval::SegLogitsFn quarter = [](const at::Tensor& x) {
    return at::zeros({x.size(0), 2, x.size(2) / 4, x.size(3) / 4});
  };
  semaim::eval::SegInferOptions o;
  o.patch = 4;
  for (const char* mode : {"whole", "slide"}) {
    o.mode = mode;
    o.crop = 8, o.stride = 4;
    EXPECT_THROW(semaim::eval::infer_logits(quarter, at::randn({1, 3, 16, 16}), o), semaim::RuntimeFailure) << mode;
  }
}

}  // namespace
