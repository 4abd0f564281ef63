// Console logging through spdlog, kept in its own translation unit (spdlog's fmt and torch's fmt differ).
#pragma once
#include <string>

namespace semaim::core {

enum class LogLevel { kDebug, kInfo, kWarn, kError };

void log(LogLevel level, const std::string& msg);
inline void log_info(const std::string& msg) { log(LogLevel::kInfo, msg); }
inline void log_warn(const std::string& msg) { log(LogLevel::kWarn, msg); }
inline void log_error(const std::string& msg) { log(LogLevel::kError, msg); }
void set_log_level(LogLevel level);
// Mutes console logging entirely (non-zero ranks, tests).
void set_log_quiet(bool quiet);

}  // namespace semaim::core
