// tools/crash_test.sh --quick (docs/reliability.md, "Crash test"): SIGKILLs, a SIGTERM and a full disk
// against a tiny pretraining all resume to the uninterrupted run's weights; its checkers flag what they are
// meant to flag.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "run_command.h"
#include "semaim_paths.h"
#include "temp_dir.h"

namespace fs = std::filesystem;
using semaim::testing::run_command;

namespace {

const std::string kTool = std::string(SEMAIM_SOURCE_DIR) + "/tools/crash_test.sh";
const std::string kUtil = std::string(SEMAIM_PYTHON) + " " + SEMAIM_SOURCE_DIR + "/tools/crash_util.py";

std::string table_row(const std::string& out, const std::string& what) {
  const size_t at = out.find("| " + what);
  return at == std::string::npos ? "" : out.substr(at, out.find('\n', at) - at);
}

}  // namespace

TEST(CrashTool, QuickCampaignResumesEveryInterruptedRunToTheUninterruptedWeights) {
  if (!fs::exists(SEMAIM_PYTHON))
    GTEST_SKIP() << "no venv python at " << SEMAIM_PYTHON << " (run tools/setup.sh)";
  const semaim::test::TempDir tmp;
  const fs::path work = tmp.path() / "crash";
  auto r = run_command("SEMAIM_BIN=" + std::string(SEMAIM_BINARY) +
                       " SEMAIM_VENV=" + fs::path(SEMAIM_PYTHON).parent_path().parent_path().string() + " " +
                       kTool + " --quick --seed 1 --keep --workdir " + work.string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("crash test: PASSED"), std::string::npos) << r.output;
  EXPECT_NE(table_row(r.output, "SIGKILLs").find("| 3 of 3"), std::string::npos) << r.output;
  EXPECT_NE(table_row(r.output, "resumes OK").find("| 3 of 3"), std::string::npos) << r.output;
  EXPECT_NE(table_row(r.output, "final weights equal").find("| yes (optimizer state: yes)"),
            std::string::npos)
      << r.output;
  EXPECT_NE(table_row(r.output, "SIGTERM").find("exit 75 at step"), std::string::npos) << r.output;

  // The checkers fail on what they look for: two different checkpoints, a step logged twice, a stray temp
  // file.
  const fs::path ref = work / "runs" / "ref";
  std::vector<fs::path> weights;
  for (const auto& e : fs::directory_iterator(ref / "checkpoints"))
    if (e.path().string().ends_with(".weights.safetensors")) weights.push_back(e.path());
  ASSERT_EQ(weights.size(), 2u);
  auto same = run_command(kUtil + " same-tensors " + weights[0].string() + " " + weights[1].string());
  EXPECT_EQ(same.exit_code, 1) << same.output;
  EXPECT_NE(same.output.find("differ"), std::string::npos) << same.output;
  EXPECT_EQ(run_command(kUtil + " metrics " + ref.string()).exit_code, 0);
  std::string first;
  std::getline(std::ifstream(ref / "metrics.jsonl"), first);
  std::ofstream(ref / "metrics.jsonl", std::ios::app) << first << "\n";
  auto dup = run_command(kUtil + " metrics " + ref.string());
  EXPECT_EQ(dup.exit_code, 1) << dup.output;
  EXPECT_NE(dup.output.find("more than once"), std::string::npos) << dup.output;
  std::ofstream(ref / "checkpoints" / "step-00000099.state.safetensors.tmp.12.0.345") << "x";
  auto left = run_command(kUtil + " leftovers " + ref.string());
  EXPECT_EQ(left.exit_code, 1) << left.output;
  EXPECT_NE(left.output.find("step-00000099.state.safetensors.tmp.12.0.345"), std::string::npos)
      << left.output;
}
