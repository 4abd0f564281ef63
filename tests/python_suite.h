// PythonSuite: the fixture of a test suite held against files a script of the venv's Python writes once for
// the whole suite. Its tests skip with the reason when the venv is missing and fail when the script failed.
#pragma once
#include <gtest/gtest.h>

#include <filesystem>
#include <memory>
#include <string>

#include "run_command.h"
#include "semaim_paths.h"
#include "temp_dir.h"

namespace semaim::test {

// 's' in single quotes, for a shell command line.
inline std::string quoted(const std::string& s) { return "'" + s + "'"; }

// `Suite` is the deriving fixture, so that every suite keeps its own state.
template <class Suite>
class PythonSuite : public ::testing::Test {
 protected:
  // False, and the suite skipped, when the venv has no python.
  static bool have_python() {
    if (std::filesystem::exists(SEMAIM_PYTHON)) return true;
    skip_reason_ = std::string("no venv python at ") + SEMAIM_PYTHON + " (run tools/setup.sh)";
    return false;
  }
  // Runs tests/<script> with the venv's python and `args` (quoted by the caller); true when it exits 0. Any
  // other exit fails every test of the suite, except exit code 3 (the script's "a reference package -- timm,
  // torchvision, pycocotools -- is not importable") when `missing` is given: it then receives the script's
  // own message, and the caller skips what needs the package.
  static bool run_script(const std::string& script, const std::string& args, std::string* missing = nullptr) {
    const std::string path = std::string(SEMAIM_SOURCE_DIR) + "/tests/" + script;
    const auto r = semaim::testing::run_command(quoted(SEMAIM_PYTHON) + " " + quoted(path) + " " + args);
    if (r.exit_code == 3 && missing)
      *missing = "a reference package is not importable in the venv: " + r.output;
    else if (r.exit_code != 0)
      failure_ = script + " exited " + std::to_string(r.exit_code) + ": " + r.output;
    return r.exit_code == 0;
  }
  // The suite's directory, made on first use and removed after the suite.
  static const std::filesystem::path& dir() {
    if (!dir_) dir_ = std::make_unique<TempDir>();
    return dir_->path();
  }
  static std::string file(const std::string& name) { return (dir() / name).string(); }

  static void TearDownTestSuite() { dir_.reset(); }
  void SetUp() override {
    if (!skip_reason_.empty()) GTEST_SKIP() << skip_reason_;
    ASSERT_TRUE(failure_.empty()) << failure_;
  }

  static inline std::string skip_reason_, failure_;

 private:
  static inline std::unique_ptr<TempDir> dir_;
};

}  // namespace semaim::test
