// Tests of the IDX reader and the Fashion-MNIST loader (real Debian files plus corrupt files written here).
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>
#include <zlib.h>

#include <fstream>

#include "temp_dir.h"
#include "semaim/core/errors.h"
#include "semaim/data/idx.h"

namespace semaim::data {
namespace {

const std::string kRoot = kFashionMnistRoot;

std::vector<uint8_t> idx_header(uint8_t type, const std::vector<uint32_t>& dims) {
  std::vector<uint8_t> h{0, 0, type, static_cast<uint8_t>(dims.size())};
  for (uint32_t d : dims) {
    for (int s = 24; s >= 0; s -= 8) h.push_back(static_cast<uint8_t>(d >> s));
  }
  return h;
}

void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

void write_gz(const std::string& path, const std::vector<uint8_t>& bytes) {
  gzFile f = gzopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  ASSERT_EQ(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())), static_cast<int>(bytes.size()));
  gzclose(f);
}

// An IDX file: header for dims, then payload_bytes bytes counting up.
std::vector<uint8_t> idx_file(const std::vector<uint32_t>& dims, size_t payload_bytes) {
  std::vector<uint8_t> b = idx_header(0x08, dims);
  for (size_t i = 0; i < payload_bytes; ++i) b.push_back(static_cast<uint8_t>(i * 7));
  return b;
}

// Runs f, expects InputError whose message contains every fragment.
template <typename F>
void expect_input_error(F&& f, const std::vector<std::string>& fragments) {
  try {
    f();
    FAIL() << "no InputError";
  } catch (const InputError& e) {
    for (const std::string& frag : fragments)
      EXPECT_NE(std::string(e.what()).find(frag), std::string::npos) << e.what();
  }
}

TEST(ReadIdx, RealTrainFilesHaveFashionMnistShapeAndLabels) {
  const at::Tensor images = read_idx(kRoot + "/train-images-idx3-ubyte.gz");
  EXPECT_EQ(images.sizes(), (at::IntArrayRef{60000, 28, 28}));
  EXPECT_EQ(images.scalar_type(), at::kByte);
  const at::Tensor labels = read_idx(kRoot + "/train-labels-idx1-ubyte.gz");
  ASSERT_EQ(labels.sizes(), (at::IntArrayRef{60000}));
  const uint8_t* l = labels.data_ptr<uint8_t>();
  EXPECT_EQ((std::vector<int>{l[0], l[1], l[2], l[3]}), (std::vector<int>{9, 0, 0, 3}));
  // Each class holds exactly 6000 training images.
  EXPECT_TRUE(at::equal(at::bincount(labels.to(at::kLong)), at::full({10}, 6000, at::kLong)));
}

TEST(ReadIdx, RawCopyEqualsGzip) {
  test::TempDir dir;
  const std::string gz = kRoot + "/t10k-images-idx3-ubyte.gz";
  // Decompress with zlib directly so the raw copy does not depend on the reader under test.
  std::vector<uint8_t> raw;
  gzFile f = gzopen(gz.c_str(), "rb");
  ASSERT_NE(f, nullptr);
  std::vector<uint8_t> buf(1 << 20);
  for (int n; (n = gzread(f, buf.data(), static_cast<unsigned>(buf.size()))) > 0;)
    raw.insert(raw.end(), buf.begin(), buf.begin() + n);
  gzclose(f);
  ASSERT_EQ(raw.size(), 16u + 10000u * 28u * 28u);
  write_bytes(dir.file("t10k-images-idx3-ubyte"), raw);
  const at::Tensor from_gz = read_idx(gz);
  const at::Tensor from_raw = read_idx(dir.file("t10k-images-idx3-ubyte"));
  EXPECT_EQ(from_raw.sizes(), (at::IntArrayRef{10000, 28, 28}));
  EXPECT_TRUE(at::equal(from_gz, from_raw));
}

TEST(ReadIdx, SmallGzipAndRawFilesAgree) {
  test::TempDir dir;
  const std::vector<uint8_t> bytes = idx_file({3, 2, 5}, 30);
  write_bytes(dir.file("a.idx"), bytes);
  write_gz(dir.file("a.idx.gz"), bytes);
  const at::Tensor raw = read_idx(dir.file("a.idx"));
  EXPECT_EQ(raw.sizes(), (at::IntArrayRef{3, 2, 5}));
  EXPECT_EQ(raw[2][1][4].item<int>(), static_cast<uint8_t>(29 * 7));
  EXPECT_TRUE(at::equal(raw, read_idx(dir.file("a.idx.gz"))));
}

TEST(ReadIdx, TruncatedPayloadNamesFileAndCounts) {
  test::TempDir dir;
  const std::string path = dir.file("train-images-idx3-ubyte");
  write_bytes(path, idx_file({5, 4, 4}, 30));
  expect_input_error([&] { read_idx(path); }, {path, "truncated", "expected 80 bytes of pixels", "found 30"});
  write_gz(path + ".gz", idx_file({5, 4, 4}, 30));
  expect_input_error([&] { read_idx(path + ".gz"); }, {path + ".gz", "truncated", "found 30"});
}

TEST(ReadIdx, CutGzipStreamIsAnError) {
  test::TempDir dir;
  std::ifstream in(kRoot + "/t10k-labels-idx1-ubyte.gz", std::ios::binary);
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  bytes.resize(bytes.size() / 2);
  const std::string path = dir.file("cut.gz");
  write_bytes(path, bytes);
  expect_input_error([&] { read_idx(path); }, {path, "truncated: gzip stream ends early"});
}

