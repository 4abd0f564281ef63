// The `semaim` binary end to end: help, exit codes (0 ok, 2 bad input, 1 runtime failure) and error messages
// that name the file and the fault.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "run_command.h"
#include "semaim_paths.h"
#include "temp_dir.h"

namespace fs = std::filesystem;
using semaim::testing::run_command;

namespace {

const std::string kBin = SEMAIM_BINARY;
const std::string kTiny =
    " --set run.threads=1 --set model.embed_dim=32 --set model.depth=2 --set model.num_heads=2"
    " --set model.decoder_depth=2 --set data.limit=128 --set pretrain.batch_size=32 --set log.progress=off";

class Cli : public ::testing::Test {
 protected:
  std::string write(const std::string& rel, const std::string& text) {
    std::ofstream(tmp_.file(rel)) << text;
    return tmp_.file(rel);
  }
  std::string out_dir() const { return " --set run.output_dir=" + tmp_.path().string(); }
  semaim::test::TempDir tmp_;
};

}  // namespace

TEST_F(Cli, HelpOfEverySubcommandExitsZero) {
  for (const char* sub : {"", "pretrain", "linprobe", "export", "config"}) {
    auto r = run_command(kBin + " " + sub + " --help");
    EXPECT_EQ(r.exit_code, 0) << sub << r.output;
    EXPECT_NE(r.output.find("Usage"), std::string::npos) << sub;
  }
}

TEST_F(Cli, UnknownSubcommandOrMissingArgumentExitsTwo) {
  EXPECT_EQ(run_command(kBin + " pretrian x.yaml").exit_code, 2);
  EXPECT_EQ(run_command(kBin + " pretrain").exit_code, 2);
  EXPECT_EQ(run_command(kBin + " pretrain " + tmp_.file("missing.yaml")).exit_code, 2);
}

TEST_F(Cli, UnknownConfigKeyExitsTwoNamingFileKeyAndSuggestion) {
  auto cfg = write("bad.yaml", "pretrain:\n  epohcs: 3\n");
  auto r = run_command(kBin + " pretrain " + cfg);
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("bad.yaml"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("pretrain.epohcs"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("pretrain.epochs"), std::string::npos) << r.output;
}

TEST_F(Cli, BadOverrideValueExitsTwo) {
  auto cfg = write("ok.yaml", "pretrain:\n  epochs: 1\n");
  auto r = run_command(kBin + " pretrain " + cfg + " --set pretrain.batch_size=-4");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("pretrain.batch_size"), std::string::npos) << r.output;
}

TEST_F(Cli, TruncatedDatasetFileExitsTwoNamingTheFile) {
  fs::create_directories(tmp_.path() / "fm");
  for (const char* f : {"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                        "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"})
    fs::copy_file(fs::path("/usr/share/datasets/fashion-mnist") / f, tmp_.path() / "fm" / f);
  fs::resize_file(tmp_.path() / "fm" / "train-images-idx3-ubyte.gz", 5000);
  auto cfg = write("c.yaml", "data:\n  root: " + tmp_.file("fm") + "\n");
  auto r = run_command(kBin + " pretrain " + cfg + out_dir() + kTiny);
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("train-images-idx3-ubyte.gz"), std::string::npos) << r.output;
}

TEST_F(Cli, WrongCheckpointExitsTwo) {
  auto cfg = write("c.yaml", "pretrain:\n  epochs: 1\n");
  auto junk = write("junk.weights.safetensors", "this is not a safetensors file");
  write("junk.json", "{\"step\": 1}");
  write("junk.state.safetensors", "nor this");
  auto r = run_command(kBin + " linprobe " + cfg + out_dir() + kTiny + " --checkpoint " + junk);
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("junk.weights.safetensors"), std::string::npos) << r.output;
}

TEST_F(Cli, DivergingRunExitsOneAndLeavesACheckpoint) {
  auto cfg = write("div.yaml",
                   "pretrain:\n  epochs: 1\n  lr: 1.0e+30\n  warmup_epochs: 0\n  max_consecutive_skips: 2\n");
  auto r = run_command(kBin + " pretrain " + cfg + out_dir() + kTiny);
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("diverged"), std::string::npos) << r.output;
  EXPECT_TRUE(fs::exists(tmp_.path() / "div" / "checkpoints"));
}

TEST_F(Cli, PretrainLinprobeExportAndConfigRunEndToEnd) {
  auto cfg = write("e2e.yaml",
                   "pretrain:\n  epochs: 1\nlinprobe:\n  epochs: 2\n  train_limit: 256\n  test_limit: 256\n");
  auto r = run_command(kBin + " pretrain " + cfg + out_dir() + kTiny);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("loss"), std::string::npos);
  auto run = tmp_.path() / "e2e";
  EXPECT_TRUE(fs::exists(run / "metrics.jsonl"));
  auto p = run_command(kBin + " linprobe " + cfg + out_dir() + kTiny);
  ASSERT_EQ(p.exit_code, 0) << p.output;
  EXPECT_TRUE(fs::exists(run / "linprobe.json"));
  auto q = run_command(kBin + " linprobe " + cfg + out_dir() + kTiny + " --random-init");
  ASSERT_EQ(q.exit_code, 0) << q.output;
  EXPECT_TRUE(fs::exists(run / "linprobe_random.json"));
  auto e = run_command(kBin + " export --checkpoint " + run.string() + " -o " + tmp_.file("enc.safetensors"));
  ASSERT_EQ(e.exit_code, 0) << e.output;
  EXPECT_TRUE(fs::exists(tmp_.path() / "enc.safetensors"));
  auto c = run_command(kBin + " config " + cfg + " --set pretrain.epochs=9");
  ASSERT_EQ(c.exit_code, 0) << c.output;
  EXPECT_NE(c.output.find("epochs: 9"), std::string::npos) << c.output;
}
