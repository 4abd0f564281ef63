// Tests of semaim::io safetensors: round trips of every dtype and layout, and one InputError (naming the
// file and the fault) for each kind of damaged or hostile file, never a crash.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "semaim/core/errors.h"
#include "semaim/io/safetensors.h"
#include "temp_dir.h"

namespace fs = std::filesystem;
using semaim::InputError;
using semaim::io::load_safetensors;
using semaim::io::NamedTensors;
using semaim::io::read_safetensors_shapes;
using semaim::io::save_safetensors;

namespace {

class Safetensors : public ::testing::Test {
 protected:
  // A file with the given header text (not padded) followed by `data_bytes` bytes of `fill`.
  std::string write_raw(const std::string& name, const std::string& header, size_t data_bytes,
                        char fill = 0) const {
    std::string path = tmp_.file(name);
    std::ofstream os(path, std::ios::binary);
    uint64_t n = header.size();
    for (int i = 0; i < 8; ++i) os.put(static_cast<char>(n >> (8 * i)));
    os << header << std::string(data_bytes, fill);
    return path;
  }

  semaim::test::TempDir tmp_;
};

std::string bytes_of(const at::Tensor& t) {
  at::Tensor c = t.contiguous();
  return std::string(static_cast<const char*>(c.const_data_ptr()), c.nbytes());
}

// Same dtype, shape and bit pattern (so NaNs and -0.0 count as equal only to themselves).
void expect_bitwise_equal(const at::Tensor& got, const at::Tensor& want, const std::string& name) {
  ASSERT_EQ(got.scalar_type(), want.scalar_type()) << name;
  ASSERT_EQ(got.sizes(), want.sizes()) << name;
  EXPECT_TRUE(got.is_contiguous()) << name;
  EXPECT_EQ(bytes_of(got), bytes_of(want)) << name;
}

// Expects InputError whose message names the file and contains `fault`.
void expect_input_error(const std::function<void()>& f, const std::string& path, const std::string& fault) {
  try {
    f();
    ADD_FAILURE() << "no InputError for " << path << " (expected '" << fault << "')";
  } catch (const InputError& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find(path), std::string::npos) << "message does not name the file: " << msg;
    EXPECT_NE(msg.find(fault), std::string::npos) << "message lacks '" << fault << "': " << msg;
  }
}

void expect_load_error(const std::string& path, const std::string& fault) {
  expect_input_error([&] { load_safetensors(path); }, path, fault);
}

NamedTensors every_dtype() {
  at::Tensor r = at::randn({3, 5}, at::kDouble);
  return {
      {"f64", r},
      {"f32", r.to(at::kFloat)},
      {"f16", r.to(at::kHalf)},
      {"bf16", r.to(at::kBFloat16)},
      {"i64", at::arange(-7, 8, at::kLong) * (int64_t{1} << 40)},
      {"i32", at::arange(-6, 6, at::kInt).reshape({3, 4}) * 100000},
      {"i16", at::arange(-6, 6, at::kShort).reshape({2, 3, 2}) * 1000},
      {"i8", at::arange(-128, 128, 17, at::kChar)},
      {"u8", at::arange(0, 256, 15, at::kByte)},
      {"bool", at::rand({4, 4}) > 0.5},
  };
}

TEST_F(Safetensors, RoundTrip_EveryDtypeBitExactWithMetadataInGivenOrder) {
  NamedTensors in = every_dtype();
  std::map<std::string, std::string> meta{{"format", "pt"}, {"step", "1200"}, {"note", "ünïcode ok"}};
  save_safetensors(tmp_.file("a.safetensors"), in, meta);
  auto out = load_safetensors(tmp_.file("a.safetensors"));
  ASSERT_EQ(out.tensors.size(), in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    EXPECT_EQ(out.tensors[i].first, in[i].first);
    expect_bitwise_equal(out.tensors[i].second, in[i].second, in[i].first);
  }
  EXPECT_EQ(out.metadata, meta);
}

