// Wall-clock helpers shared by the engine (throughput, ETA) and the benchmark programs (medians of runs).
#pragma once
#include <chrono>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace semaim::core {

using Clock = std::chrono::steady_clock;

inline double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// "1:02:03" / "4:05"; "?" for a negative or non-finite value.
std::string format_duration(double seconds);

// The middle value (the upper of the middle two for an even count); 0 for none.
double median(std::vector<double> v);

// Milliseconds one call of fn takes.
double time_ms(const std::function<void()>& fn);

// Median milliseconds of fn over `repeats` calls after one warm-up call.
double median_ms(const std::function<void()>& fn, int repeats);

// Medians of a and b over `repeats` rounds after two warm-up rounds, the two called in alternation (a, b, a,
// b, ...) so both see the same state of the machine (caches, fresh pages, other load).
std::pair<double, double> paired_median_ms(const std::function<void()>& a, const std::function<void()>& b,
                                           int repeats);

}  // namespace semaim::core
