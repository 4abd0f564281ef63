// A per-test temporary directory removed on destruction: the one temp-dir helper of every test program.
#pragma once
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "scoped_dir.h"

namespace semaim::test {

// Named after the running test (suite_name + pid + a counter), emptied first.
class TempDir : public ScopedDir {
 public:
  TempDir() : ScopedDir(fresh_path()) {}

 private:
  static std::filesystem::path fresh_path() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    const std::string tag = info ? std::string(info->test_suite_name()) + "_" + info->name() : "semaim";
    static int count = 0;  // several directories in one test stay apart
    auto path = std::filesystem::temp_directory_path() /
                ("semaim_" + tag + "_" + std::to_string(::getpid()) + "_" + std::to_string(count++));
    std::filesystem::remove_all(path);
    return path;
  }
};

}  // namespace semaim::test
