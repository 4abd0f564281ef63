// COCO RLE masks (semaim::data::coco) against pycocotools.mask from the venv
// (tests/eval/coco_mask_reference.py): encoding, compressed strings, polygon rasterization, merge, area,
// bounding boxes and IoU with crowd flags.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <fstream>

#include "input_error.h"
#include "python_suite.h"
#include "semaim/data/coco_mask.h"

namespace {

namespace coco = semaim::data::coco;
using nlohmann::json;

class CocoMaskPycocotools : public semaim::test::PythonSuite<CocoMaskPycocotools> {
 protected:
  static void SetUpTestSuite() {
    if (!have_python()) return;
    if (!run_script("eval/coco_mask_reference.py", semaim::test::quoted(file("ref.json")) + " 7",
                    &skip_reason_))
      return;
    std::ifstream f(file("ref.json"));
    ref_ = json::parse(f);
  }
  static inline json ref_;
};

std::vector<uint32_t> u32(const json& j) { return j.get<std::vector<uint32_t>>(); }

std::array<double, 4> box4(const json& j) {
  const auto v = j.get<std::vector<double>>();
  return {v.at(0), v.at(1), v.at(2), v.at(3)};
}

TEST_F(CocoMaskPycocotools, EncodeStringAreaBboxAndDecodeMatchOnRandomMasks) {
  for (const auto& c : ref_["masks"]) {
    const int64_t h = c["h"], w = c["w"];
    const auto pixels = c["pixels"].get<std::vector<uint8_t>>();
    const at::Tensor mask =
        at::tensor(std::vector<int64_t>(pixels.begin(), pixels.end())).to(at::kByte).reshape({h, w});
    const coco::Rle rle = coco::rle_from_mask(mask);
    ASSERT_EQ(rle.counts, u32(c["runs"])) << h << "x" << w;
    EXPECT_EQ(coco::rle_to_string(rle), c["string"].get<std::string>());
    EXPECT_EQ(coco::rle_from_string(c["string"], h, w), rle);
    EXPECT_EQ(coco::rle_area(rle), c["area"].get<uint64_t>());
    EXPECT_EQ(coco::rle_to_bbox(rle), box4(c["bbox"]));
    EXPECT_TRUE(at::equal(coco::rle_to_mask(rle), mask));
  }
}

TEST_F(CocoMaskPycocotools, PolygonsRasterizeMergeAndIntersectBitIdentically) {
  size_t nonempty = 0;
  for (const auto& c : ref_["polygons"]) {
    const int64_t h = c["h"], w = c["w"];
    const auto polys = c["polygons"].get<std::vector<std::vector<double>>>();
    std::vector<coco::Rle> each;
    for (size_t i = 0; i < polys.size(); ++i) {
      each.push_back(coco::rle_from_polygon(polys[i], h, w));
      ASSERT_EQ(coco::rle_to_string(each.back()), c["strings"][i].get<std::string>())
          << c["polygons"][i].dump();
    }
    const coco::Rle merged = coco::rle_from_polygons(polys, h, w);
    EXPECT_EQ(merged, coco::rle_merge(each));
    EXPECT_EQ(coco::rle_to_string(merged), c["merged"].get<std::string>());
    EXPECT_EQ(coco::rle_to_string(coco::rle_merge(each, true)), c["intersect"].get<std::string>());
    EXPECT_EQ(coco::rle_area(merged), c["area"].get<uint64_t>());
    EXPECT_EQ(coco::rle_to_bbox(merged), box4(c["bbox"]));
    const auto decoded = c["decoded"].get<std::vector<uint8_t>>();
    const at::Tensor want =
        at::tensor(std::vector<int64_t>(decoded.begin(), decoded.end())).to(at::kByte).reshape({h, w});
    EXPECT_TRUE(at::equal(coco::rle_to_mask(merged), want));
    nonempty += coco::rle_area(merged) > 0;
  }
  EXPECT_GT(nonempty, ref_["polygons"].size() / 2);  // the cases exercise real shapes, not empty masks
}

TEST_F(CocoMaskPycocotools, MaskAndBoxIouWithCrowdMatchToTheLastBit) {
  double largest = 0;
  size_t crowd_cases = 0;
  for (const auto& c : ref_["ious"]) {
    const int64_t h = c["h"], w = c["w"];
    std::vector<coco::Rle> dt, gt;
    for (const auto& s : c["dt"]) dt.push_back(coco::rle_from_string(s, h, w));
    for (const auto& s : c["gt"]) gt.push_back(coco::rle_from_string(s, h, w));
    const auto crowd = c["iscrowd"].get<std::vector<uint8_t>>();
    crowd_cases += std::count(crowd.begin(), crowd.end(), 1);
    // pycocotools returns the (dt x gt) matrix flattened row-major, or [] when either side is empty.
    const auto want = c["iou"].get<std::vector<double>>();
    const auto got = coco::rle_iou(dt, gt, crowd);
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < got.size(); ++i) largest = std::max(largest, std::abs(got[i] - want[i]));
    std::vector<std::array<double, 4>> db, gb;
    for (const auto& b : c["dt_boxes"]) db.push_back(box4(b));
    for (const auto& b : c["gt_boxes"]) gb.push_back(box4(b));
    const auto bwant = c["box_iou"].get<std::vector<double>>();
    const auto bgot = coco::box_iou_xywh(db, gb, crowd);
    ASSERT_EQ(bgot.size(), bwant.size());
    for (size_t i = 0; i < bgot.size(); ++i) largest = std::max(largest, std::abs(bgot[i] - bwant[i]));
  }
  std::cout << "largest IoU difference from pycocotools: " << largest << "\n";
  EXPECT_LE(largest, 1e-12);
  EXPECT_GT(crowd_cases, 10u);
}