TEST_F(Safetensors, RoundTrip_ScalarEmptyNonContiguousAndSpecialValues) {
  at::Tensor base = at::arange(60, at::kFloat).reshape({3, 4, 5});
  at::Tensor special = at::tensor({0.0f, -0.0f, INFINITY, -INFINITY, NAN, 1e-45f});
  NamedTensors in = {
      {"scalar", at::scalar_tensor(3.5, at::kDouble)},
      {"empty", at::empty({0, 7}, at::kFloat)},
      {"empty_bool", at::empty({2, 0}, at::kBool)},
      {"transposed", base.transpose(0, 2)},
      {"strided", base.slice(2, 0, 5, 2)},
      {"expanded", at::arange(3, at::kInt).unsqueeze(1).expand({3, 4})},
      {"channels_last", at::randn({2, 3, 4, 5}).contiguous(at::MemoryFormat::ChannelsLast)},
      {"requires_grad", at::ones({2}, at::kFloat).requires_grad_()},
      {"special", special},
      {"bf16_special", special.to(at::kBFloat16)},
  };
  save_safetensors(tmp_.file("b.safetensors"), in);
  auto out = load_safetensors(tmp_.file("b.safetensors"));
  ASSERT_EQ(out.tensors.size(), in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    EXPECT_EQ(out.tensors[i].first, in[i].first);
    expect_bitwise_equal(out.tensors[i].second, in[i].second.detach(), in[i].first);
  }
  EXPECT_EQ(out.tensors[0].second.dim(), 0);
  EXPECT_FALSE(out.tensors[7].second.requires_grad());
  EXPECT_TRUE(out.metadata.empty());
}

TEST_F(Safetensors, Save_HeaderIsLengthPrefixedJsonPaddedToEightBytes) {
  save_safetensors(tmp_.file("c.safetensors"), {{"w", at::ones({3}, at::kFloat)}}, {{"k", "v"}});
  std::ifstream is(tmp_.file("c.safetensors"), std::ios::binary);
  std::string all((std::istreambuf_iterator<char>(is)), std::istreambuf_iterator<char>());
  ASSERT_GE(all.size(), 8u);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(all[i]);
  EXPECT_EQ(n % 8, 0u);
  EXPECT_EQ(all.size(), 8 + n + 12);
  std::string header = all.substr(8, n);
  EXPECT_EQ(header.front(), '{');
  EXPECT_NE(header.find(R"("w":{"dtype":"F32","shape":[3],"data_offsets":[0,12]})"), std::string::npos)
      << header;
  EXPECT_NE(header.find(R"("__metadata__":{"k":"v"})"), std::string::npos) << header;
}

TEST_F(Safetensors, Load_KeepsTheFilesDataOffsetOrder) {
  // Header lists "a" first, but "b" sits first in the data section.
  std::string p = write_raw("order.safetensors",
                            R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[3,5]},)"
                            R"("b":{"dtype":"U8","shape":[3],"data_offsets":[0,3]}})",
                            5, 1);
  auto out = load_safetensors(p);
  ASSERT_EQ(out.tensors.size(), 2u);
  EXPECT_EQ(out.tensors[0].first, "b");
  EXPECT_EQ(out.tensors[1].first, "a");
  EXPECT_EQ(out.tensors[1].second.sum().item<int64_t>(), 2);
}

TEST_F(Safetensors, Shapes_PeekReadsHeaderOnly) {
  save_safetensors(tmp_.file("s.safetensors"), every_dtype());
  auto shapes = read_safetensors_shapes(tmp_.file("s.safetensors"));
  EXPECT_EQ(shapes.size(), 10u);
  EXPECT_EQ(shapes.at("i16"), (std::vector<int64_t>{2, 3, 2}));
  EXPECT_EQ(shapes.at("f64"), (std::vector<int64_t>{3, 5}));
  // Invalid BOOL data bytes are only noticed when the data is read: the peek does not read it.
  std::string p =
      write_raw("badbool.safetensors", R"({"m":{"dtype":"BOOL","shape":[2,2],"data_offsets":[0,4]}})", 4, 7);
  EXPECT_EQ(read_safetensors_shapes(p).at("m"), (std::vector<int64_t>{2, 2}));
  expect_load_error(p, "not 0 or 1");
}

TEST_F(Safetensors, Save_RejectsDuplicateReservedUndefinedAndUnsupported) {
  std::string p = tmp_.file("bad_save.safetensors");
  at::Tensor t = at::zeros({2});
  expect_input_error([&] { save_safetensors(p, {{"x", t}, {"x", t}}); }, p, "duplicate tensor name 'x'");
  expect_input_error([&] { save_safetensors(p, {{"__metadata__", t}}); }, p, "reserved");
  expect_input_error([&] { save_safetensors(p, {{"u", at::Tensor()}}); }, p, "undefined");
  expect_input_error([&] { save_safetensors(p, {{"c", at::zeros({2}, at::kComplexFloat)}}); }, p, "dtype");
  EXPECT_FALSE(fs::exists(p));
}

