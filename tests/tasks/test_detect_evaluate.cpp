// `semaim detect evaluate` as a task (tasks::detect_evaluate): the printed summary, the per-category table
// and the stats JSON on a hand-made ground truth, and a bad --iou-type.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>

#include "input_error.h"
#include "semaim/io/atomic_file.h"
#include "semaim/tasks/detect_evaluate.h"
#include "temp_dir.h"

namespace {

TEST(DetectEvaluate, PrintsTwelveLinesAndCategoryTableAndWritesStatsJson) {
  semaim::test::TempDir tmp;
  semaim::io::atomic_write(tmp.file("gt.json"), R"({"images": [{"id": 1, "height": 50, "width": 60}],
      "categories": [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}],
      "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 20, 20], "area": 400,
                       "iscrowd": 0, "segmentation": [[10, 10, 30, 10, 30, 30, 10, 30]]}]})");
  // A perfect box and a false positive of lower score: AP 1; the segm path rasterizes the boxes as polygons.
  semaim::io::atomic_write(tmp.file("res.json"),
                           R"([{"image_id": 1, "category_id": 1, "bbox": [10, 10, 20, 20],
      "score": 0.9}, {"image_id": 1, "category_id": 2, "bbox": [0, 0, 5, 5], "score": 0.3}])");
  for (const std::string type : {"bbox", "segm"}) {
    semaim::tasks::DetectEvaluateOptions o{tmp.file("gt.json"), tmp.file("res.json"), type,
                                           tmp.file("s.json")};
    testing::internal::CaptureStdout();
    const auto r = semaim::tasks::detect_evaluate(o);
    const std::string out = testing::internal::GetCapturedStdout();
    EXPECT_NE(out.find(" Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 1.000\n"),
              std::string::npos)
        << out;
    EXPECT_NE(out.find(" Average Recall     (AR) @[ IoU=0.50:0.95 | area= large | maxDets=100 ] = -1.000\n"),
              std::string::npos)
        << out;
    EXPECT_NE(out.find("dog"), std::string::npos) << out;
    std::ifstream f(tmp.file("s.json"));
    const auto j = nlohmann::json::parse(f);
    EXPECT_DOUBLE_EQ(j["summary"]["AP"].get<double>(), 1.0);
    EXPECT_EQ(j["stats"].get<std::vector<double>>(), std::vector<double>(r.stats.begin(), r.stats.end()));
    EXPECT_TRUE(j["categories"][1]["AP"].is_null());
    EXPECT_EQ(j["iou_type"], type);
  }
  semaim::tasks::DetectEvaluateOptions bad{tmp.file("gt.json"), tmp.file("res.json"), "keypoints", ""};
  semaim::test::expect_input_error([&] { semaim::tasks::detect_evaluate(bad); }, {"--iou-type", "keypoints"});
}

}  // namespace
