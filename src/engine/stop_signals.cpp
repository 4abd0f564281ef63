// Stop signals: an async-signal-safe handler that records the first signal and exits on the second.
#include "semaim/engine/stop_signals.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>

namespace semaim::engine {
namespace {

constexpr int kSignals[] = {SIGTERM, SIGINT, SIGUSR1, SIGHUP};

// Process-wide by necessity: a signal handler sees only globals. Lock-free, so safe to touch in a handler.
std::atomic<int> g_pending{0};
struct sigaction g_previous[sizeof(kSignals) / sizeof(kSignals[0])];
static_assert(std::atomic<int>::is_always_lock_free);

void on_signal(int sig) {
  int expected = 0;
  if (g_pending.compare_exchange_strong(expected, sig)) return;
  // A second signal: the user (or the scheduler) does not want to wait for the save.
  static const char kMsg[] = "semaim: second stop signal, exiting without saving\n";
  ssize_t ignored = ::write(STDERR_FILENO, kMsg, sizeof(kMsg) - 1);
  (void)ignored;
  ::_exit(128 + sig);
}

}  // namespace

StopSignals::StopSignals() {
  g_pending.store(0);
  struct sigaction sa = {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;  // reads and writes in flight continue; the loop checks the flag between steps
  for (size_t i = 0; i < std::size(kSignals); ++i) ::sigaction(kSignals[i], &sa, &g_previous[i]);
}

StopSignals::~StopSignals() {
  for (size_t i = 0; i < std::size(kSignals); ++i) ::sigaction(kSignals[i], &g_previous[i], nullptr);
  g_pending.store(0);
}

int StopSignals::pending() { return g_pending.load(); }

const char* signal_name(int signal) {
  switch (signal) {
    case SIGTERM:
      return "SIGTERM";
    case SIGINT:
      return "SIGINT";
    case SIGUSR1:
      return "SIGUSR1";
    case SIGHUP:
      return "SIGHUP";
    default:
      return "a stop signal";
  }
}

}  // namespace semaim::engine
