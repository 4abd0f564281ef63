// Training telemetry: metrics.jsonl in the run directory, and the console (a progress bar on a terminal,
// plain lines otherwise).
#pragma once
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

namespace semaim::train {

class MetricsFile {
 public:
  // Appends to path (a resumed run continues the same file).
  explicit MetricsFile(const std::string& path);
  void write(const nlohmann::json& record);

 private:
  std::string path_;
  std::ofstream out_;
};

class ConsoleProgress {
 public:
  // mode: "auto" (bar when stdout is a terminal), "on", "off".
  ConsoleProgress(const std::string& mode, bool quiet);
  bool bar() const { return bar_; }
  // Redraws the bar (bar mode only).
  void update(int64_t step, int64_t total_steps, const std::string& status);
  // A full line (ends the bar line first in bar mode).
  void line(const std::string& text);
  void finish();

 private:
  bool bar_ = false;
  bool quiet_ = false;
  bool drawn_ = false;
};

// "1:02:03" / "4:05"
std::string format_duration(double seconds);

}  // namespace semaim::train
