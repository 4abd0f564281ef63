// Durations, medians and paired timings (see the header).
#include "semaim/core/timing.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace semaim::core {

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  auto s = static_cast<long long>(seconds + 0.5);
  char buf[32];
  if (s >= 3600)
    std::snprintf(buf, sizeof(buf), "%lld:%02lld:%02lld", s / 3600, s / 60 % 60, s % 60);
  else
    std::snprintf(buf, sizeof(buf), "%lld:%02lld", s / 60, s % 60);
  return buf;
}

double median(std::vector<double> v) {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

double time_ms(const std::function<void()>& fn) {
  const auto t0 = Clock::now();
  fn();
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

double median_ms(const std::function<void()>& fn, int repeats) {
  fn();
  std::vector<double> ms;
  for (int r = 0; r < repeats; ++r) ms.push_back(time_ms(fn));
  return median(std::move(ms));
}

std::pair<double, double> paired_median_ms(const std::function<void()>& a, const std::function<void()>& b,
                                           int repeats) {
  for (int r = 0; r < 2; ++r) {
    a();
    b();
  }
  std::vector<double> ta, tb;
  for (int r = 0; r < repeats; ++r) {
    ta.push_back(time_ms(a));
    tb.push_back(time_ms(b));
  }
  return {median(std::move(ta)), median(std::move(tb))};
}

}  // namespace semaim::core
