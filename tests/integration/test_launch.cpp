// `semaim launch`: torchrun's environment per rank, rank-prefixed output, fail-fast shutdown with the failing
// rank's exit code, semaim subcommands run by the same binary.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "run_command.h"
#include "semaim_paths.h"
#include "temp_dir.h"

namespace fs = std::filesystem;
using semaim::testing::run_command;

namespace {

const std::string kLaunch = std::string("timeout 120 ") + SEMAIM_BINARY + " launch ";

bool contains(const std::string& s, const std::string& needle) { return s.find(needle) != std::string::npos; }

TEST(Launch, RanksGetTorchrunEnvironmentAndPrefixedOutput) {
  const auto r =
      run_command(kLaunch +
                  "--nproc-per-node 3 --master-port 29611 -- sh -c 'echo \"$RANK $WORLD_SIZE "
                  "$LOCAL_RANK $LOCAL_WORLD_SIZE $MASTER_ADDR $MASTER_PORT $TORCHELASTIC_RESTART_COUNT\"'");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "[rank 0] 0 3 0 3 127.0.0.1 29611 0")) << r.output;
  EXPECT_TRUE(contains(r.output, "[rank 2] 2 3 2 3 127.0.0.1 29611 0")) << r.output;
}

TEST(Launch, NodeRankOffsetsTheGlobalRanks) {
  const auto r = run_command(kLaunch +
                             "--nproc-per-node 2 --nnodes 2 --node-rank 1 --master-addr head -- sh -c "
                             "'echo \"R=$RANK W=$WORLD_SIZE L=$LOCAL_RANK A=$MASTER_ADDR\"'");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "[rank 2] R=2 W=4 L=0 A=head")) << r.output;
  EXPECT_TRUE(contains(r.output, "[rank 3] R=3 W=4 L=1 A=head")) << r.output;
}

TEST(Launch, AFailingRankStopsTheOthersAndItsCodeIsTheExitCode) {
  // Ranks 0 and 2 would sleep for a minute; rank 1 fails after a second. `timeout` (exit 124) would mean a
  // hang.
  const auto r = run_command(kLaunch +
                             "--nproc-per-node 3 -- sh -c 'echo up $RANK; if [ \"$RANK\" = 1 ]; then sleep "
                             "1; exit 5; fi; sleep 60'");
  EXPECT_EQ(r.exit_code, 5) << r.output;
  EXPECT_TRUE(contains(r.output, "rank 1 exited with code 5; stopping the other ranks")) << r.output;
  EXPECT_TRUE(contains(r.output, "[rank 2] up 2")) << r.output;
}

TEST(Launch, AStopSignalIsForwardedToEveryRankAndSeventyFiveComesBack) {
  // Each rank saves (here: prints) and exits 75 on SIGUSR1, as a training rank does; the launcher must pass the
  // signal on (the ranks sit in their own process groups) and report 75, not kill them.
  semaim::test::TempDir tmp;
  const std::string rank = tmp.file("rank.sh");
  std::ofstream(rank) << "trap 'echo saved $RANK; exit 75' USR1\necho up $RANK\n"
                         "i=0; while [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done\nexit 3\n";
  // No `timeout` in front: the signal must reach the launcher itself (the ranks end by themselves after 30 s).
  const auto r = run_command("sh -c '" + std::string(SEMAIM_BINARY) + " launch --nproc-per-node 2 -- sh " + rank +
                             " & pid=$!; sleep 2; kill -USR1 $pid; wait $pid; echo code=$?'");
  EXPECT_TRUE(contains(r.output, "code=75")) << r.output;
  EXPECT_TRUE(contains(r.output, "[rank 0] saved 0")) << r.output;
  EXPECT_TRUE(contains(r.output, "[rank 1] saved 1")) << r.output;
}

TEST(Launch, SemaimSubcommandsRunInEveryRankAndBadOptionsExitTwo) {
  const auto c = run_command(kLaunch + "--nproc-per-node 2 -- config --set pretrain.epochs=7");
  EXPECT_EQ(c.exit_code, 0) << c.output;
  EXPECT_TRUE(contains(c.output, "[rank 0]   epochs: 7")) << c.output;
  EXPECT_TRUE(contains(c.output, "[rank 1]   epochs: 7")) << c.output;
  EXPECT_EQ(run_command(kLaunch + "--nproc-per-node 2 --nnodes 2 --node-rank 2 -- config").exit_code, 2);
  EXPECT_EQ(run_command(kLaunch + "--nproc-per-node 0 -- config").exit_code, 2);
  // A pretraining rank's typed error (here: no CUDA for a 2-rank torchrun-style job on this machine, or any
  // other input error) comes back as the launcher's exit code 2.
  const auto p = run_command(kLaunch + "--nproc-per-node 2 -- pretrain /nonexistent.yaml");
  EXPECT_EQ(p.exit_code, 2) << p.output;
}

TEST(Launch, OneRankPretrainingRunsEndToEnd) {
  const semaim::test::TempDir tmp;
  const fs::path& dir = tmp.path();
  std::ofstream(dir / "l.yaml") << "pretrain:\n  epochs: 1\n  max_steps: 2\n";
  const auto r = run_command(kLaunch + "--nproc-per-node 1 -- pretrain " + (dir / "l.yaml").string() +
                             " --set run.output_dir=" + dir.string() +
                             " --set run.threads=1 --set model.embed_dim=32 --set model.depth=2"
                             " --set model.num_heads=2 --set model.decoder_depth=2 --set data.limit=128"
                             " --set pretrain.batch_size=32 --set log.progress=off");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "[rank 0] ")) << r.output;
  EXPECT_TRUE(contains(r.output, "pretraining done")) << r.output;
  EXPECT_TRUE(fs::exists(dir / "l" / "checkpoints" / "step-00000002.json")) << r.output;
}

}  // namespace
