// The sample image corpus (tools/make_corpus.py, built by tools/setup.sh) for data tests.
#pragma once
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "semaim_paths.h"

namespace semaim::test {

// Absolute path of rel inside the corpus; fails the test (with the fix) when the corpus is missing.
inline std::string corpus(const std::string& rel = "") {
  const std::filesystem::path root(SEMAIM_CORPUS_DIR);
  if (!std::filesystem::exists(root / ".complete")) {
    ADD_FAILURE() << "sample corpus missing at " << root << ": run tools/setup.sh";
  }
  return rel.empty() ? root.string() : (root / rel).string();
}

}  // namespace semaim::test
