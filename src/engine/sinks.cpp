// metrics.jsonl, TensorBoard and console sinks.
#include "semaim/engine/sinks.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iterator>

#include "semaim/core/errors.h"
#include "semaim/core/log.h"
#include "semaim/core/timing.h"
#include "semaim/engine/config_drift.h"
#include "semaim/engine/run.h"
#include "semaim/engine/settings.h"
#include "semaim/io/atomic_file.h"
#include "semaim/io/tensorboard.h"

namespace semaim::engine {

JsonlSink::JsonlSink(const std::string& path) : path_(path), out_(path, std::ios::app) {
  if (!out_) throw RuntimeFailure("cannot open " + path + " for writing");
}

void JsonlSink::record(const nlohmann::json& rec) {
  out_ << rec.dump() << "\n";
  out_.flush();
  if (!out_) throw RuntimeFailure("write to " + path_ + " failed");
}

TensorBoardSink::TensorBoardSink(const std::string& dir, std::string prefix)
    : writer_(std::make_unique<io::TensorBoardWriter>(dir)), prefix_(std::move(prefix)) {}

TensorBoardSink::~TensorBoardSink() = default;

void TensorBoardSink::record(const nlohmann::json& rec) {
  const int64_t step = rec.value("step", int64_t{0});
  const double wall =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  for (const auto& [key, value] : rec.items()) {
    if (key == "step" || !value.is_number()) continue;
    writer_->add_scalar(prefix_ + "/" + key, value.get<double>(), step, wall);
  }
  writer_->flush();
}

void TensorBoardSink::text(const std::string& tag, const std::string& body, int64_t step) {
  writer_->add_text(tag, body, step);
  writer_->flush();
}

void TensorBoardSink::flush() { writer_->flush(); }

ConsoleSink::ConsoleSink(const std::string& mode, bool quiet, int64_t total_steps)
    : quiet_(quiet), total_steps_(total_steps) {
  bar_ = !quiet && (mode == "on" || (mode == "auto" && ::isatty(STDOUT_FILENO)));
}

void ConsoleSink::progress(int64_t step, const std::string& status) {
  if (!bar_) return;
  constexpr int kWidth = 30;
  const double frac = total_steps_ > 0 ? std::min(1.0, static_cast<double>(step) / total_steps_) : 0.0;
  const int filled = static_cast<int>(frac * kWidth);
  std::string bar(filled, '#');
  bar += std::string(kWidth - filled, '.');
  std::printf("\r[%s] %3d%% %s\x1b[K", bar.c_str(), static_cast<int>(frac * 100), status.c_str());
  std::fflush(stdout);
  drawn_ = true;
}

void ConsoleSink::record(const nlohmann::json& rec) {
  if (!bar_ || rec.value("step", int64_t{0}) == total_steps_) line(format_record(rec, total_steps_));
}

void ConsoleSink::line(const std::string& text) {
  if (quiet_) return;
  if (drawn_) {
    std::printf("\r\x1b[K");
    drawn_ = false;
  }
  core::log_info(text);
}

void ConsoleSink::finish() {
  if (drawn_) {
    std::printf("\n");
    std::fflush(stdout);
    drawn_ = false;
  }
}

void Sinks::record(const nlohmann::json& rec) {
  for (auto& s : sinks_) s->record(rec);
}

void Sinks::text(const std::string& tag, const std::string& body, int64_t step) {
  for (auto& s : sinks_) s->text(tag, body, step);
}

void Sinks::flush() {
  for (auto& s : sinks_) s->flush();
}

namespace {

// Keeps the records of steps <= `step` (a resumed run recomputes the later ones; a torn last line of a killed
// run is dropped too), rewriting the file atomically.
void truncate_metrics(const std::string& path, int64_t step) {
  std::ifstream in(path);
  if (!in) return;
  std::string kept, line;
  size_t dropped = 0;
  while (std::getline(in, line)) {
    const auto rec = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    // A record without an integer step (a torn or hand-edited line) is dropped like a torn last line.
    const bool has_step = rec.is_object() && rec.contains("step") && rec["step"].is_number_integer();
    if (has_step && rec["step"].get<int64_t>() <= step)
      kept += line + "\n";
    else
      ++dropped;
  }
  in.close();
  if (dropped == 0) return;
  io::atomic_write(path, kept);
  core::log_info("removed " + std::to_string(dropped) + " record(s) after step " + std::to_string(step) +
                 " from " + path + " (the resumed run writes them again)");
}

// config.yaml holds the run's config: written on a fresh start; on resume rewritten only when it differs,
// with a warning naming the changed keys (a refused change never gets here: Checkpointer::restore throws
// first).
void write_run_config(const std::string& path, const std::string& yaml, int64_t step) {
  std::ifstream in(path);
  if (step > 0 && in) {
    const std::string old{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    if (old == yaml) return;
    core::log_warn("rewriting " + path +
                   " with the resumed run's config: " + describe(config_differences(old, yaml, path)));
  }
  io::atomic_write(path, yaml);
}

}  // namespace

Sinks open_run_sinks(RunContext& ctx, const config::Config& cfg, const LogSettings& log,
                     const std::string& prefix, int64_t step) {
  Sinks sinks;
  if (!ctx.rank0()) return sinks;
  ctx.lock_run_dir();
  const std::filesystem::path dir(ctx.run.dir);
  write_run_config((dir / "config.yaml").string(), cfg.to_yaml(), step);
  truncate_metrics((dir / "metrics.jsonl").string(), step);
  sinks.add(std::make_unique<JsonlSink>((dir / "metrics.jsonl").string()));
  if (log.tensorboard) sinks.add(std::make_unique<TensorBoardSink>(ctx.run.dir, prefix));
  sinks.text("config", "```yaml\n" + cfg.to_yaml() + "```\n", step);  // TensorBoard renders Markdown
  return sinks;
}

std::string format_record(const nlohmann::json& rec, int64_t total_steps) {
  std::string out;
  char buf[96];
  auto add = [&](const char* key, const char* fmt, double scale = 1.0) {
    if (!rec.contains(key) || !rec[key].is_number()) return;
    std::snprintf(buf, sizeof(buf), fmt, rec[key].get<double>() * scale);
    out += (out.empty() ? "" : " ") + std::string(buf);
  };
  if (rec.contains("epoch")) out = "epoch " + std::to_string(rec["epoch"].get<int64_t>());
  if (rec.contains("step")) {
    out += (out.empty() ? "" : " ") + std::string("step ") + std::to_string(rec["step"].get<int64_t>()) +
           "/" + std::to_string(total_steps);
  }
  add("loss", "loss %.4f");
  add("lr", "lr %.3e");
  add("grad_norm", "grad %.3f");
  add("images_per_sec", "%.1f img/s");
  add("data_wait_share", "data-wait %.0f%%", 100.0);
  for (const auto& [key, value] : rec.items()) {
    static const char* kShown[] = {
        "epoch",           "step",          "loss",    "lr",  "grad_norm", "images_per_sec",
        "data_wait_share", "skipped_total", "eta_sec", "time"};
    const std::string& name = key;  // clang 14 cannot capture a structured binding
    if (std::find_if(std::begin(kShown), std::end(kShown), [&name](const char* k) { return name == k; }) !=
            std::end(kShown) ||
        !value.is_number())
      continue;
    std::snprintf(buf, sizeof(buf), "%s %.4g", key.c_str(), value.get<double>());
    out += " " + std::string(buf);
  }
  if (rec.contains("eta_sec")) out += " ETA " + core::format_duration(rec["eta_sec"].get<double>());
  return out;
}

}  // namespace semaim::engine
