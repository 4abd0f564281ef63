// The run directory's lock: flock(2) on <run dir>/.lock with the holder's pid written into it.
#include "semaim/engine/run_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <string>
#include <system_error>

#include "semaim/core/errors.h"

namespace semaim::engine {

RunLock::RunLock(const std::string& run_dir) : dir_(run_dir) {
  const std::string path = (std::filesystem::path(run_dir) / ".lock").string();
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0)
    throw RuntimeFailure("cannot open the run lock " + path + ": " +
                         std::error_code(errno, std::generic_category()).message());
  // A lock belongs to the open file description, so a second RunLock in this process conflicts too.
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    char buf[32] = {0};
    const ssize_t n = ::pread(fd_, buf, sizeof(buf) - 1, 0);
    ::close(fd_);
    fd_ = -1;
    if (err != EWOULDBLOCK)
      throw RuntimeFailure("cannot lock " + path + ": " +
                           std::error_code(err, std::generic_category()).message());
    std::string holder(buf, n > 0 ? static_cast<size_t>(n) : 0);
    while (!holder.empty() && (holder.back() == '\n' || holder.back() == ' ')) holder.pop_back();
    throw InputError(run_dir, "another semaim process (pid " + (holder.empty() ? "unknown" : holder) +
                                  ") is training in this run directory; wait for it or stop it, or choose "
                                  "another run.name");
  }
  const std::string pid = std::to_string(::getpid()) + "\n";
  // The pid is for the message of a second process only; failing to write it does not matter.
  if (::ftruncate(fd_, 0) == 0) {
    const ssize_t ignored = ::pwrite(fd_, pid.data(), pid.size(), 0);
    (void)ignored;
  }
}

RunLock::~RunLock() {
  if (fd_ >= 0) ::close(fd_);
}

}  // namespace semaim::engine
