// Stop signals of a training run (SLURM's `--signal=USR1@120`, Kubernetes' and SLURM's SIGTERM on preemption,
// Ctrl-C): the first one asks the Trainer to finish its step, save and exit; a second one exits at once.
#pragma once

namespace semaim::engine {

// While an instance lives, SIGTERM, SIGINT, SIGUSR1 and SIGHUP are caught by an async-signal-safe handler
// that records the first signal; a second signal ends the process at once with exit code 128 + signal.
// The previous handlers come back on destruction. One instance at a time (the Trainer's run).
class StopSignals {
 public:
  StopSignals();
  ~StopSignals();
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;

  // The first stop signal received while an instance lives, or 0.
  static int pending();
};

// "SIGTERM", "SIGINT", "SIGUSR1", "SIGHUP" ("a stop signal" for any other).
const char* signal_name(int signal);

}  // namespace semaim::engine
