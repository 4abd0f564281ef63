// Reading a run directory's files in task tests: metrics.jsonl records and the task's summary JSON.
#pragma once
#include <filesystem>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

namespace semaim::test {

// Records of <run dir>/metrics.jsonl that hold `key` (e.g. the evaluations: "top1", "mIoU").
inline int count_records_with(const std::filesystem::path& run_dir, const std::string& key) {
  std::ifstream in(run_dir / "metrics.jsonl");
  int n = 0;
  for (std::string line; std::getline(in, line);)
    if (nlohmann::json::parse(line).contains(key)) ++n;
  return n;
}

// <run dir>/<task>_summary.json.
inline nlohmann::json read_summary(const std::filesystem::path& run_dir, const std::string& task) {
  return nlohmann::json::parse(std::ifstream(run_dir / (task + "_summary.json")));
}

}  // namespace semaim::test