TEST_F(CocoMaskPycocotools, UncompressedCountsCompressAsFrPyObjects) {
  for (const auto& c : ref_["uncompressed"]) {
    const coco::Rle r = coco::rle_from_counts(u32(c["counts"]), c["h"], c["w"]);
    EXPECT_EQ(coco::rle_to_string(r), c["string"].get<std::string>());
  }
}

TEST(CocoMask, LargeRunsRoundTripThroughTheStringWithNegativeDeltas) {
  const coco::Rle r{3000, 2000, {5, 4000000, 17, 1999000, 0, 978}};
  const coco::Rle back = coco::rle_from_string(coco::rle_to_string(r), r.h, r.w);
  EXPECT_EQ(back, r);
  EXPECT_EQ(coco::rle_area(r), 4000000u + 1999000u + 978u);
}

// maskApi.c divides 0 by 0 on a repeated point (undefined behaviour when converted; fuzz_coco_json found it); the
// point adds nothing to the mask, so the polygon rasterizes as it does without the repeat.
TEST(CocoMask, PolygonWithARepeatedPointEqualsThePolygonWithoutIt) {
  const std::vector<double> plain{2.5, 3.0, 20.25, 4.0, 18.0, 17.5, 4.0, 15.0};
  const std::vector<double> repeated{2.5, 3.0, 20.25, 4.0, 20.25, 4.0, 18.0, 17.5, 4.0, 15.0, 4.0, 15.0};
  const coco::Rle a = coco::rle_from_polygon(plain, 24, 24), b = coco::rle_from_polygon(repeated, 24, 24);
  EXPECT_EQ(a, b);
  EXPECT_GT(coco::rle_area(a), 100u);
}

TEST(CocoMask, CrowdIouDividesByTheDetectionArea) {
  // 4x4 image; detection = left two columns (8 px), crowd gt = first column (4 px): intersection 4.
  const coco::Rle dt{4, 4, {0, 8, 8}}, gt{4, 4, {0, 4, 12}};
  EXPECT_DOUBLE_EQ(coco::rle_iou({dt}, {gt}, {1})[0], 0.5);
  EXPECT_DOUBLE_EQ(coco::rle_iou({dt}, {gt}, {0})[0], 0.5);
  EXPECT_DOUBLE_EQ(coco::rle_iou({gt}, {dt}, {1})[0], 1.0);  // all of the detection lies in the crowd region
  EXPECT_DOUBLE_EQ(coco::box_iou_xywh({{0, 0, 2, 2}}, {{0, 0, 1, 1}}, {1})[0], 0.25);
  EXPECT_DOUBLE_EQ(coco::box_iou_xywh({{0, 0, 1, 1}}, {{0, 0, 2, 2}}, {1})[0], 1.0);
}

TEST(CocoMask, MalformedStringsCountsAndPolygonsAreInputErrors) {
  using semaim::test::expect_input_error;
  expect_input_error([] { coco::rle_from_string("0p", 2, 2, "ann 3"); }, {"ann 3", "outside"});
  expect_input_error([] { coco::rle_from_string("1l", 2, 2, "ann 4"); }, {"ann 4", "ends inside"});
  expect_input_error([] { coco::rle_from_string("14", 2, 2, "ann 5"); }, {"ann 5", "sum to 5"});
  expect_input_error([] { coco::rle_from_counts({1, 2}, 2, 2, "ann 6"); }, {"ann 6", "sum to 3"});
  expect_input_error([] { coco::rle_from_polygons({{1, 2, 3, 4}}, 8, 8); }, "3 points");
  expect_input_error([] { coco::rle_from_polygons({}, 8, 8); }, "3 points");
  expect_input_error([] { coco::rle_from_polygon({1, NAN, 3, 4, 5, 6}, 8, 8); }, "out of range");
  expect_input_error(
      [] {
        coco::rle_merge({coco::Rle{2, 2, {4}}, coco::Rle{2, 3, {6}}});
      },
      "different sizes");
}

}  // namespace
