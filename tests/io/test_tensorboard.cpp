// TensorBoard event files (include/semaim/io/tensorboard.h): CRC-32C and TFRecord framing against known
// answers (RFC 3720's CRC vectors; the tensorboard package's RecordWriter), and files read back by the
// tensorboard package's EventAccumulator (tests/io/read_tb_events.py) through the venv python.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "run_command.h"
#include "semaim/core/errors.h"
#include "semaim/io/tensorboard.h"
#include "semaim_paths.h"
#include "temp_dir.h"

namespace fs = std::filesystem;
using semaim::io::TensorBoardWriter;

namespace {

std::string read_all(const fs::path& p) {
  std::ifstream is(p, std::ios::binary);
  std::stringstream ss;
  ss << is.rdbuf();
  return ss.str();
}

uint64_t le(const std::string& s, size_t at, int bytes) {
  uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(s[at + i]);
  return v;
}

std::vector<fs::path> event_files(const fs::path& dir) {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

TEST(Crc32c, KnownAnswers) {
  using semaim::io::crc32c;
  EXPECT_EQ(crc32c(""), 0u);
  EXPECT_EQ(crc32c("123456789"), 0xE3069283u);
  EXPECT_EQ(crc32c(std::string(32, '\0')), 0x8A9136AAu);
  EXPECT_EQ(crc32c(std::string(32, '\xff')), 0x62A8AB43u);
  std::string ascending;
  for (int i = 0; i < 32; ++i) ascending.push_back(static_cast<char>(i));
  EXPECT_EQ(crc32c(ascending), 0x46DD794Eu);
}

TEST(Crc32c, MaskedValuesEqualTensorFlows) {
  EXPECT_EQ(semaim::io::masked_crc32c("123456789"), 0xC78AB0E5u);
  EXPECT_EQ(semaim::io::masked_crc32c(""), 0xA282EAD8u);
}

TEST(TfRecord, FrameIsLengthCrcDataCrc) {
  // The bytes tensorboard.summary.writer.record_writer.RecordWriter writes for b"hello".
  const std::string want(
      "\x05\0\0\0\0\0\0\0\xea\xb2\x04\x3e"
      "hello"
      "\xbb\x1f\x1c\x19",
      21);
  EXPECT_EQ(semaim::io::tfrecord_frame("hello"), want);
  const std::string empty = semaim::io::tfrecord_frame("");
  ASSERT_EQ(empty.size(), 16u);
  EXPECT_EQ(le(empty, 0, 8), 0u);
  EXPECT_EQ(le(empty, 12, 4), semaim::io::masked_crc32c(""));
}

class TensorBoardFiles : public ::testing::Test {
 protected:
  // Runs tests/io/read_tb_events.py on path: its exit code in rc_ (77: no tensorboard package, which the
  // tests skip on), its stderr in log_, its JSON as the result (null unless rc_ is 0). The JSON (stdout)
  // goes to a file of its own, outside dir_, so that warnings on stderr cannot corrupt it.
  nlohmann::json read_back(const fs::path& path) {
    const std::string out = tmp_.file("events.json");
    const auto r =
        semaim::testing::run_command("('" + std::string(SEMAIM_PYTHON) + "' '" + SEMAIM_SOURCE_DIR +
                                     "/tests/io/read_tb_events.py' '" + path.string() + "' > '" + out + "')");
    rc_ = r.exit_code;
    log_ = r.output;
    const std::string text = read_all(out);
    fs::remove(out);
    return rc_ == 0 ? nlohmann::json::parse(text) : nlohmann::json();
  }

  semaim::test::TempDir tmp_;
  const fs::path dir_ = tmp_.path() / "run";  // created by the writers under test
  int rc_ = -1;
  std::string log_;
};

TEST_F(TensorBoardFiles, Writer_NamesFileAsTensorFlowAndStartsWithFileVersion) {
  const int64_t before = std::time(nullptr);
  TensorBoardWriter w((dir_ / "tb").string());  // the directory is created
  const int64_t after = std::time(nullptr);
  const fs::path path = w.path();
  ASSERT_EQ(event_files(dir_ / "tb"), std::vector<fs::path>{path});
  char host[256] = {};
  ASSERT_EQ(::gethostname(host, sizeof(host) - 1), 0);
  std::smatch m;
  const std::string name = path.filename().string();
  ASSERT_TRUE(std::regex_match(name, m, std::regex(R"(events\.out\.tfevents\.(\d+)\.(.+)\.(\d+)\.0)")))
      << name;
  EXPECT_GE(std::stoll(m[1]), before);
  EXPECT_LE(std::stoll(m[1]), after);
  EXPECT_EQ(m[2].str(), host);
  EXPECT_EQ(std::stoll(m[3]), ::getpid());

  // Flushed at once: one record whose length and checksums hold, an Event carrying "brain.Event:2".
  const std::string bytes = read_all(path);
  ASSERT_GE(bytes.size(), 16u);
  const uint64_t n = le(bytes, 0, 8);
  ASSERT_EQ(bytes.size(), 16 + n);
  EXPECT_EQ(le(bytes, 8, 4), semaim::io::masked_crc32c(bytes.substr(0, 8)));
  const std::string data = bytes.substr(12, n);
  EXPECT_EQ(le(bytes, 12 + n, 4), semaim::io::masked_crc32c(data));
  EXPECT_NE(data.find("brain.Event:2"), std::string::npos);
}

TEST_F(TensorBoardFiles, Writer_BuffersRecordsUntilFlushOrDestruction) {
  std::string path;
  size_t start = 0;
  {
    TensorBoardWriter w(dir_.string());
    path = w.path();
    start = fs::file_size(path);
    w.add_scalar("train/loss", 0.25f, 7, 123.5);
    EXPECT_EQ(fs::file_size(path), start);
    w.flush();
    const std::string want =
        semaim::io::tfrecord_frame(semaim::io::tfevents::scalar_event(123.5, 7, "train/loss", 0.25f));
    EXPECT_EQ(read_all(path).substr(start), want);
    start += want.size();
    w.add_text("config", "a: 1", 0, 124.0);
  }
  EXPECT_EQ(read_all(path).substr(start),
            semaim::io::tfrecord_frame(semaim::io::tfevents::text_event(124.0, 0, "config", "a: 1")));
}

TEST_F(TensorBoardFiles, Writer_SecondWriterInSameDirectoryStartsItsOwnFile) {
  TensorBoardWriter first(dir_.string());
  TensorBoardWriter second(dir_.string());  // as a resumed run does
  EXPECT_NE(first.path(), second.path());
  EXPECT_EQ(event_files(dir_).size(), 2u);
}

TEST_F(TensorBoardFiles, Writer_UncreatableDirectory_ThrowsRuntimeFailureNamingIt) {
  fs::create_directories(dir_);
  std::ofstream(dir_ / "blocker") << "a file, not a directory";
  const std::string bad = (dir_ / "blocker" / "tb").string();
  try {
    TensorBoardWriter w(bad);
    FAIL() << "no exception";
  } catch (const semaim::RuntimeFailure& e) {
    EXPECT_NE(std::string(e.what()).find(bad), std::string::npos) << e.what();
  }
}

struct Point {
  int64_t step;
  double wall_time;
  float value;
};

// A JSON value of read_tb_events.py as a float: a number, or "nan" / "inf" / "-inf".
float as_float(const nlohmann::json& v) {
  if (v.is_string()) {
    const std::string s = v.get<std::string>();
    if (s == "nan") return std::numeric_limits<float>::quiet_NaN();
    return s == "inf" ? std::numeric_limits<float>::infinity() : -std::numeric_limits<float>::infinity();
  }
  return static_cast<float>(v.get<double>());
}

void expect_points(const nlohmann::json& got, const std::vector<Point>& want, const std::string& tag) {
  ASSERT_EQ(got.size(), want.size()) << tag;
  for (size_t i = 0; i < want.size(); ++i) {
    const float v = as_float(got[i]["value"]);
    EXPECT_EQ(got[i]["step"].get<int64_t>(), want[i].step) << tag << " #" << i;
    EXPECT_EQ(got[i]["wall_time"].get<double>(), want[i].wall_time) << tag << " #" << i;
    if (std::isnan(want[i].value)) {
      EXPECT_TRUE(std::isnan(v)) << tag << " #" << i;
    } else {
      EXPECT_EQ(v, want[i].value) << tag << " #" << i;
    }
  }
}

TEST_F(TensorBoardFiles, TensorBoardReadsBackEveryScalarAndTextAcrossResumedFiles) {
  if (!fs::exists(SEMAIM_PYTHON)) GTEST_SKIP() << "python binary " << SEMAIM_PYTHON << " does not exist";
  const float inf = std::numeric_limits<float>::infinity();
  std::map<std::string, std::vector<Point>> want{
      {"train/loss",
       {{0, 1.7e9, 0.0f},
        {10, 1.7e9 + 0.125, 1.0f / 3.0f},
        {20, 1.7e9 + 1e-6, -123.456f},
        {30, 1.7e9 + 2.5, 1e-40f},
        {1ll << 40, 1.8e9, std::numeric_limits<float>::max()}}},
      {"train/lr",
       {{0, 1.7e9, 1.5e-4f},
        {10, 1.7e9 + 0.125, 2.9999e-4f},
        {20, 1.7e9 + 1e-6, 0.0f},
        {30, 1.7e9 + 2.5, 1e-7f},
        {1ll << 40, 1.8e9, 6.25e-5f}}},
      {"train/nonfinite",
       {{0, 1.7e9, std::nanf("")},
        {10, 1.7e9, inf},
        {20, 1.7e9, -inf},
        {30, 1.7e9, 7.0f},
        {1ll << 40, 1.8e9, -0.5f}}},
  };
  const std::string config = "model:\n  name: aim_base_patch16  # \"quoted\", caf\xc3\xa9 \\ tab\t\n";
  // Steps 0-20 from a first writer, the rest from a second one in the same directory (a resumed run).
  {
    TensorBoardWriter w(dir_.string());
    w.add_text("config", config, 0, 1.7e9);
    for (int i = 0; i < 3; ++i) {
      for (const auto& [tag, points] : want)
        w.add_scalar(tag, points[i].value, points[i].step, points[i].wall_time);
      w.flush();
    }
  }
  {
    TensorBoardWriter w(dir_.string());
    for (int i = 3; i < 5; ++i) {
      for (const auto& [tag, points] : want)
        w.add_scalar(tag, points[i].value, points[i].step, points[i].wall_time);
      w.flush();
    }
  }
  const nlohmann::json got = read_back(dir_);
  if (rc_ == 77) GTEST_SKIP() << "the venv has no tensorboard package (tools/setup.sh installs it): " << log_;
  ASSERT_EQ(rc_, 0) << log_;
  EXPECT_EQ(got["file_version"].get<double>(), 2.0);
  ASSERT_EQ(got["scalars"].size(), want.size()) << got["scalars"].dump();
  for (const auto& [tag, points] : want) {
    ASSERT_TRUE(got["scalars"].contains(tag)) << tag;
    expect_points(got["scalars"][tag], points, tag);
  }
  ASSERT_EQ(got["texts"].size(), 1u) << got["texts"].dump();
  ASSERT_EQ(got["texts"]["config"].size(), 1u);
  EXPECT_EQ(got["texts"]["config"][0]["text"].get<std::string>(), config);
  EXPECT_EQ(got["texts"]["config"][0]["step"].get<int64_t>(), 0);
}

// TensorBoard checks each record's CRC: a flipped byte loses that record, so the round trip above also
// holds the checksums to TensorFlow's.
TEST_F(TensorBoardFiles, TensorBoardDropsARecordWithAFlippedByte) {
  if (!fs::exists(SEMAIM_PYTHON)) GTEST_SKIP() << "python binary " << SEMAIM_PYTHON << " does not exist";
  std::string path;
  {
    TensorBoardWriter w(dir_.string());
    path = w.path();
    for (int step = 1; step <= 3; ++step) w.add_scalar("loss", static_cast<float>(step), step, 1.7e9);
  }
  std::string bytes = read_all(path);
  bytes[bytes.size() - 6] ^= 0x01;  // inside the last record's data
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
  const nlohmann::json got = read_back(path);
  if (rc_ == 77) GTEST_SKIP() << "the venv has no tensorboard package (tools/setup.sh installs it): " << log_;
  ASSERT_EQ(rc_, 0) << log_;
  expect_points(got["scalars"]["loss"], {{1, 1.7e9, 1.0f}, {2, 1.7e9, 2.0f}}, "loss");
}

}  // namespace
