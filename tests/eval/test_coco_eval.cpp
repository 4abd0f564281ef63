// COCO evaluation (semaim::eval::coco_evaluate, the JSON readers, `detect evaluate`) held to pycocotools'
// COCOeval from the venv (tests/eval/coco_eval_reference.py) on random ground truth and detections, and
// bad-input errors.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "input_error.h"
#include "python_suite.h"
#include "semaim/eval/coco_eval.h"
#include "semaim/io/atomic_file.h"
#include "temp_dir.h"

namespace {

namespace ev = semaim::eval;
using nlohmann::json;

const char* const kCases[] = {"random-3", "random-11", "sparse-4"};

class CocoEvalPycocotools : public semaim::test::PythonSuite<CocoEvalPycocotools> {
 protected:
  static void SetUpTestSuite() {
    if (!have_python()) return;
    for (const std::string c : kCases) {
      std::filesystem::create_directories(dir() / c);
      const std::string kind = c.substr(0, c.find('-')), seed = c.substr(c.find('-') + 1);
      if (!run_script("eval/coco_eval_reference.py", semaim::test::quoted(file(c)) + " " + seed + " " + kind,
                      &skip_reason_))
        return;
    }
  }
  static json reference(const std::string& c) {
    std::ifstream f(file(c + "/reference.json"));
    return json::parse(f);
  }
};

TEST_F(CocoEvalPycocotools, TwelveStatsPerCategoryApAndSummaryTextMatchForBboxAndSegm) {
  double largest = 0;
  int compared = 0;
  for (const std::string c : kCases) {
    const json ref = reference(c);
    for (const std::string res : {"results_box", "results_both", "results_mask"}) {
      for (const std::string type : {"bbox", "segm"}) {
        SCOPED_TRACE(c + " " + res + " " + type);
        const json& want = ref.at(res + "/" + type);
        const auto t = ev::parse_coco_iou_type(type);
        const auto gt = ev::load_coco_ground_truth(file(c + "/gt.json"), t);
        const auto r = ev::coco_evaluate(gt, ev::load_coco_results(file(c + "/" + res + ".json"), gt, t), t);
        for (size_t i = 0; i < 12; ++i) {
          const double d = std::abs(r.stats[i] - want["stats"][i].get<double>());
          largest = std::max(largest, d);
          EXPECT_LE(d, 1e-6) << "stat " << i;
        }
        ASSERT_EQ(r.category_ap.size(), want["category_ap"].size());
        for (size_t k = 0; k < r.category_ap.size(); ++k) {
          if (want["category_ap"][k].is_null()) {
            EXPECT_TRUE(std::isnan(r.category_ap[k])) << "category " << k;
          } else {
            const double d = std::abs(r.category_ap[k] - want["category_ap"][k].get<double>());
            largest = std::max(largest, d);
            EXPECT_LE(d, 1e-6) << "category " << k;
          }
        }
        EXPECT_EQ(ev::coco_summary_text(r), want["summary"].get<std::string>());
        ++compared;
      }
    }
  }
  std::cout << "largest difference from pycocotools over " << compared << " evaluations: " << largest << "\n";
  EXPECT_EQ(compared, 18);
}

// The detection task loads its ground truth once, for segm, and scores boxes and masks with it: the boxes must be
// there (a ground truth read for segm once had every box at zero, and box AP 0).
TEST_F(CocoEvalPycocotools, OneGroundTruthLoadedForSegmScoresBoxesAsPycocotools) {
  for (const std::string c : kCases) {
    SCOPED_TRACE(c);
    const auto gt = ev::load_coco_ground_truth(file(c + "/gt.json"), ev::CocoIouType::kSegm);
    const auto dets = ev::load_coco_results(file(c + "/results_both.json"), gt, ev::CocoIouType::kSegm);
    const auto r = ev::coco_evaluate(gt, dets, ev::CocoIouType::kBbox);
    const json want = reference(c).at("results_both/bbox");
    for (size_t i = 0; i < 12; ++i) EXPECT_NEAR(r.stats[i], want["stats"][i].get<double>(), 1e-6) << "stat " << i;
  }
}

TEST_F(CocoEvalPycocotools, WrittenResultsReadBackToTheSameScores) {
  const std::string c = "random-3";
  for (const auto t : {ev::CocoIouType::kBbox, ev::CocoIouType::kSegm}) {
    const auto gt = ev::load_coco_ground_truth(file(c + "/gt.json"), t);
    const auto dets = ev::load_coco_results(file(c + "/results_both.json"), gt, ev::CocoIouType::kSegm);
    semaim::test::TempDir tmp;
    ev::write_coco_results(tmp.file("out.json"), dets);
    const auto back = ev::load_coco_results(tmp.file("out.json"), gt, t);
    ASSERT_EQ(back.size(), dets.size());
    for (size_t i = 0; i < dets.size(); ++i) {
      EXPECT_EQ(back[i].bbox, dets[i].bbox);
      EXPECT_EQ(back[i].score, dets[i].score);
      if (t == ev::CocoIouType::kSegm) EXPECT_EQ(*back[i].segmentation, *dets[i].segmentation);
    }
    EXPECT_EQ(ev::coco_evaluate(gt, back, t).stats, ev::coco_evaluate(gt, dets, t).stats);
  }
}

TEST_F(CocoEvalPycocotools, CategoryTableNamesEveryCategoryWithNanWithoutGroundTruth) {
  const std::string c = "sparse-4";
  const auto gt = ev::load_coco_ground_truth(file(c + "/gt.json"), ev::CocoIouType::kBbox);
  const auto r =
      ev::coco_evaluate(gt, ev::load_coco_results(file(c + "/results_box.json"), gt, ev::CocoIouType::kBbox),
                        ev::CocoIouType::kBbox);
  const std::string table = ev::coco_category_ap_text(r);
  char first[64];
  std::snprintf(first, sizeof(first), "AP = %0.3f", r.category_ap[0]);
  EXPECT_NE(table.find(std::string("class1") + std::string(24 - 6, ' ') + " id 1"), std::string::npos)
      << table;
  EXPECT_NE(table.find(first), std::string::npos) << table;
  EXPECT_NE(table.find("class7"), std::string::npos) << table;
  EXPECT_EQ(std::count(table.begin(), table.end(), '\n'), 6) << table;  // a title and one line per category
  EXPECT_NE(table.find("AP = nan"), std::string::npos) << table;
}

// Hand-made ground truth: one image, two categories.
std::string small_gt() {
  return R"({"images": [{"id": 1, "height": 50, "width": 60}],
             "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}],
             "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 20, 20], "area": 400,
                              "iscrowd": 0, "segmentation": [[10, 10, 30, 10, 30, 30, 10, 30]]}]})";
}

