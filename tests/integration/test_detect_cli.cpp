// `semaim detect evaluate`: a COCO results file scored against an instances file, the 12 lines printed as
// pycocotools prints them, the stats JSON, and clear exit-2 errors for broken or mismatched files.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "run_command.h"
#include "semaim/eval/coco_eval.h"
#include "semaim/io/atomic_file.h"
#include "semaim_paths.h"
#include "temp_dir.h"

namespace {
namespace fs = std::filesystem;

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Two images, two categories, three objects (one crowd), and detections that hit, miss and duplicate them.
void write_files(const semaim::test::TempDir& dir) {
  const nlohmann::json gt = {
      {"images", {{{"id", 1}, {"width", 64}, {"height", 48}}, {{"id", 2}, {"width", 64}, {"height", 48}}}},
      {"categories", {{{"id", 3}, {"name", "shirt"}}, {{"id", 7}, {"name", "boot"}}}},
      {"annotations",
       {{{"id", 10}, {"image_id", 1}, {"category_id", 3}, {"bbox", {4, 4, 20, 16}}, {"area", 320}, {"iscrowd", 0}},
        {{"id", 11}, {"image_id", 1}, {"category_id", 7}, {"bbox", {30, 10, 24, 30}}, {"area", 720}, {"iscrowd", 0}},
        {{"id", 12}, {"image_id", 2}, {"category_id", 3}, {"bbox", {0, 0, 40, 40}}, {"area", 1600}, {"iscrowd", 1}}}}};
  const nlohmann::json dt = {
      {{"image_id", 1}, {"category_id", 3}, {"bbox", {5, 4, 20, 15}}, {"score", 0.9}},
      {{"image_id", 1}, {"category_id", 3}, {"bbox", {5, 5, 19, 15}}, {"score", 0.8}},
      {{"image_id", 1}, {"category_id", 7}, {"bbox", {0, 30, 10, 10}}, {"score", 0.7}},
      {{"image_id", 2}, {"category_id", 3}, {"bbox", {2, 2, 20, 20}}, {"score", 0.6}}};
  semaim::io::atomic_write(dir.file("gt.json"), gt.dump());
  semaim::io::atomic_write(dir.file("dt.json"), dt.dump());
}

TEST(DetectEvaluateCli, PrintsTheTwelveLinesAndWritesTheStatsOfTheInProcessEvaluator) {
  semaim::test::TempDir dir;
  write_files(dir);
  const auto r = semaim::testing::run_command(std::string(SEMAIM_BINARY) + " detect evaluate --annotations " +
                                              dir.file("gt.json") + " --results " + dir.file("dt.json") +
                                              " --json " + dir.file("s.json"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find(" Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = "),
            std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("boot"), std::string::npos) << r.output;
  using namespace semaim::eval;
  const CocoGroundTruth gt = load_coco_ground_truth(dir.file("gt.json"), CocoIouType::kBbox);
  const CocoEvalResult expected =
      coco_evaluate(gt, load_coco_results(dir.file("dt.json"), gt, CocoIouType::kBbox), CocoIouType::kBbox);
  const auto j = nlohmann::json::parse(slurp(dir.file("s.json")));
  ASSERT_EQ(j["stats"].size(), 12u);
  for (size_t k = 0; k < 12; ++k) EXPECT_DOUBLE_EQ(j["stats"][k].get<double>(), expected.stats[k]) << k;
  EXPECT_GT(expected.stats[0], 0.0);
}

TEST(DetectEvaluateCli, BrokenOrMismatchedFilesExitTwoNamingTheFile) {
  semaim::test::TempDir dir;
  write_files(dir);
  semaim::io::atomic_write(dir.file("truncated.json"), slurp(dir.file("dt.json")).substr(0, 40));
  semaim::io::atomic_write(dir.file("unknown.json"),
                           R"([{"image_id": 99, "category_id": 3, "bbox": [0, 0, 4, 4], "score": 0.5}])");
  for (const std::string bad : {"truncated.json", "unknown.json"}) {
    const auto r = semaim::testing::run_command(std::string(SEMAIM_BINARY) + " detect evaluate --annotations " +
                                                dir.file("gt.json") + " --results " + dir.file(bad));
    EXPECT_EQ(r.exit_code, 2) << bad << ": " << r.output;
    EXPECT_NE(r.output.find(dir.file(bad)), std::string::npos) << r.output;
  }
  const auto r = semaim::testing::run_command(std::string(SEMAIM_BINARY) + " detect evaluate --annotations " +
                                              dir.file("gt.json") + " --results " + dir.file("dt.json") +
                                              " --iou-type keypoints");
  EXPECT_EQ(r.exit_code, 2) << r.output;
}

}  // namespace
