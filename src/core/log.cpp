// Console logging through spdlog (compiled without torch headers: see CMakeLists.txt).
#include "semaim/core/log.h"

#include <atomic>

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

namespace semaim::core {
namespace {

std::atomic<bool> g_quiet{false};

spdlog::logger& logger() {
  // Plain stdout sink: lines interleave correctly with the progress output of the engine.
  static std::shared_ptr<spdlog::logger> l = [] {
    auto lg = spdlog::stdout_logger_mt("semaim");
    lg->set_pattern("[%Y-%m-%d %H:%M:%S] [%^%l%$] %v");
    lg->flush_on(spdlog::level::info);
    return lg;
  }();
  return *l;
}

}  // namespace

void log(LogLevel level, const std::string& msg) {
  if (g_quiet.load(std::memory_order_relaxed)) return;
  switch (level) {
    case LogLevel::kDebug:
      logger().debug(msg);
      break;
    case LogLevel::kInfo:
      logger().info(msg);
      break;
    case LogLevel::kWarn:
      logger().warn(msg);
      break;
    case LogLevel::kError:
      logger().error(msg);
      break;
  }
}

void set_log_level(LogLevel level) {
  static constexpr spdlog::level::level_enum kMap[] = {spdlog::level::debug, spdlog::level::info,
                                                       spdlog::level::warn, spdlog::level::err};
  logger().set_level(kMap[static_cast<int>(level)]);
}

void set_log_quiet(bool quiet) { g_quiet.store(quiet, std::memory_order_relaxed); }

}  // namespace semaim::core