TEST(CocoEval, PerfectDetectionScoresOneAndTiesKeepInputOrder) {
  semaim::test::TempDir tmp;
  semaim::io::atomic_write(tmp.file("gt.json"), small_gt());
  const auto gt = ev::load_coco_ground_truth(tmp.file("gt.json"), ev::CocoIouType::kBbox);
  ev::CocoDetection hit{1, 1, 0.9, {10, 10, 20, 20}, 400, std::nullopt};
  ev::CocoDetection miss{1, 1, 0.9, {40, 30, 5, 5}, 25, std::nullopt};
  EXPECT_DOUBLE_EQ(ev::coco_evaluate(gt, {hit}, ev::CocoIouType::kBbox).stats[0], 1.0);
  // Equal scores: the first in input order ranks first, so the false positive first halves the precision at
  // full recall for AR@1 (recall 0 with one detection) and AP (0.5 after the envelope).
  const auto a = ev::coco_evaluate(gt, {miss, hit}, ev::CocoIouType::kBbox);
  const auto b = ev::coco_evaluate(gt, {hit, miss}, ev::CocoIouType::kBbox);
  EXPECT_DOUBLE_EQ(a.stats[6], 0.0);
  EXPECT_DOUBLE_EQ(b.stats[6], 1.0);
  EXPECT_DOUBLE_EQ(a.stats[0], 0.5);
  EXPECT_DOUBLE_EQ(b.stats[0], 1.0);
  EXPECT_TRUE(std::isnan(a.category_ap[1]));
}

