// TensorBoard event files: TensorFlow's Event protos (the subset in src/io/proto/tensorboard_event.proto) in
// TFRecord framing, named and laid out as TensorFlow's EventFileWriter / torch's SummaryWriter write them.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace semaim::io {

// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), as TFRecord checksums its records.
uint32_t crc32c(std::string_view data);

// TFRecord's masked checksum: ((crc >> 15) | (crc << 17)) + 0xa282ead8 of crc32c(data).
uint32_t masked_crc32c(std::string_view data);

// One TFRecord: uint64 length (little endian), masked CRC of those 8 bytes, the data, masked CRC of the data.
std::string tfrecord_frame(std::string_view data);

// Serialized Event protos (built with libprotobuf in a library compiled apart from torch's headers, whose
// bundled protobuf headers are another version).
namespace tfevents {
// Event{wall_time, file_version}: the first record of every event file ("brain.Event:2").
std::string file_version_event(double wall_time, const std::string& version);
// Event{wall_time, step, summary{value{tag, simple_value}}}: one point of a scalar chart.
std::string scalar_event(double wall_time, int64_t step, const std::string& tag, float value);
// Event{wall_time, step, summary{value{tag, metadata{plugin "text"}, tensor DT_STRING shape [1]}}}: what
// TensorBoard's text plugin shows (rendered as Markdown).
std::string text_event(double wall_time, int64_t step, const std::string& tag, const std::string& text);
}  // namespace tfevents

// Writes one event file in `dir`: events.out.tfevents.<unix seconds>.<hostname>.<pid>.<n>, n the first
// number whose name is not taken yet, so a resumed run (or a second writer) starts a new file beside the old
// ones and TensorBoard merges them. Records are buffered until flush(); the sink flushes once per logged
// step, so a killed run keeps every step it flushed. Failures to create or write the file -> RuntimeFailure
// naming the file. Not thread-safe.
class TensorBoardWriter {
 public:
  // Creates `dir` if missing and writes the file_version record.
  explicit TensorBoardWriter(const std::string& dir);
  ~TensorBoardWriter();  // flushes what is buffered; a failure there is logged, not thrown
  TensorBoardWriter(const TensorBoardWriter&) = delete;
  TensorBoardWriter& operator=(const TensorBoardWriter&) = delete;

  // wall_time: seconds since the Unix epoch; now when not given.
  void add_scalar(const std::string& tag, float value, int64_t step, std::optional<double> wall_time = {});
  void add_text(const std::string& tag, const std::string& text, int64_t step,
                std::optional<double> wall_time = {});
  // A PNG as an image of TensorBoard's Images tab: Event{wall_time, step, summary{value{tag, image{height,
  // width, colorspace, encoded_image_string}}}} (Summary.Image, what torch's SummaryWriter.add_image writes),
  // the size and colour space read from the PNG's IHDR chunk. InputError naming `tag` for bytes that are not a
  // PNG.
  void add_image(const std::string& tag, const std::string& png, int64_t step,
                 std::optional<double> wall_time = {});
  // Writes the buffered records to the file (one write call per flush).
  void flush();

  const std::string& path() const { return path_; }

 private:
  void append(const std::string& event);

  std::string path_;
  int fd_ = -1;
  std::string pending_;  // framed records not yet written
};

}  // namespace semaim::io
