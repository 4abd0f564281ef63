// A directory owned by one object and removed with it: the core of the test programs' TempDir
// (tests/temp_dir.h) and of the fuzz targets' per-process directory (fuzz/fuzz_util.h). No gtest here.
#pragma once
#include <filesystem>
#include <string>
#include <system_error>

namespace semaim::test {

class ScopedDir {
 public:
  // Takes `path` over: creates it (and its parents) if missing; the destructor removes it with its contents.
  explicit ScopedDir(std::filesystem::path path) : path_(std::move(path)) {
    std::filesystem::create_directories(path_);
  }
  ~ScopedDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  ScopedDir(const ScopedDir&) = delete;
  ScopedDir& operator=(const ScopedDir&) = delete;
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

}  // namespace semaim::test
