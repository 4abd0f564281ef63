// Where a run's metrics go (MAE's misc.MetricLogger + log_writer roles): metrics.jsonl, TensorBoard event
// files and the console (a progress bar on a terminal, plain lines otherwise). A record is one JSON object
// per logged step; every sink gets the same records.
#pragma once
#include <cstdint>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace semaim::io {
class TensorBoardWriter;
}

namespace semaim::engine {

class MetricSink {
 public:
  virtual ~MetricSink() = default;
  // One logged step: {"step": S, "epoch": E, <name>: number, ...}.
  virtual void record(const nlohmann::json& rec) = 0;
  // A text blob (the resolved config) at a step.
  virtual void text(const std::string& tag, const std::string& body, int64_t step) {}
  virtual void flush() {}
};

// Appends one JSON line per record to a file (a resumed run continues the same file).
class JsonlSink final : public MetricSink {
 public:
  explicit JsonlSink(const std::string& path);
  void record(const nlohmann::json& rec) override;

 private:
  std::string path_;
  std::ofstream out_;
};

// Every numeric field of a record (except step) as a TensorBoard scalar named `<prefix>/<field>`; texts
// through the text plugin. Event files go into `dir` (the run directory).
class TensorBoardSink final : public MetricSink {
 public:
  TensorBoardSink(const std::string& dir, std::string prefix);
  ~TensorBoardSink() override;
  void record(const nlohmann::json& rec) override;
  void text(const std::string& tag, const std::string& body, int64_t step) override;
  void flush() override;

 private:
  std::unique_ptr<io::TensorBoardWriter> writer_;
  std::string prefix_;
};

// Console output: a redrawn progress bar (mode "on", or "auto" on a terminal) or one line per record.
class ConsoleSink final : public MetricSink {
 public:
  ConsoleSink(const std::string& mode, bool quiet, int64_t total_steps);
  bool bar() const { return bar_; }
  // Redraws the bar with a status text (bar mode only).
  void progress(int64_t step, const std::string& status);
  void record(const nlohmann::json& rec) override;
  // A full line (ends the bar line first).
  void line(const std::string& text);
  void finish();

 private:
  bool bar_ = false, quiet_ = false, drawn_ = false;
  int64_t total_steps_ = 0;
};

// Fans records out to several sinks.
class Sinks {
 public:
  void add(std::unique_ptr<MetricSink> sink) { sinks_.push_back(std::move(sink)); }
  void record(const nlohmann::json& rec);
  void text(const std::string& tag, const std::string& body, int64_t step);
  void flush();

 private:
  std::vector<std::unique_ptr<MetricSink>> sinks_;
};

struct RunContext;
struct LogSettings;
}  // namespace semaim::engine
namespace semaim::config {
class Config;
}
namespace semaim::engine {

// A run's file sinks on rank 0, which first takes the run directory's lock (RunContext::lock_run_dir): writes
// the resolved config to <run dir>/config.yaml (on resume only when it changed, with a warning), keeps the
// metrics.jsonl records up to `step` (the resumed step) and appends to it, and with log.tensorboard writes
// TensorBoard events (scalars as `<prefix>/<field>`, the config as text at `step`; an earlier attempt's event
// file keeps its points past `step`, see docs/reliability.md). Other ranks get no sinks.
Sinks open_run_sinks(RunContext& ctx, const config::Config& cfg, const LogSettings& log,
                     const std::string& prefix, int64_t step);

// The console line of a record: "epoch E step S/T loss ... lr ... grad ... N img/s data-wait P% ETA h:mm:ss",
// each part only when the record has the field.
std::string format_record(const nlohmann::json& rec, int64_t total_steps);

}  // namespace semaim::engine
