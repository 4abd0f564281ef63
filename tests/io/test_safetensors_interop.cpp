// Safetensors interop with Python's reference implementation (safetensors.torch), both directions, via
// tools/check_safetensors.py and the venv python; the two sides build the same arange-based patterns.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <filesystem>
#include <map>
#include <string>

#include "run_command.h"
#include "semaim/io/safetensors.h"
#include "semaim_paths.h"
#include "temp_dir.h"

namespace fs = std::filesystem;

namespace {

// Must match patterns() in tools/check_safetensors.py.
semaim::io::NamedTensors interop_patterns() {
  at::Tensor a = at::arange(24, at::kDouble);
  return {
      {"f64", (a * 0.25 - 2.0).reshape({2, 3, 4})},
      {"f32", (a * 0.5 - 3.0).to(at::kFloat).reshape({4, 6})},
      {"f16", (a * 0.5 - 3.0).to(at::kHalf).reshape({6, 4})},
      {"bf16", (a * 0.5 - 3.0).to(at::kBFloat16).reshape({3, 8})},
      {"i64", a.to(at::kLong) * 1000003 - 5},
      {"i32", (a.to(at::kInt) * 7 - 12).reshape({2, 12})},
      {"i16", (a.to(at::kShort) * 100 - 1000).reshape({12, 2})},
      {"i8", (a.to(at::kChar) * 5 - 60).reshape({4, 3, 2})},
      {"u8", (a.to(at::kByte) * 10).reshape({24, 1})},
      {"bool", at::remainder(at::arange(24), 3).eq(0).reshape({2, 2, 6})},
      {"scalar", at::scalar_tensor(7.25, at::kDouble)},
      {"empty", at::zeros({0, 5}, at::kFloat)},
      {"transposed", at::arange(24, at::kFloat).reshape({4, 6}).t()},  // non-contiguous on purpose
  };
}
const std::map<std::string, std::string> kMetadata{
    {"format", "pt"}, {"origin", "semaim interop"}, {"epoch", "3"}};

class SafetensorsInterop : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(SEMAIM_PYTHON)) GTEST_SKIP() << "python binary " << SEMAIM_PYTHON << " does not exist";
  }

  // Runs tools/check_safetensors.py <mode> <file>: its exit code and its output.
  static semaim::testing::CommandResult run_python(const std::string& mode, const std::string& file) {
    return semaim::testing::run_command(std::string("'") + SEMAIM_PYTHON + "' '" + SEMAIM_SOURCE_DIR +
                                        "/tools/check_safetensors.py' " + mode + " '" + file + "'");
  }

  semaim::test::TempDir tmp_;
};

TEST_F(SafetensorsInterop, CppWrites_PythonLoadFileReadsEqualValuesAndMetadata) {
  const std::string p = tmp_.file("from_cpp.safetensors");
  semaim::io::save_safetensors(p, interop_patterns(), kMetadata);
  const auto r = run_python("check", p);
  EXPECT_EQ(r.exit_code, 0) << r.output;
}

TEST_F(SafetensorsInterop, PythonWrites_CppReadsEqualValuesAndMetadata) {
  const std::string p = tmp_.file("from_python.safetensors");
  const auto r = run_python("write", p);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto file = semaim::io::load_safetensors(p);
  EXPECT_EQ(file.metadata, kMetadata);
  auto want = interop_patterns();
  ASSERT_EQ(file.tensors.size(), want.size());
  std::map<std::string, at::Tensor> got(file.tensors.begin(), file.tensors.end());
  for (const auto& [name, w] : want) {
    ASSERT_TRUE(got.count(name)) << name;
    const at::Tensor& g = got.at(name);
    EXPECT_EQ(g.scalar_type(), w.scalar_type()) << name;
    EXPECT_EQ(g.sizes(), w.sizes()) << name;
    EXPECT_TRUE(g.scalar_type() == w.scalar_type() && g.sizes() == w.sizes() && at::equal(g, w.contiguous()))
        << name;
  }
  // The shape peek agrees with the full load.
  auto shapes = semaim::io::read_safetensors_shapes(p);
  for (const auto& [name, t] : file.tensors) EXPECT_EQ(shapes.at(name), t.sizes().vec()) << name;
}

}  // namespace