// ---- damaged and hostile files ----

TEST_F(Safetensors, Bad_MissingFileAndDirectory) {
  expect_load_error(tmp_.file("nope.safetensors"), "cannot open");
  expect_load_error(tmp_.path().string(), "not a regular file");
}

TEST_F(Safetensors, Bad_ZeroByteFile) {
  std::string p = tmp_.file("zero.safetensors");
  std::ofstream(p, std::ios::binary).close();
  expect_load_error(p, "truncated: 0 bytes");
}

TEST_F(Safetensors, Bad_FiveByteFile) {
  std::string p = tmp_.file("five.safetensors");
  std::ofstream(p, std::ios::binary) << std::string("\x10\0\0\0\0", 5);
  ASSERT_EQ(fs::file_size(p), 5u);
  expect_load_error(p, "truncated: 5 bytes");
}

TEST_F(Safetensors, Bad_HeaderLengthLargerThanFile) {
  std::string p = tmp_.file("long.safetensors");
  std::ofstream os(p, std::ios::binary);
  const unsigned char len[8] = {0x00, 0x10, 0, 0, 0, 0, 0, 0};  // 4096 bytes, file has 10 after it
  os.write(reinterpret_cast<const char*>(len), 8);
  os << "{\"a\":1}   ";
  os.close();
  expect_load_error(p, "header length 4096");
  expect_input_error([&] { read_safetensors_shapes(p); }, p, "header length 4096");
}

TEST_F(Safetensors, Bad_HugeHeaderLengthIsRejectedWithoutAllocating) {
  std::string p = tmp_.file("huge.safetensors");
  std::ofstream os(p, std::ios::binary);
  os << std::string(8, '\xff') << "{}";
  os.close();
  expect_load_error(p, "limit");
}

TEST_F(Safetensors, Bad_GarbageJson) {
  expect_load_error(write_raw("g1", "{\"a\": [1, 2", 0), "not valid JSON");
  expect_load_error(write_raw("g2", "{\"a\":{}}\x01\x02", 0), "not valid JSON");
  expect_load_error(write_raw("g3", "\xde\xad\xbe\xef garbage", 0), "does not start with '{'");
  expect_load_error(write_raw("g4", "{\"\xff\xfe\":{}}", 0), "not valid JSON");  // not UTF-8
}

TEST_F(Safetensors, Bad_UnknownDtype) {
  expect_load_error(write_raw("d", R"({"w":{"dtype":"Q4_K","shape":[2],"data_offsets":[0,2]}})", 2),
                    "tensor 'w': unsupported dtype 'Q4_K'");
  expect_load_error(write_raw("d2", R"({"w":{"dtype":7,"shape":[2],"data_offsets":[0,2]}})", 2),
                    "dtype is not a string");
}

TEST_F(Safetensors, Bad_MissingOrMalformedFields) {
  expect_load_error(write_raw("m1", R"({"w":{"dtype":"F32","data_offsets":[0,4]}})", 4),
                    "missing field 'shape'");
  expect_load_error(write_raw("m2", R"({"w":{"dtype":"F32","shape":[1]}})", 4),
                    "missing field 'data_offsets'");
  expect_load_error(write_raw("m3", R"({"w":[1,2,3]})", 4), "not an object");
  expect_load_error(write_raw("m4", R"({"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", 4),
                    "non-negative");
  expect_load_error(write_raw("m5", R"({"w":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}})", 4),
                    "non-negative integer");
  expect_load_error(write_raw("m6", R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0]}})", 4),
                    "[begin, end]");
  expect_load_error(write_raw("m7", R"({"w":{"dtype":"F32","shape":[0],"data_offsets":[4,0]}})", 4),
                    "before begin");
  expect_load_error(write_raw("m8", R"({"w":{"dtype":"F32","shape":"4","data_offsets":[0,4]}})", 4),
                    "shape is not an array");
}

TEST_F(Safetensors, Bad_OffsetsOutOfRange) {
  expect_load_error(write_raw("o", R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[100,116]}})", 16),
                    "tensor 'w' ends at byte 116 but the data section has 16");
  expect_load_error(
      write_raw("o2", R"({"w":{"dtype":"U8","shape":[1],"data_offsets":[18446744073709551615,0]}})", 16),
      "before begin");
}