TEST(CocoEval, MalformedGroundTruthAndResultsAreInputErrorsNamingFileAndIndex) {
  using semaim::test::expect_input_error;
  semaim::test::TempDir tmp;
  const auto write = [&](const std::string& name, const std::string& text) {
    semaim::io::atomic_write(tmp.file(name), text);
    return tmp.file(name);
  };
  const auto box = ev::CocoIouType::kBbox;
  const std::string full = small_gt();
  const std::string cut = write("cut.json", full.substr(0, full.size() / 2));
  expect_input_error([&] { ev::load_coco_ground_truth(cut, box); }, {"cut.json", "not valid JSON"});
  const std::string no_anns = write("noanns.json", R"({"images": [], "categories": []})");
  expect_input_error([&] { ev::load_coco_ground_truth(no_anns, box); }, {"noanns.json", "'annotations'"});
  const std::string bad_ann = write("badann.json", R"({"images": [{"id": 1}], "categories": [{"id": 1}],
      "annotations": [{"id": 4, "image_id": 1, "category_id": 1, "area": 1, "bbox": [1, 2, 3]}]})");
  expect_input_error([&] { ev::load_coco_ground_truth(bad_ann, box); },
                     {"badann.json", "annotations[0]", "bbox"});
  const std::string no_seg = write("noseg.json", R"({"images": [{"id": 1}], "categories": [{"id": 1}],
      "annotations": [{"id": 4, "image_id": 1, "category_id": 1, "area": 1, "bbox": [1, 2, 3, 4]}]})");
  expect_input_error([&] { ev::load_coco_ground_truth(no_seg, ev::CocoIouType::kSegm); },
                     {"noseg.json", "annotations[0]", "segmentation"});
  // A malformed box is an error for segm too (boxes are read whenever present).
  expect_input_error([&] { ev::load_coco_ground_truth(bad_ann, ev::CocoIouType::kSegm); },
                     {"badann.json", "annotations[0]", "bbox"});
  const std::string gt_path = write("gt.json", full);
  const auto gt = ev::load_coco_ground_truth(gt_path, box);
  const auto results = [&](const std::string& text) {
    return ev::load_coco_results(write("res.json", text), gt, box);
  };
  const std::string ok = R"({"image_id": 1, "category_id": 1, "bbox": [1, 2, 3, 4], "score": 0.5})";
  expect_input_error(
      [&] {
        results("[" + ok + R"(, {"image_id": 9, "category_id": 1, "bbox": [1, 2, 3, 4],
      "score": 0.5}])");
      },
      {"res.json", "result 1", "image_id 9"});
  expect_input_error(
      [&] {
        results("[" + ok + R"(, {"image_id": 1, "category_id": 5, "bbox": [1, 2, 3, 4],
      "score": 0.5}])");
      },
      {"res.json", "result 1", "category_id 5"});
  expect_input_error(
      [&] {
        results("[" + ok + R"(, {"image_id": 1, "category_id": 1, "bbox": [1, 2],
      "score": 0.5}])");
      },
      {"result 1", "4 numbers"});
  expect_input_error([&] { results("[" + ok + R"(, {"image_id": "1", "category_id": 1, "score": 0.5}])"); },
                     {"result 1", "image_id"});
  expect_input_error(
      [&] { results("[" + ok + R"(, {"image_id": 1, "category_id": 1, "bbox": [1, 2, 3, 4]}])"); },
      {"result 1", "score"});
  expect_input_error([&] { results(R"({"image_id": 1})"); }, {"res.json", "list"});
  expect_input_error(
      [&] { results(R"([{"image_id": 1, "category_id": 1, "score": 1, "segmentation": [[1, 2, 3]]}])"); },
      {"result 0", "compressed RLE"});
  expect_input_error([&] { ev::parse_coco_iou_type("keypoints"); }, "bbox or segm");
  EXPECT_TRUE(results("[]").empty());
}

}  // namespace
