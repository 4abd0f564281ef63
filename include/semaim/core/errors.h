// Typed errors: InputError (bad config, data file, checkpoint; CLI exit 2), RuntimeFailure (exit 1) and
// Preempted (a stop signal, the run saved; exit 75).
#pragma once
#include <stdexcept>
#include <string>

namespace semaim {

// Bad user input: a malformed config, a truncated dataset file, a wrong checkpoint. The message names
// the file (or key) and the fault.
class InputError : public std::runtime_error {
 public:
  explicit InputError(const std::string& msg) : std::runtime_error(msg) {}
  InputError(const std::string& where, const std::string& fault) : std::runtime_error(where + ": " + fault) {}
};

// Something went wrong while running with valid input (diverged training, I/O failure while writing).
class RuntimeFailure : public std::runtime_error {
 public:
  explicit RuntimeFailure(const std::string& msg) : std::runtime_error(msg) {}
};

// A training run stopped by a signal (SIGTERM, SIGINT, SIGUSR1, SIGHUP) after saving a checkpoint of the step
// it finished; the CLI exits with 75 (EX_TEMPFAIL: try again, i.e. requeue and --resume auto).
class Preempted : public std::runtime_error {
 public:
  Preempted(int signal, const std::string& msg) : std::runtime_error(msg), signal_(signal) {}
  int signal() const { return signal_; }

 private:
  int signal_;
};

}  // namespace semaim
