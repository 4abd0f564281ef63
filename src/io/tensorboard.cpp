// TensorBoard event files: TFRecord framing with CRC-32C (TensorFlow's record_writer.cc, crc32c.h) around the
// Event protos of tensorboard_event.cc, in files named as TensorFlow's EventFileWriter names them.
#include "semaim/io/tensorboard.h"

#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <system_error>
#include <utility>

#include "semaim/core/errors.h"
#include "semaim/core/log.h"

namespace semaim::io {
namespace {

constexpr uint32_t kCrc32cPolynomial = 0x82F63B78u;  // Castagnoli, bit-reversed
constexpr uint32_t kCrcMaskDelta = 0xa282ead8u;
constexpr const char* kFileVersion = "brain.Event:2";

constexpr std::array<uint32_t, 256> make_crc32c_table() {
  std::array<uint32_t, 256> table{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1u) ? (c >> 1) ^ kCrc32cPolynomial : c >> 1;
    table[i] = c;
  }
  return table;
}
constexpr std::array<uint32_t, 256> kCrc32cTable = make_crc32c_table();

void put_le(std::string& out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xffu));
}

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string errno_text(int err) { return std::error_code(err, std::generic_category()).message(); }

std::string host_name() {
  std::array<char, 256> buf{};
  if (::gethostname(buf.data(), buf.size() - 1) != 0) return "localhost";
  return std::string(buf.data());
}

// Creates the first events.out.tfevents.<seconds>.<host>.<pid>.<n> in dir that does not exist yet; returns
// its descriptor and sets path.
int create_event_file(const std::string& dir, std::string& path) {
  namespace fs = std::filesystem;
  if (!dir.empty()) {
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) throw RuntimeFailure("cannot create TensorBoard directory '" + dir + "': " + ec.message());
  }
  const std::string stem = "events.out.tfevents." + std::to_string(static_cast<int64_t>(std::time(nullptr))) +
                           "." + host_name() + "." + std::to_string(::getpid()) + ".";
  for (int n = 0;; ++n) {
    path = (fs::path(dir) / (stem + std::to_string(n))).string();
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0666);
    if (fd >= 0) return fd;
    if (errno != EEXIST || n >= 1000) {
      throw RuntimeFailure("cannot create TensorBoard event file '" + path + "': " + errno_text(errno));
    }
  }
}

}  // namespace

uint32_t crc32c(std::string_view data) {
  uint32_t crc = 0xffffffffu;
  for (unsigned char b : data) crc = kCrc32cTable[(crc ^ b) & 0xffu] ^ (crc >> 8);
  return crc ^ 0xffffffffu;
}

uint32_t masked_crc32c(std::string_view data) {
  const uint32_t crc = crc32c(data);
  return ((crc >> 15) | (crc << 17)) + kCrcMaskDelta;
}

std::string tfrecord_frame(std::string_view data) {
  std::string out;
  out.reserve(data.size() + 16);
  put_le(out, data.size(), 8);
  put_le(out, masked_crc32c(std::string_view(out.data(), 8)), 4);
  out.append(data);
  put_le(out, masked_crc32c(data), 4);
  return out;
}

TensorBoardWriter::TensorBoardWriter(const std::string& dir) {
  fd_ = create_event_file(dir, path_);
  append(tfevents::file_version_event(now_seconds(), kFileVersion));
  flush();
}

TensorBoardWriter::~TensorBoardWriter() {
  try {
    flush();
  } catch (const std::exception& e) {
    core::log_warn(e.what());
  }
  if (fd_ >= 0) ::close(fd_);
}

void TensorBoardWriter::add_scalar(const std::string& tag, float value, int64_t step,
                                   std::optional<double> wall_time) {
  append(tfevents::scalar_event(wall_time.value_or(now_seconds()), step, tag, value));
}

void TensorBoardWriter::add_text(const std::string& tag, const std::string& text, int64_t step,
                                 std::optional<double> wall_time) {
  append(tfevents::text_event(wall_time.value_or(now_seconds()), step, tag, text));
}

namespace image_summary {
// Protocol-buffer wire format by hand (varints, length-delimited fields), for the one message the generated
// subset lacks: Summary.Value.image (field 4) = Summary.Image {height 1, width 2, colorspace 3,
// encoded_image_string 4}, as TensorFlow's summary.proto numbers them.
void varint(std::string& out, uint64_t v) {
  for (; v >= 0x80u; v >>= 7) out.push_back(static_cast<char>((v & 0x7fu) | 0x80u));
  out.push_back(static_cast<char>(v));
}
void field_varint(std::string& out, int field, uint64_t v) {
  varint(out, static_cast<uint64_t>(field) << 3);
  varint(out, v);
}
void field_bytes(std::string& out, int field, const std::string& bytes) {
  varint(out, (static_cast<uint64_t>(field) << 3) | 2u);
  varint(out, bytes.size());
  out += bytes;
}
uint32_t be32(const std::string& s, size_t at) {
  uint32_t v = 0;
  for (size_t i = 0; i < 4; ++i) v = (v << 8) | static_cast<unsigned char>(s[at + i]);
  return v;
}
std::string event(double wall_time, int64_t step, const std::string& tag, const std::string& png) {
  static const std::string kSignature("\x89PNG\r\n\x1a\n", 8);
  if (png.size() < 33 || png.compare(0, 8, kSignature) != 0 || png.compare(12, 4, "IHDR") != 0)
    throw InputError(tag, "add_image needs PNG bytes (no PNG signature and IHDR chunk)");
  // PNG colour type -> Summary.Image colorspace (1 grey, 2 grey + alpha, 3 RGB, 4 RGBA); a palette is RGB.
  const int type = static_cast<unsigned char>(png[25]);
  const uint64_t colorspace = type == 0 ? 1 : type == 4 ? 2 : type == 6 ? 4 : 3;
  std::string image, value, summary, ev;
  field_varint(image, 1, be32(png, 20));
  field_varint(image, 2, be32(png, 16));
  field_varint(image, 3, colorspace);
  field_bytes(image, 4, png);
  field_bytes(value, 1, tag);
  field_bytes(value, 4, image);
  field_bytes(summary, 1, value);
  uint64_t bits = 0;
  std::memcpy(&bits, &wall_time, sizeof(bits));
  varint(ev, (1u << 3) | 1u);  // wall_time: fixed64 double
  put_le(ev, bits, 8);
  field_varint(ev, 2, static_cast<uint64_t>(step));
  field_bytes(ev, 5, summary);
  return ev;
}
}  // namespace image_summary

void TensorBoardWriter::add_image(const std::string& tag, const std::string& png, int64_t step,
                                  std::optional<double> wall_time) {
  append(image_summary::event(wall_time.value_or(now_seconds()), step, tag, png));
}

void TensorBoardWriter::append(const std::string& event) { pending_ += tfrecord_frame(event); }

void TensorBoardWriter::flush() {
  // Dropped before writing: after a failed write the file ends in a partial record that readers stop at,
  // and appending the same records again after it would not make them readable.
  const std::string bytes = std::move(pending_);
  pending_.clear();
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t w = ::write(fd_, bytes.data() + done, bytes.size() - done);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0)
      throw RuntimeFailure("cannot write TensorBoard event file '" + path_ + "': " + errno_text(errno));
    done += static_cast<size_t>(w);
  }
}

}  // namespace semaim::io