TEST_F(Safetensors, Bad_TruncatedDataSection) {
  std::string p = tmp_.file("ckpt.safetensors");
  save_safetensors(p,
                   {{"blocks.0.norm1.weight", at::ones({256})}, {"blocks.0.norm1.bias", at::zeros({256})}});
  fs::resize_file(p, fs::file_size(p) - 100);
  expect_load_error(
      p, "truncated: tensor 'blocks.0.norm1.bias' ends at byte 2048 but the data section has 1948");
  expect_input_error([&] { read_safetensors_shapes(p); }, p, "truncated");
}

TEST_F(Safetensors, Bad_SizeMismatchBetweenShapeAndOffsets) {
  expect_load_error(write_raw("sz", R"({"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,20]}})", 24),
                    "data_offsets span 20 bytes but dtype F32 and its shape need 24");
}

TEST_F(Safetensors, Bad_ShapeWhoseElementCountOverflows) {
  expect_load_error(
      write_raw("ov", R"({"w":{"dtype":"F64","shape":[4294967296,4294967296],"data_offsets":[0,8]}})", 8),
      "shape is too large");
  // A zero dimension makes any other dimension harmless: an empty tensor, no allocation.
  auto empty = load_safetensors(
      write_raw("ok", R"({"w":{"dtype":"F64","shape":[0,4611686018427387904],"data_offsets":[0,0]}})", 0));
  ASSERT_EQ(empty.tensors.size(), 1u);
  EXPECT_EQ(empty.tensors[0].second.numel(), 0);
  EXPECT_EQ(empty.tensors[0].second.size(1), int64_t{1} << 62);
}

TEST_F(Safetensors, Bad_DuplicateNamesAndOverlap) {
  expect_load_error(write_raw("dup",
                              R"({"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},)"
                              R"("w":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}})",
                              2),
                    "duplicate tensor name 'w'");
  expect_load_error(write_raw("ovl",
                              R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},)"
                              R"("b":{"dtype":"U8","shape":[4],"data_offsets":[2,6]}})",
                              6),
                    "overlap");
}

TEST_F(Safetensors, Bad_MetadataValuesMustBeStrings) {
  expect_load_error(write_raw("md", R"({"__metadata__":{"epoch":3}})", 0),
                    "__metadata__ value of 'epoch' is not a string");
  expect_load_error(write_raw("md2", R"({"__metadata__":[1]})", 0), "__metadata__ is not an object");
  auto ok = load_safetensors(write_raw("md3", R"({"__metadata__":{"a":"1"}})", 0));
  EXPECT_TRUE(ok.tensors.empty());
  EXPECT_EQ(ok.metadata.at("a"), "1");
}

TEST_F(Safetensors, Bad_DeeplyNestedJsonDoesNotRecurse) {
  expect_load_error(write_raw("deep", "{\"a\":" + std::string(1 << 20, '['), 0), "nests deeper");
}

// Every prefix of a good file and thousands of random byte corruptions must load or throw InputError.
TEST_F(Safetensors, Fuzz_TruncationsAndCorruptionsNeverCrash) {
  std::string good = tmp_.file("good.safetensors");
  save_safetensors(good, every_dtype(), {{"k", "v"}});
  std::ifstream is(good, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(is)), std::istreambuf_iterator<char>());
  std::string p = tmp_.file("fuzz.safetensors");
  auto write = [&](const std::string& b) { std::ofstream(p, std::ios::binary | std::ios::trunc) << b; };
  for (size_t len = 0; len < bytes.size(); ++len) {
    write(bytes.substr(0, len));
    EXPECT_THROW(load_safetensors(p), InputError) << "prefix of " << len << " bytes loaded";
  }
  std::mt19937 rng(1234);
  uint64_t header_end = 8;
  for (int i = 0; i < 8; ++i)
    header_end += static_cast<uint64_t>(static_cast<unsigned char>(bytes[i])) << (8 * i);
  int loaded = 0, rejected = 0;
  for (int trial = 0; trial < 3000; ++trial) {
    std::string b = bytes;
    // Corrupt mostly the length and header, where the parsing happens.
    std::uniform_int_distribution<size_t> pos(0, trial % 4 == 0 ? b.size() - 1 : header_end - 1);
    for (int k = 0; k < 1 + trial % 3; ++k) b[pos(rng)] = static_cast<char>(rng() & 0xff);
    write(b);
    try {
      auto f = load_safetensors(p);
      ++loaded;
    } catch (const InputError&) {
      ++rejected;
    }
  }
  EXPECT_GT(rejected, 0);
  EXPECT_GT(loaded, 0);  // flipped data bytes of float tensors are still a valid file
  EXPECT_EQ(loaded + rejected, 3000);
}

}  // namespace
