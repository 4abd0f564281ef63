// metrics.jsonl writer and console progress output.
#include "semaim/train/metrics.h"

#include <unistd.h>

#include <cmath>
#include <iostream>

#include "semaim/config/errors.h"
#include "semaim/io/log.h"

namespace semaim::train {

MetricsFile::MetricsFile(const std::string& path) : path_(path), out_(path, std::ios::app) {
  if (!out_) throw RuntimeFailure("cannot open " + path + " for writing");
}

void MetricsFile::write(const nlohmann::json& record) {
  out_ << record.dump() << "\n";
  out_.flush();
  if (!out_) throw RuntimeFailure("write to " + path_ + " failed");
}

ConsoleProgress::ConsoleProgress(const std::string& mode, bool quiet) : quiet_(quiet) {
  bar_ = !quiet && (mode == "on" || (mode == "auto" && ::isatty(STDOUT_FILENO)));
}

void ConsoleProgress::update(int64_t step, int64_t total_steps, const std::string& status) {
  if (!bar_) return;
  constexpr int kWidth = 30;
  const double frac = total_steps > 0 ? std::min(1.0, static_cast<double>(step) / total_steps) : 0.0;
  const int filled = static_cast<int>(frac * kWidth);
  std::string bar(filled, '#');
  bar += std::string(kWidth - filled, '.');
  std::printf("\r[%s] %3d%% %s\x1b[K", bar.c_str(), static_cast<int>(frac * 100), status.c_str());
  std::fflush(stdout);
  drawn_ = true;
}

void ConsoleProgress::line(const std::string& text) {
  if (quiet_) return;
  if (drawn_) {
    std::printf("\r\x1b[K");
    drawn_ = false;
  }
  io::log_info(text);
}

void ConsoleProgress::finish() {
  if (drawn_) {
    std::printf("\n");
    std::fflush(stdout);
    drawn_ = false;
  }
}

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  auto s = static_cast<int64_t>(seconds + 0.5);
  char buf[32];
  if (s >= 3600)
    std::snprintf(buf, sizeof(buf), "%lld:%02lld:%02lld", (long long)(s / 3600), (long long)(s / 60 % 60),
                  (long long)(s % 60));
  else
    std::snprintf(buf, sizeof(buf), "%lld:%02lld", (long long)(s / 60), (long long)(s % 60));
  return buf;
}

}  // namespace semaim::train
