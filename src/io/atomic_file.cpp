// Crash-safe file replacement (temp file + fsync + rename + directory fsync), used for checkpoints so an
// interrupted save never leaves a half-written file under the final name (ROADMAP: resume after any crash).
#include "semaim/io/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <filesystem>
#include <random>
#include <streambuf>
#include <system_error>
#include <vector>

#include "semaim/core/errors.h"

namespace semaim::io {
namespace {

std::string errno_text(int err) { return std::error_code(err, std::generic_category()).message(); }

// Writes all of [data, data+n) to fd, retrying on EINTR and short writes; returns 0 or the errno.
int write_all(int fd, const char* data, size_t n) {
  while (n > 0) {
    ssize_t w = ::write(fd, data, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    data += w;
    n -= static_cast<size_t>(w);
  }
  return 0;
}

// An ostream buffer over a POSIX descriptor (std::ofstream cannot fsync). Remembers the first errno so
// the caller can report "No space left on device" instead of a bare badbit.
class FdStreamBuf : public std::streambuf {
 public:
  explicit FdStreamBuf(int fd) : fd_(fd), buf_(kBufferSize) { setp(buf_.data(), buf_.data() + buf_.size()); }
  int error() const { return error_; }

 protected:
  int_type overflow(int_type ch) override {
    if (flush_buffer() != 0) return traits_type::eof();
    if (!traits_type::eq_int_type(ch, traits_type::eof())) {
      *pptr() = traits_type::to_char_type(ch);
      pbump(1);
    }
    return traits_type::not_eof(ch);
  }
  int sync() override { return flush_buffer() == 0 ? 0 : -1; }
  std::streamsize xsputn(const char* s, std::streamsize n) override {
    // Large blocks (tensor data) bypass the buffer: one copy from the tensor to the kernel.
    if (n >= static_cast<std::streamsize>(buf_.size())) {
      if (flush_buffer() != 0) return 0;
      if (int err = write_all(fd_, s, static_cast<size_t>(n)); err != 0) {
        error_ = err;
        return 0;
      }
      return n;
    }
    return std::streambuf::xsputn(s, n);
  }

 private:
  static constexpr size_t kBufferSize = 1 << 20;

  int flush_buffer() {
    if (error_ != 0) return error_;
    size_t n = static_cast<size_t>(pptr() - pbase());
    if (n > 0) error_ = write_all(fd_, pbase(), n);
    setp(buf_.data(), buf_.data() + buf_.size());
    return error_;
  }

  int fd_;
  std::vector<char> buf_;
  int error_ = 0;
};

constexpr const char* kTempInfix = ".tmp.";

// Unique sibling name: pid + process-wide counter + random, so concurrent writers (threads, ranks sharing
// a directory) never collide; O_EXCL guards the rest.
std::string temp_name_for(const std::string& path) {
  static std::atomic<uint64_t> counter{0};
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return path + kTempInfix + std::to_string(::getpid()) + "." + std::to_string(counter.fetch_add(1)) + "." +
         std::to_string(rng() & 0xffffffu);
}

// Closes and removes the temp file unless released (i.e. renamed into place).
class TempFile {
 public:
  explicit TempFile(const std::string& target) {
    for (int attempt = 0; attempt < 16; ++attempt) {
      path_ = temp_name_for(target);
      fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
      if (fd_ >= 0 || errno != EEXIST) break;
    }
    if (fd_ < 0) {
      throw RuntimeFailure("cannot write '" + target + "': cannot create temp file '" + path_ +
                           "': " + errno_text(errno));
    }
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  ~TempFile() {
    if (fd_ >= 0) ::close(fd_);
    if (!released_) ::unlink(path_.c_str());
  }
  int fd() const { return fd_; }
  const std::string& path() const { return path_; }
  // Closes the descriptor; returns 0 or the errno (close can report deferred write errors, e.g. on NFS).
  int close() {
    int rc = ::close(fd_);
    fd_ = -1;
    return rc == 0 ? 0 : errno;
  }
  void release() { released_ = true; }

 private:
  std::string path_;
  int fd_ = -1;
  bool released_ = false;
};

[[noreturn]] void fail(const std::string& path, const std::string& what, int err) {
  throw RuntimeFailure("cannot write '" + path + "': " + what + ": " + errno_text(err));
}

// Makes the rename itself durable. Some filesystems refuse fsync on a directory (EINVAL): nothing to do.
void fsync_parent_dir(const std::string& path) {
  std::filesystem::path parent = std::filesystem::path(path).parent_path();
  if (parent.empty()) parent = ".";
  int dfd = ::open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) fail(path, "cannot open directory '" + parent.string() + "' to sync it", errno);
  int rc = ::fsync(dfd);
  int err = errno;
  ::close(dfd);
  if (rc != 0 && err != EINVAL && err != EROFS)
    fail(path, "fsync of directory '" + parent.string() + "'", err);
}

}  // namespace

void atomic_write_stream(const std::string& path, const std::function<void(std::ostream&)>& writer) {
  if (path.empty()) throw RuntimeFailure("cannot write a file with an empty path");
  TempFile tmp(path);
  {
    FdStreamBuf buf(tmp.fd());
    std::ostream os(&buf);
    writer(os);  // an exception leaves through ~TempFile, which removes the temp file
    os.flush();
    if (buf.error() != 0) fail(path, "write to '" + tmp.path() + "'", buf.error());
    if (!os) throw RuntimeFailure("cannot write '" + path + "': the stream writer left the stream failed");
  }
  if (::fsync(tmp.fd()) != 0) fail(path, "fsync of '" + tmp.path() + "'", errno);
  if (int err = tmp.close(); err != 0) fail(path, "close of '" + tmp.path() + "'", err);
  if (::rename(tmp.path().c_str(), path.c_str()) != 0) fail(path, "rename from '" + tmp.path() + "'", errno);
  tmp.release();
  fsync_parent_dir(path);
}

bool is_atomic_temp_name(const std::string& file_name, const std::string& target_prefix) {
  const size_t at = file_name.rfind(kTempInfix);
  if (at == std::string::npos || at == 0 || file_name.rfind(target_prefix, 0) != 0) return false;
  // The tail is "<pid>.<counter>.<random>": digits and two dots.
  const std::string tail = file_name.substr(at + std::string(kTempInfix).size());
  int dots = 0;
  for (char c : tail) {
    if (c == '.')
      ++dots;
    else if (c < '0' || c > '9')
      return false;
  }
  return dots == 2 && tail.front() != '.' && tail.back() != '.';
}

void atomic_write(const std::string& path, const std::string& bytes) {
  atomic_write_stream(
      path, [&](std::ostream& os) { os.write(bytes.data(), static_cast<std::streamsize>(bytes.size())); });
}

}  // namespace semaim::io