TEST(ReadIdx, TrailingBytesAreAnError) {
  test::TempDir dir;
  const std::string path = dir.file("long-labels");
  write_bytes(path, idx_file({10}, 11));
  expect_input_error([&] { read_idx(path); }, {path, "trailing data", "10 bytes of labels"});
}

TEST(ReadIdx, WrongMagicOrTypeIsAnError) {
  test::TempDir dir;
  const std::string path = dir.file("bad");
  std::vector<uint8_t> b = idx_file({4}, 4);
  b[0] = 0x12;
  write_bytes(path, b);
  expect_input_error([&] { read_idx(path); }, {path, "bad magic 0x12000801", "not an IDX file"});
  b = idx_file({4}, 4);
  b[2] = 0x0D;  // float32 IDX
  write_bytes(path, b);
  expect_input_error([&] { read_idx(path); }, {path, "element type 0x0d", "not uint8"});
  b = idx_file({4}, 4);
  b[3] = 0;
  write_bytes(path, b);
  expect_input_error([&] { read_idx(path); }, {path, "dimension count 0"});
}

TEST(ReadIdx, ZeroByteMissingAndHeaderOnlyFilesAreErrors) {
  test::TempDir dir;
  const std::string empty = dir.file("empty");
  write_bytes(empty, {});
  expect_input_error([&] { read_idx(empty); }, {empty, "empty file"});
  const std::string missing = dir.file("missing.gz");
  expect_input_error([&] { read_idx(missing); }, {missing, "cannot open", "No such file"});
  const std::string cut_header = dir.file("cut-header");
  std::vector<uint8_t> h = idx_header(0x08, {60000, 28, 28});
  h.resize(9);
  write_bytes(cut_header, h);
  expect_input_error([&] { read_idx(cut_header); }, {cut_header, "truncated", "header needs 3 dims"});
  const std::string zero_dim = dir.file("zero-dim");
  write_bytes(zero_dim, idx_file({3, 0, 2}, 0));
  expect_input_error([&] { read_idx(zero_dim); }, {zero_dim, "dimension 1 is zero"});
}

TEST(LoadFashionMnist, TestSplitShapesAndLabels) {
  const ImageSet test = load_fashion_mnist(kRoot, "test");
  EXPECT_EQ(test.images.sizes(), (at::IntArrayRef{10000, 1, 28, 28}));
  EXPECT_EQ(test.labels.scalar_type(), at::kLong);
  const int64_t* l = test.labels.data_ptr<int64_t>();
  EXPECT_EQ((std::vector<int64_t>{l[0], l[1], l[2], l[3]}), (std::vector<int64_t>{9, 2, 1, 1}));
  EXPECT_EQ(test.name, "fashion-mnist/test");
  const ImageSet head = take_first(test, 7);
  EXPECT_EQ(head.images.size(0), 7);
  EXPECT_TRUE(at::equal(head.images, test.images.narrow(0, 0, 7)));
}

TEST(LoadFashionMnist, CountMismatchAndUnknownSplitAreErrors) {
  test::TempDir dir;
  write_gz(dir.file("train-images-idx3-ubyte.gz"), idx_file({5, 28, 28}, 5 * 28 * 28));
  write_bytes(dir.file("train-labels-idx1-ubyte"), idx_file({4}, 4));
  expect_input_error([&] { load_fashion_mnist(dir.path().string(), "train"); },
                     {"train-labels-idx1-ubyte", "count mismatch", "4 labels for 5 images"});
  expect_input_error([&] { load_fashion_mnist(dir.path().string(), "val"); }, {"split", "val"});
  expect_input_error([&] { load_fashion_mnist(dir.path().string(), "test"); },
                     {"t10k-images-idx3-ubyte.gz", "not found"});
}

#if !defined(__SANITIZE_ADDRESS__)
// A 17-byte file whose header claims 12 GiB is refused without allocating them (not in sanitized builds:
// AddressSanitizer reserves more address space than the limit leaves). Reads `path` with 1 GiB of address space to spare (libtorch's libraries alone map gigabytes) and exits 0
// when the file is refused as truncated.
[[noreturn]] void read_with_little_memory(const std::string& path) {
  std::ifstream statm("/proc/self/statm");
  uint64_t pages = 0;
  statm >> pages;
  const rlim_t cap = pages * static_cast<uint64_t>(sysconf(_SC_PAGESIZE)) + (uint64_t{1} << 30);
  const rlimit limit{cap, cap};
  setrlimit(RLIMIT_AS, &limit);
  try {
    read_idx(path);
  } catch (const InputError& e) {
    std::exit(std::string(e.what()).find("truncated") != std::string::npos ? 0 : 3);
  } catch (...) {
    std::exit(4);
  }
  std::exit(5);
}

TEST(ReadIdxDeathTest, AHeaderClaimingGigabytesIsTruncatedWithoutAllocatingThem) {
  test::TempDir dir;
  std::vector<uint8_t> bytes = idx_file({65536, 65536, 3}, 0);
  bytes.push_back(7);
  write_bytes(dir.file("claims-12gib"), bytes);
  EXPECT_EXIT(read_with_little_memory(dir.file("claims-12gib")), ::testing::ExitedWithCode(0), "");
}
#endif

}  // namespace
}  // namespace semaim::data
