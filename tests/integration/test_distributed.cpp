// Data-parallel pretraining across real MPI ranks: two ranks end with the parameters of one rank
// that accumulates the same global batch, rank 0 alone writes, and a rank that dies ends the job quickly.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>

#include "run_command.h"
#include "semaim/dist/comm.h"
#include "semaim/io/safetensors.h"
#include "semaim_paths.h"
#include "temp_dir.h"

namespace fs = std::filesystem;
using semaim::testing::run_command;

namespace {

const std::string kBin = SEMAIM_BINARY;
const std::string kTiny =
    " --set run.threads=1 --set model.embed_dim=32 --set model.depth=2 --set model.num_heads=2"
    " --set model.decoder_depth=2 --set data.limit=512 --set pretrain.batch_size=32 --set log.progress=off"
    " --set log.every_steps=1 --set pretrain.epochs=1 --set pretrain.max_steps=6"
    " --set pretrain.warmup_epochs=0";
// Ranks run without leak detection under the sanitizers: OpenMPI's unloaded plugins (tests/dist/test_mpi.cpp).
const std::string kMpirun =
    "ASAN_OPTIONS=\"${ASAN_OPTIONS:-}:detect_leaks=0\" OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1 timeout "
    "300 "
    "mpirun -np 2 --bind-to none ";

class Distributed : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!semaim::dist::mpi_built()) GTEST_SKIP() << "built without MPI (SEMAIM_WITH_MPI=OFF)";
    if (run_command("command -v mpirun").exit_code != 0) GTEST_SKIP() << "mpirun not installed";
    std::ofstream(tmp_.path() / "dp.yaml") << "ordering:\n  strategy: semantic\n";
  }
  std::string run(const std::string& prefix, const std::string& out, const std::string& extra) {
    const auto r = run_command(prefix + kBin + " pretrain " + tmp_.file("dp.yaml") +
                               " --set run.output_dir=" + (tmp_.path() / out).string() + kTiny + extra);
    EXPECT_EQ(r.exit_code, 0) << r.output;
    return r.output;
  }
  semaim::io::NamedTensors final_weights(const std::string& out) {
    return semaim::io::load_safetensors(
               (tmp_.path() / out / "dp" / "checkpoints" / "step-00000006.weights.safetensors").string())
        .tensors;
  }
  static double max_abs_diff(const semaim::io::NamedTensors& a, const semaim::io::NamedTensors& b) {
    EXPECT_EQ(a.size(), b.size());
    double m = 0;
    for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
      EXPECT_EQ(a[i].first, b[i].first);
      m = std::max(m, (a[i].second.to(at::kDouble) - b[i].second.to(at::kDouble)).abs().max().item<double>());
    }
    return m;
  }
  semaim::test::TempDir tmp_;
};

}  // namespace

TEST_F(Distributed, TwoMpiRanksEndWithTheParametersOfOneRankAccumulatingTheSameGlobalBatch) {
  run("", "one", " --set pretrain.accum_steps=2");
  const std::string two = run(kMpirun, "two", "");
  EXPECT_NE(two.find("effective batch 64 (2 rank(s), mpi)"), std::string::npos) << two;
  const double diff = max_abs_diff(final_weights("one"), final_weights("two"));
  std::cout << "max |params(1 rank, accum 2) - params(2 ranks)| = " << diff << "\n";
  EXPECT_LE(diff, 1e-6);
  // The comparison can fail: one rank with half the global batch ends elsewhere.
  run("", "half", "");
  EXPECT_GT(max_abs_diff(final_weights("one"), final_weights("half")), 1e-5);
  // Rank 0 alone wrote the metrics: one record per step.
  std::ifstream m(tmp_.path() / "two" / "dp" / "metrics.jsonl");
  int lines = 0;
  for (std::string l; std::getline(m, l);) ++lines;
  EXPECT_EQ(lines, 6);
}

TEST_F(Distributed, ARankThatDiesEndsTheJobQuicklyWithNonZeroExitAndKeepsEarlierCheckpoints) {
  const auto t0 = std::chrono::steady_clock::now();
  const auto r =
      run_command("SEMAIM_FAULT_EXIT=1:4 " + kMpirun + kBin + " pretrain " + tmp_.file("dp.yaml") +
                  " --set run.output_dir=" + tmp_.file("dead") + kTiny + " --set checkpoint.every_steps=2");
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("rank 1 exits at step 4"), std::string::npos) << r.output;
  EXPECT_NE(r.exit_code, 124) << "timeout ended the job: the surviving rank hung";
  std::cout << "job with a dead rank ended after " << secs << " s with exit code " << r.exit_code << "\n";
  EXPECT_TRUE(fs::exists(tmp_.path() / "dead" / "dp" / "checkpoints" / "step-00000002.json")) << r.output;
}

