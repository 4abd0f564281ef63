// Tests of semaim::io::atomic_write*: complete replacement on success; on failure the old file survives
// and no temp file is left behind.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "semaim/core/errors.h"
#include "semaim/io/atomic_file.h"
#include "temp_dir.h"

namespace fs = std::filesystem;
using semaim::RuntimeFailure;
using semaim::io::atomic_write;
using semaim::io::atomic_write_stream;

namespace {

class AtomicFile : public ::testing::Test {
 protected:
  std::string read(const std::string& path) const {
    std::ifstream is(path, std::ios::binary);
    std::stringstream ss;
    ss << is.rdbuf();
    return ss.str();
  }
  std::vector<std::string> entries() const {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(tmp_.path())) names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
  }

  semaim::test::TempDir tmp_;
};

TEST_F(AtomicFile, Write_CreatesThenReplacesWithNoLeftovers) {
  const std::string p = tmp_.file("state.bin");
  atomic_write(p, std::string("first\0version", 13));
  EXPECT_EQ(read(p), std::string("first\0version", 13));
  atomic_write(p, "second");
  EXPECT_EQ(read(p), "second");
  atomic_write(p, "");
  EXPECT_EQ(fs::file_size(p), 0u);
  EXPECT_EQ(entries(), std::vector<std::string>{"state.bin"});
}

TEST_F(AtomicFile, Stream_PayloadLargerThanTheBufferArrivesWhole) {
  const std::string p = tmp_.file("big.bin");
  std::string block(3 << 20, '\0');
  for (size_t i = 0; i < block.size(); ++i) block[i] = static_cast<char>(i * 131 % 251);
  atomic_write_stream(p, [&](std::ostream& os) {
    os << "head";
    for (size_t i = 0; i < 1000; ++i) os.put(static_cast<char>(i));      // small writes go through the buffer
    os.write(block.data(), static_cast<std::streamsize>(block.size()));  // large ones bypass it
    os << "tail";
  });
  std::string want = "head";
  for (size_t i = 0; i < 1000; ++i) want.push_back(static_cast<char>(i));
  want += block + "tail";
  EXPECT_EQ(read(p), want);
}

TEST_F(AtomicFile, Stream_ThrowingWriterKeepsOldFileAndRemovesTemp) {
  const std::string p = tmp_.file("ckpt.safetensors");
  atomic_write(p, "old content");
  struct WriterFailed {};
  EXPECT_THROW(atomic_write_stream(p,
                                   [](std::ostream& os) {
                                     os << std::string(5 << 20,
                                                       'x');  // well past the buffer: bytes hit the temp file
                                     throw WriterFailed{};
                                   }),
               WriterFailed);
  EXPECT_EQ(read(p), "old content");
  EXPECT_EQ(entries(), std::vector<std::string>{"ckpt.safetensors"});
}

TEST_F(AtomicFile, Write_IntoMissingDirectoryFailsNamingThePath) {
  const std::string p = (tmp_.path() / "no_such_dir" / "out.bin").string();
  try {
    atomic_write(p, "data");
    FAIL() << "no RuntimeFailure";
  } catch (const RuntimeFailure& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find(p), std::string::npos) << msg;
    EXPECT_NE(msg.find("No such file or directory"), std::string::npos) << msg;
  }
  EXPECT_FALSE(fs::exists(tmp_.path() / "no_such_dir"));
}

TEST_F(AtomicFile, Write_OverADirectoryFailsAndRemovesTemp) {
  const fs::path target = tmp_.path() / "occupied";
  fs::create_directories(target / "child");
  try {
    atomic_write(target.string(), "data");
    FAIL() << "no RuntimeFailure";
  } catch (const RuntimeFailure& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find(target.string()), std::string::npos) << msg;
    EXPECT_NE(msg.find("rename"), std::string::npos) << msg;
  }
  EXPECT_EQ(entries(), std::vector<std::string>{"occupied"});
  EXPECT_TRUE(fs::is_directory(target / "child"));
}

}  // namespace
