// `semaim sweep` without child processes: the sweep file's parsing and validation errors, product and zip
// expansion, thread and device splitting, mean ± std, and the results files from hand-made point directories.
#include <gtest/gtest.h>

#include <opencv2/imgcodecs.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "semaim/core/errors.h"
#include "semaim/io/atomic_file.h"
#include "semaim/tasks/sweep.h"
#include "semaim_paths.h"
#include "temp_dir.h"

namespace {

namespace fs = std::filesystem;
using semaim::tasks::Overrides;

const std::string kBase = std::string(SEMAIM_SOURCE_DIR) + "/configs/pretrain/aim-fmnist-p4_1xb128-semantic_fmnist.yaml";

std::string write_sweep(const semaim::test::TempDir& dir, const std::string& body) {
  const std::string path = dir.file("sweep.yaml");
  semaim::io::atomic_write(path, "base: " + kBase + "\n" + body);
  return path;
}

// The message of the InputError that `fn` throws ("" when it throws none).
template <class Fn>
std::string input_error(Fn fn) {
  try {
    fn();
  } catch (const semaim::InputError& e) {
    return e.what();
  }
  return "";
}

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

TEST(SweepAxes, ProductVariesTheFirstAxisSlowest) {
  const auto pts = semaim::tasks::expand_axes({{"a", {"1", "2"}}, {"b", {"x", "y", "z"}}}, "product", "f");
  ASSERT_EQ(pts.size(), 6u);
  EXPECT_EQ(pts[0], (Overrides{{"a", "1"}, {"b", "x"}}));
  EXPECT_EQ(pts[2], (Overrides{{"a", "1"}, {"b", "z"}}));
  EXPECT_EQ(pts[3], (Overrides{{"a", "2"}, {"b", "x"}}));
}

TEST(SweepAxes, ZipPairsTheIthValuesAndRefusesUnequalLengths) {
  const auto pts = semaim::tasks::expand_axes({{"a", {"1", "2"}}, {"b", {"x", "y"}}}, "zip", "f");
  ASSERT_EQ(pts.size(), 2u);
  EXPECT_EQ(pts[1], (Overrides{{"a", "2"}, {"b", "y"}}));
  const std::string e =
      input_error([] { semaim::tasks::expand_axes({{"a", {"1", "2"}}, {"b", {"x"}}}, "zip", "f.yaml"); });
  EXPECT_NE(e.find("f.yaml"), std::string::npos) << e;
  EXPECT_NE(e.find("a has 2 values, b has 1"), std::string::npos) << e;
}

TEST(SweepAxes, EmptyAxisAndUnknownModeAreInputErrors) {
  EXPECT_NE(input_error([] { semaim::tasks::expand_axes({{"run.seed", {}}}, "product", "f"); }).find("axes.run.seed: no values"),
            std::string::npos);
  EXPECT_NE(input_error([] { semaim::tasks::expand_axes({{"a", {"1"}}}, "grid", "f"); }).find("'grid'"),
            std::string::npos);
}

TEST(SweepFile, PointsGetNamesDirectoriesAndOverrides) {
  semaim::test::TempDir dir;
  const std::string f = write_sweep(dir, "name: abl\noutput_dir: " + dir.file("out") +
                                             "\nset: {pretrain.max_steps: 3}\naxes:\n  ordering.strategy: [raster, "
                                             "snake]\n  run.seed: [0, 1]\nevaluations: [knn, finetune]\n"
                                             "knn:\n  set: {knn.k: [5, 10]}\n");
  const auto plan = semaim::tasks::load_sweep(f);
  ASSERT_EQ(plan.points.size(), 4u);
  EXPECT_EQ(plan.dir, dir.file("out") + "/abl");
  EXPECT_EQ(plan.points[3].name, "p03_strategy-snake_seed-1");
  EXPECT_EQ(plan.points[3].dir, plan.dir + "/p03_strategy-snake_seed-1");
  EXPECT_EQ(plan.pretrain_sets(plan.points[1]),
            (std::vector<std::string>{"pretrain.max_steps=3", "ordering.strategy=raster", "run.seed=1",
                                      "run.name=p01_strategy-raster_seed-1", "run.output_dir=" + plan.dir}));
  ASSERT_EQ(plan.evaluations.size(), 2u);
  EXPECT_EQ(plan.evaluations[0].config, kBase);  // the base config unless the file names one
  const auto knn = plan.evaluation_sets(plan.points[0], plan.evaluations[0]);
  EXPECT_EQ(knn.back(), "knn.k=[5, 10]");
  const auto ft = plan.evaluation_sets(plan.points[0], plan.evaluations[1]);
  EXPECT_EQ(ft[ft.size() - 3], "finetune.init=" + plan.points[0].dir);
  EXPECT_EQ(ft.back(), "run.output_dir=" + plan.points[0].dir);
  EXPECT_EQ(semaim::tasks::load_sweep(f, dir.file("elsewhere")).points[0].dir,
            dir.file("elsewhere") + "/p00_strategy-raster_seed-0");
}

TEST(SweepFile, StructuralErrorsNameTheKey) {
  semaim::test::TempDir dir;
  auto err = [&](const std::string& body) {
    return input_error([&] { semaim::tasks::load_sweep(write_sweep(dir, body), "", false); });
  };
  EXPECT_NE(err("axis:\n  run.seed: [0]\n").find("unknown key 'axis'"), std::string::npos);
  EXPECT_NE(err("axes:\n  run.seed: []\n").find("axes.run.seed: no values"), std::string::npos);
  EXPECT_NE(err("axes:\n  run.seed: 3\n").find("axes.run.seed: expected a list"), std::string::npos);
  EXPECT_NE(err("mode: zip\naxes:\n  run.seed: [0, 1]\n  ordering.strategy: [raster]\n").find("run.seed has 2"),
            std::string::npos);
  EXPECT_NE(err("set: {run.seed: 1}\naxes:\n  run.seed: [0]\n").find("also in set"), std::string::npos);
  EXPECT_NE(err("evaluations: [knn, probe]\n").find("unknown evaluation 'probe'"), std::string::npos);
  EXPECT_NE(err("evaluations: [knn]\nlinprobe: {set: {}}\n").find("linprobe: settings of an evaluation not in"),
            std::string::npos);
  EXPECT_NE(err("evaluations: [knn]\nknn: {sett: {}}\n").find("knn: unknown key 'sett'"), std::string::npos);
}

TEST(SweepFile, ValuesTheSchemaRejectsNameThePointAndKey) {
  semaim::test::TempDir dir;
  const std::string bad_strategy = input_error([&] {
    semaim::tasks::load_sweep(write_sweep(dir, "axes:\n  ordering.strategy: [raster, foo]\n  run.seed: [0, 1]\n"));
  });
  EXPECT_NE(bad_strategy.find("sweep.yaml: point 2 (ordering.strategy=foo, run.seed=0): "), std::string::npos)
      << bad_strategy;
  EXPECT_NE(bad_strategy.find("ordering.strategy"), std::string::npos);
  const std::string bad_set = input_error([&] {
    semaim::tasks::load_sweep(write_sweep(dir, "set: {pretrain.epochz: 1}\naxes:\n  run.seed: [0]\n"));
  });
  EXPECT_NE(bad_set.find("point 0 (run.seed=0): "), std::string::npos) << bad_set;
  EXPECT_NE(bad_set.find("pretrain.epochz"), std::string::npos) << bad_set;
  const std::string bad_eval = input_error([&] {
    semaim::tasks::load_sweep(
        write_sweep(dir, "axes:\n  run.seed: [0, 1]\nevaluations: [knn]\nknn:\n  set: {knn.temperature: abc}\n"));
  });
  EXPECT_NE(bad_eval.find("point 0 (run.seed=0): knn: "), std::string::npos) << bad_eval;
  EXPECT_NE(bad_eval.find("knn.temperature"), std::string::npos) << bad_eval;
}

TEST(SweepSplit, ThreadsAndDevicesAreSharedOut) {
  EXPECT_EQ(semaim::tasks::split_threads(2, 1), 2);
  EXPECT_EQ(semaim::tasks::split_threads(2, 4), 1);
  EXPECT_EQ(semaim::tasks::split_threads(8, 3), 2);
  EXPECT_EQ(semaim::tasks::split_devices({"0", "1", "2", "3"}, 2), (std::vector<std::string>{"0,2", "1,3"}));
  EXPECT_EQ(semaim::tasks::split_devices({"5"}, 3), (std::vector<std::string>{"5", "5", "5"}));
  EXPECT_EQ(semaim::tasks::split_devices({"0", "1"}, 3), (std::vector<std::string>{"0", "1", "0"}));
  EXPECT_EQ(semaim::tasks::split_devices({}, 2), (std::vector<std::string>{"", ""}));
}

TEST(SweepResults, MeanAndSampleStd) {
  const auto m = semaim::tasks::mean_std({1, 2, 3, 4});
  EXPECT_DOUBLE_EQ(m.mean, 2.5);
  EXPECT_NEAR(m.std, 1.2909944487, 1e-9);
  EXPECT_EQ(m.n, 4);
  EXPECT_EQ(semaim::tasks::mean_std({7}).std, 0.0);
  EXPECT_EQ(semaim::tasks::mean_std({}).n, 0);
}

// A point directory as the stages leave it: summary, loss curve, k-NN (k 5, 10) and linear-probe results.
void fake_point(const semaim::tasks::SweepPoint& p, double knn5, double probe, double loss, double seconds) {
  namespace io = semaim::io;
  fs::create_directories(p.dir);
  io::atomic_write(p.dir + "/pretrain_summary.json", "{\"steps\": 20, \"last_loss\": 9.0}\n");
  io::atomic_write(p.dir + "/metrics.jsonl", "{\"step\": 10, \"loss\": 1.5}\n{\"step\": 20, \"loss\": 9.9}\n"
                                             "{\"step\": 20, \"loss\": " + std::to_string(loss) + "}\n");
  io::atomic_write(p.dir + "/knn.json", "{\"k\": {\"10\": {\"top1_percent\": 50.0}, \"5\": {\"top1_percent\": " +
                                            std::to_string(knn5) + "}}}\n");
  io::atomic_write(p.dir + "/linprobe.json", "{\"top1_percent\": " + std::to_string(probe) + "}\n");
  io::atomic_write(p.dir + "/sweep_times.json", "{\"pretrain\": " + std::to_string(seconds) + ", \"knn\": 1.0}\n");
}

TEST(SweepResults, CsvRowsAndMarkdownMeansSortedByTheFirstEvaluation) {
  semaim::test::TempDir dir;
  const std::string f = write_sweep(dir, "axes:\n  ordering.strategy: [raster, semantic]\n  run.seed: [0, 1]\n"
                                         "evaluations: [knn, linprobe]\n");
  const auto plan = semaim::tasks::load_sweep(f, dir.file("sw"), false);
  fake_point(plan.points[0], 70, 80, 0.5, 9);
  fake_point(plan.points[1], 72, 82, 0.7, 11);
  fake_point(plan.points[2], 80, 60, 0.25, 19);
  fake_point(plan.points[3], 90, 62, 0.25, 21);
  EXPECT_FALSE(semaim::tasks::stage_finished(plan.points[0], "finetune"));
  semaim::io::atomic_write(plan.points[3].dir + "/linprobe.json", "{\"top1_per");  // a truncated file
  EXPECT_FALSE(semaim::tasks::stage_finished(plan.points[3], "linprobe"));
  semaim::io::atomic_write(plan.points[3].dir + "/linprobe.json", "{\"top1_percent\": 62}");
  std::vector<semaim::tasks::PointResult> rs;
  for (const auto& p : plan.points) rs.push_back(semaim::tasks::read_point_result(plan, p));
  EXPECT_EQ(rs[0].loss_curve, (std::vector<std::pair<int64_t, double>>{{10, 1.5}, {20, 0.5}}));
  EXPECT_EQ(semaim::tasks::metric_columns(plan, rs),
            (std::vector<std::string>{"knn_top1_k5", "knn_top1_k10", "linprobe_top1"}));
  const std::string csv = semaim::tasks::results_csv(plan, rs);
  EXPECT_EQ(csv,
            "point,ordering.strategy,run.seed,final_loss,knn_top1_k5,knn_top1_k10,linprobe_top1,wall_seconds\n"
            "p00_strategy-raster_seed-0,raster,0,0.5,70,50,80,10.0\n"
            "p01_strategy-raster_seed-1,raster,1,0.7,72,50,82,12.0\n"
            "p02_strategy-semantic_seed-0,semantic,0,0.25,80,50,60,20.0\n"
            "p03_strategy-semantic_seed-1,semantic,1,0.25,90,50,62,22.0\n");
  const std::string md = semaim::tasks::results_markdown(plan, rs);
  EXPECT_NE(md.find("| ordering.strategy | points | final_loss | knn_top1_k5 | knn_top1_k10 | linprobe_top1 | "
                    "wall_seconds |"),
            std::string::npos)
      << md;
  const auto semantic = md.find("| semantic | 2 | 0.2500 ± 0.0000 | 85.00 ± 7.07 | 50.00 ± 0.00 | 61.00 ± 1.41 | "
                                "21 ± 1 |");
  const auto raster = md.find("| raster | 2 | 0.6000 ± 0.1414 | 71.00 ± 1.41 |");
  ASSERT_NE(semantic, std::string::npos) << md;
  ASSERT_NE(raster, std::string::npos) << md;
  EXPECT_LT(semantic, raster) << "sorted by knn_top1_k5, descending";
}

TEST(SweepResults, WritesTablesPicturesAndHparamsEvents) {
  semaim::test::TempDir dir;
  const std::string f = write_sweep(dir, "axes:\n  ordering.strategy: [raster, stochastic_center]\n  run.seed: [0, 1]\n"
                                         "evaluations: [knn, linprobe]\n");
  const auto plan = semaim::tasks::load_sweep(f, dir.file("sw"), false);
  for (size_t i = 0; i < 3; ++i) fake_point(plan.points[i], 70 + i, 80 - i, 0.5, 9);  // the last one never ran
  semaim::tasks::write_sweep_results(plan);
  const std::string csv = slurp(dir.file("sw/results.csv"));
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 4);
  for (const char* png : {"results_bars.png", "results_loss.png"}) {
    const cv::Mat img = cv::imread(dir.file(std::string("sw/") + png));
    ASSERT_FALSE(img.empty()) << png;
    EXPECT_GT(img.cols, 400);
    EXPECT_GT(img.rows, 400);  // two evaluation panels / the plot and its axis labels
  }
  EXPECT_TRUE(fs::exists(dir.file("sw/events.out.tfevents.0.semaim-sweep")));
  EXPECT_TRUE(fs::exists(plan.points[0].dir + "/events.out.tfevents.0.semaim-sweep"));
  EXPECT_FALSE(fs::exists(plan.points[3].dir + "/events.out.tfevents.0.semaim-sweep"));
}

}  // namespace
