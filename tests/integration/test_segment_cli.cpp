// `semaim segment evaluate`: folders of label PNGs scored as mmseg's IoU metric, the table, CSV and JSON, and
// clear exit-2 errors for missing or mismatched predictions.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "run_command.h"
#include "semaim/data/label_map.h"
#include "semaim/eval/segmentation.h"
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

TEST(SegmentEvaluateCli, ScoresFoldersAndWritesTheTableCsvAndJson) {
  semaim::test::TempDir dir;
  fs::create_directories(dir.path() / "gt");
  fs::create_directories(dir.path() / "pred");
  at::manual_seed(2);
  for (int i = 0; i < 3; ++i) {
    const at::Tensor gt = at::randint(0, 5, {12, 17}, at::kLong).to(at::kByte);  // 0 = ignored after reduction
    const at::Tensor pred = at::randint(0, 4, {12, 17}, at::kLong).to(at::kByte);
    const std::string name = "a" + std::to_string(i) + ".png";
    semaim::io::atomic_write((dir.path() / "gt" / name).string(), semaim::data::encode_label_png(gt));
    semaim::io::atomic_write((dir.path() / "pred" / name).string(), semaim::data::encode_label_png(pred, {{1, 2, 3}}));
  }
  semaim::io::atomic_write(dir.file("names.txt"), "cat\ndog\nfish\nbird\n");
  const std::string cmd = std::string(SEMAIM_BINARY) + " segment evaluate --pred " + dir.file("pred") + " --gt " +
                          dir.file("gt") + " --reduce-zero-label --num-classes 4 --class-names " +
                          dir.file("names.txt") + " --csv " + dir.file("s.csv") + " --json " + dir.file("s.json");
  const auto r = semaim::testing::run_command(cmd);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("fish"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("mIoU"), std::string::npos) << r.output;
  semaim::eval::LabelFolders f;
  f.pred_dir = dir.file("pred");
  f.gt_dir = dir.file("gt");
  f.reduce_zero_label = true;
  f.num_classes = 4;
  const auto expected = semaim::eval::evaluate_label_folders(f);
  const auto j = nlohmann::json::parse(slurp(dir.file("s.json")));
  EXPECT_DOUBLE_EQ(j["mIoU"].get<double>(), expected.miou);
  EXPECT_DOUBLE_EQ(j["aAcc"].get<double>(), expected.aacc);
  EXPECT_EQ(j["images"].get<int>(), 3);
  const std::string csv = slurp(dir.file("s.csv"));
  EXPECT_EQ(csv.rfind("class,name,iou,acc\n0,cat,", 0), 0u) << csv;
}

TEST(SegmentEvaluateCli, MissingPredictionsAndBadFoldersExitTwoNamingTheFile) {
  semaim::test::TempDir dir;
  fs::create_directories(dir.path() / "gt");
  fs::create_directories(dir.path() / "pred");
  semaim::io::atomic_write(dir.file("gt/x.png"), semaim::data::encode_label_png(at::zeros({4, 4}, at::kByte)));
  auto r = semaim::testing::run_command(std::string(SEMAIM_BINARY) + " segment evaluate --pred " +
                                        dir.file("pred") + " --gt " + dir.file("gt"));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("pred/x.png"), std::string::npos) << r.output;
  semaim::io::atomic_write(dir.file("pred/x.png"), "garbage");
  r = semaim::testing::run_command(std::string(SEMAIM_BINARY) + " segment evaluate --pred " + dir.file("pred") +
                                   " --gt " + dir.file("gt"));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("not a PNG"), std::string::npos) << r.output;
  r = semaim::testing::run_command(std::string(SEMAIM_BINARY) + " segment evaluate --pred " + dir.file("nope") +
                                   " --gt " + dir.file("gt"));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  r = semaim::testing::run_command(std::string(SEMAIM_BINARY) + " segment");
  EXPECT_EQ(r.exit_code, 2) << r.output;
}

}  // namespace
