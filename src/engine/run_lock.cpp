// The run directory's lock: flock(2) on <run dir>/.lock with the holder's pid written into it; the holder removes
// what killed writers of metrics.jsonl and config.yaml left behind.
#include "semaim/engine/run_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <string>
#include <system_error>

#include "semaim/core/errors.h"
#include "semaim/core/log.h"
#include "semaim/io/atomic_file.h"

namespace semaim::engine {

namespace {

// Temporary files of atomic writes (metrics.jsonl's rewrite on resume, config.yaml) directly in the run
// directory: a writer killed mid-write leaves one behind, and only the lock holder may write there.
void remove_stale_temp_files(const std::string& run_dir) {
  std::error_code ec;
  int removed = 0;
  for (const auto& e : std::filesystem::directory_iterator(run_dir, ec))
    if (e.is_regular_file(ec) && io::is_atomic_temp_name(e.path().filename().string()) &&
        std::filesystem::remove(e.path(), ec))
      ++removed;
  if (removed) core::log_warn(run_dir + ": removed " + std::to_string(removed) + " temporary file(s) of killed writes");
}

}  // namespace

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
  remove_stale_temp_files(run_dir);
}

RunLock::~RunLock() {
  if (fd_ >= 0) ::close(fd_);
}

}  // namespace semaim::engine
