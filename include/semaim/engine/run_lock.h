// The run directory's lock: one training process writes a run directory at a time (its checkpoints,
// metrics.jsonl and config.yaml would otherwise interleave with another's).
#pragma once
#include <string>

namespace semaim::engine {

// An exclusive flock(2) on `<run dir>/.lock`, holding the owner's pid, released when this object is destroyed
// or the process ends (however it ends: the kernel drops the lock with the descriptor).
class RunLock {
 public:
  // InputError naming run_dir and the holder's pid when another process (or another RunLock of this one)
  // holds it; RuntimeFailure when the lock file cannot be opened. Once held, temporary files of killed atomic
  // writes directly in run_dir (io::is_atomic_temp_name) are removed.
  explicit RunLock(const std::string& run_dir);
  ~RunLock();
  RunLock(const RunLock&) = delete;
  RunLock& operator=(const RunLock&) = delete;
  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
  int fd_ = -1;
};

}  // namespace semaim::engine