TEST_F(Distributed, AStalledRankIsNamedAndTheOthersStopAfterTheTimeout) {
  // Rank 1 stalls: rank 0 (an observer of every rank's arrivals) names it. Rank 0 stalls: rank 1 names it.
  for (const auto& [stalled, waiting] : {std::pair{1, 0}, std::pair{0, 1}}) {
    const auto t0 = std::chrono::steady_clock::now();
    const auto r = run_command("SEMAIM_FAULT_STALL=" + std::to_string(stalled) + ":3 " + kMpirun + kBin +
                               " pretrain " + tmp_.file("dp.yaml") + " --set run.output_dir=" +
                               (tmp_.path() / ("stall" + std::to_string(stalled))).string() + kTiny +
                               " --set dist.timeout_seconds=5");
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    EXPECT_NE(r.exit_code, 0) << r.output;
    EXPECT_NE(r.exit_code, 124) << "timeout ended the job: the watchdog did not";
    EXPECT_NE(r.output.find("rank " + std::to_string(stalled) + " stalls at step 3"), std::string::npos)
        << r.output;
    const std::string named = "rank " + std::to_string(waiting) + ": all_reduce (collective #";
    EXPECT_NE(r.output.find(named), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("did not complete within 5 s (dist.timeout_seconds): rank(s) " +
                            std::to_string(stalled) + " never reached it (stalled or died)"),
              std::string::npos)
        << r.output;
    std::cout << "stalled rank " << stalled << ": job ended after " << secs << " s with exit code "
              << r.exit_code << "\n";
  }
}

TEST_F(Distributed, ACheckpointOfTwoRanksResumesOnOneRankAndFinishesTheSchedule) {
  // 2 ranks stop at step 3 (max_steps 3) with a checkpoint; 1 rank resumes it with twice the accumulation
  // (the same global batch) and runs to step 6.
  run(kMpirun, "resize", " --set pretrain.max_steps=3");
  const std::string one = run("", "resize", " --set pretrain.accum_steps=2 --resume auto");
  EXPECT_NE(one.find("resumed from"), std::string::npos) << one;
  EXPECT_NE(one.find("at step 3"), std::string::npos) << one;
  EXPECT_TRUE(fs::exists(tmp_.path() / "resize" / "dp" / "checkpoints" / "step-00000006.json")) << one;
  // The same global batch and position: the result equals an uninterrupted 2-rank run of 6 steps.
  run(kMpirun, "straight", "");
  const double diff = max_abs_diff(final_weights("resize"), final_weights("straight"));
  std::cout << "max |params(2 ranks x 3 steps, then 1 rank x 3 steps) - params(2 ranks x 6 steps)| = " << diff
            << "\n";
  EXPECT_LE(diff, 1e-6);
}

namespace {

// One step of `semaim segment train` on the small default; -> the step-1 weights (running statistics included).
semaim::io::NamedTensors segment_step_weights(const std::string& prefix, const fs::path& out, int64_t batch) {
  const std::string cfg = std::string(SEMAIM_SOURCE_DIR) + "/configs/segment/upernet-fmnist-p4_1xb16-fmnist_seg.yaml";
  const auto r = run_command(prefix + SEMAIM_BINARY + " segment train " + cfg + " --set run.output_dir=" +
                             out.string() + " --set run.name=seg --set segment.data_root=" + SEMAIM_SEGDATA_DIR +
                             " --set run.threads=1 --set data.num_workers=1 --set segment.drop_path=0"
                             " --set segment.max_steps=1 --set segment.eval_limit=4 --set log.progress=off"
                             " --set checkpoint.every_steps=1 --set segment.batch_size=" +
                             std::to_string(batch));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  return semaim::io::load_safetensors((out / "seg" / "checkpoints" / "step-00000001.weights.safetensors").string())
      .tensors;
}

at::Tensor tensor_named(const semaim::io::NamedTensors& w, const std::string& name) {
  for (const auto& [n, t] : w)
    if (n == name) return t;
  ADD_FAILURE() << "no tensor " << name;
  return at::zeros({1});
}

}  // namespace

TEST_F(Distributed, TwoRanksNormalizeTheSegmentationHeadsWithTheStatisticsOfTheGlobalBatch) {
  if (!fs::exists(std::string(SEMAIM_SEGDATA_DIR) + "/.complete")) GTEST_SKIP() << "no fmnist-seg (tools/setup.sh)";
  // The same four canvases: two ranks of two, and one rank of four. The first BatchNorm's running mean after
  // one step (0.1 x the batch mean) sees the encoder's features of all four on both.
  const auto two = segment_step_weights(kMpirun, tmp_.path() / "two", 2);
  const auto one = segment_step_weights("", tmp_.path() / "one", 4);
  const auto half = segment_step_weights("", tmp_.path() / "half", 2);
  for (const std::string name : {"neck.fpn1.1.running_mean", "neck.fpn1.1.running_var"}) {
    const at::Tensor a = tensor_named(two, name), b = tensor_named(one, name), c = tensor_named(half, name);
    const double diff = (a - b).abs().max().item<double>();
    std::cout << name << ": max |2 ranks x 2 - 1 rank x 4| = " << diff
              << ", |1 rank x 2 - 1 rank x 4| = " << (c - b).abs().max().item<double>() << "\n";
    EXPECT_LE(diff, 1e-5) << name;
    EXPECT_GT((c - b).abs().max().item<double>(), 1e-3) << name << ": half the batch should differ";
  }
}
