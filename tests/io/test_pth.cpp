// torch.save checkpoints read without Python: tensors of every stored dtype and views sharing storages equal
// what Python saved (tests/io/make_pth.py), Python objects such as argparse.Namespace stay opaque, and every
// broken archive is an InputError naming the file and the fault.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "input_error.h"
#include "python_suite.h"
#include "semaim/io/pth.h"
#include "semaim/io/safetensors.h"

namespace {

namespace fs = std::filesystem;
namespace io = semaim::io;
using Kind = io::PickleValue::Kind;
using semaim::test::expect_input_error;

// The files make_pth.py writes, once for the suite.
class Pth : public semaim::test::PythonSuite<Pth> {
 protected:
  static void SetUpTestSuite() {
    if (have_python()) run_script("io/make_pth.py", "io " + semaim::test::quoted(dir().string()));
  }
  // A copy of `name` cut to its first n bytes.
  static std::string truncated(const std::string& name, size_t n) {
    std::ifstream in(file(name), std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const std::string out = file(name + ".cut" + std::to_string(n));
    std::ofstream(out, std::ios::binary)
        .write(bytes.data(), static_cast<std::streamsize>(std::min(n, bytes.size())));
    return out;
  }
  static size_t size_of(const std::string& name) { return static_cast<size_t>(fs::file_size(file(name))); }
};

const io::PickleValue& at_key(const io::PickleValue& dict, const std::string& key) {
  const io::PickleValue* v = dict.get(key);
  if (!v) throw std::runtime_error("no key " + key);
  return *v;
}

TEST_F(Pth, StateDictEqualsPythonTensorsInFileOrder) {
  const auto expect = io::load_safetensors(file("expect.safetensors")).tensors;
  const auto got = io::load_pth_state_dict(file("mixed.pth"));
  const std::vector<std::string> order = {"f32",    "f16",     "bf16",   "f64",   "i64",
                                          "i32",    "u8",      "bool",   "whole", "transposed",
                                          "offset", "strided", "scalar", "empty"};
  ASSERT_EQ(got.size(), order.size());
  for (size_t i = 0; i < got.size(); ++i) {
    const auto& [name, t] = got[i];
    SCOPED_TRACE(name);
    EXPECT_EQ(name, order[i]);
    const auto want =
        std::find_if(expect.begin(), expect.end(), [&](const auto& e) { return e.first == name; });
    ASSERT_NE(want, expect.end());
    EXPECT_EQ(t.scalar_type(), want->second.scalar_type());
    EXPECT_EQ(t.sizes(), want->second.sizes());
    EXPECT_TRUE(t.is_contiguous());
    EXPECT_TRUE(t.device().is_cpu());
    EXPECT_TRUE(at::equal(t, want->second));
  }
}

TEST_F(Pth, Protocol4FileGivesTheSameStateDict) {
  const auto a = io::load_pth_state_dict(file("mixed.pth"));
  const auto b = io::load_pth_state_dict(file("proto4.pth"));
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].first, b[i].first);
    EXPECT_TRUE(at::equal(a[i].second, b[i].second)) << a[i].first;
  }
}

TEST_F(Pth, PythonObjectsStayOpaqueAndPlainValuesAreRead) {
  const io::PicklePtr root = io::load_pth(file("mixed.pth"));
  ASSERT_EQ(root->kind, Kind::kDict);
  EXPECT_EQ(at_key(*root, "epoch").integer, 3);
  const auto& args = at_key(*root, "args");
  ASSERT_EQ(args.kind, Kind::kObject);
  EXPECT_EQ(args.text, "argparse.Namespace");
  ASSERT_FALSE(args.items.empty());
  const auto& fields = *args.items.back();  // BUILD's state: the namespace's __dict__
  ASSERT_EQ(fields.kind, Kind::kDict);
  EXPECT_DOUBLE_EQ(at_key(fields, "lr").real, 1.5e-4);
  EXPECT_EQ(at_key(fields, "input_size").integer, 224);
  EXPECT_TRUE(at_key(fields, "norm_pix_loss").boolean);
  EXPECT_EQ(at_key(fields, "model").text, "aim_base");
  EXPECT_EQ(at_key(fields, "output_dir").kind, Kind::kObject);
  EXPECT_TRUE(at_key(fields, "output_dir").text.starts_with("pathlib.")) << at_key(fields, "output_dir").text;
  EXPECT_EQ(at_key(fields, "seed_value").kind, Kind::kObject);
  EXPECT_DOUBLE_EQ(at_key(at_key(*root, "scaler"), "scale").real, 65536.0);
  // The optimizer state's tensors are read too (load_pth reads everything); int keys index the params.
  const auto& state = at_key(at_key(*root, "optimizer"), "state");
  ASSERT_EQ(state.kind, Kind::kDict);
  ASSERT_EQ(state.entries.size(), 1u);
  EXPECT_EQ(state.entries[0].first->integer, 0);
  const auto& exp_avg = at_key(*state.entries[0].second, "exp_avg");
  ASSERT_EQ(exp_avg.kind, Kind::kTensor);
  EXPECT_EQ(exp_avg.tensor.sizes(), at::IntArrayRef({3}));
  // Protocol 2 stores bytes through _codecs.encode (opaque); protocol 4 has a bytes opcode.
  EXPECT_EQ(at_key(*io::load_pth(file("proto4.pth")), "note").text, std::string("\0bytes", 6));
}

TEST_F(Pth, StateDictKeyIsChosenByRuleOrByName) {
  const auto top = io::load_pth_state_dict(file("top.pth"));
  ASSERT_EQ(top.size(), 2u);
  EXPECT_EQ(top[0].first, "a");
  EXPECT_EQ(top[1].second.scalar_type(), at::kLong);
  EXPECT_EQ(io::load_pth_state_dict(file("mixed.pth"), "model").size(), 14u);
  const std::string mixed = file("mixed.pth");
  expect_input_error([&] { io::load_pth_state_dict(mixed, "nope"); },
                     {mixed.c_str(), "no key 'nope'", "'model'"});
  expect_input_error([&] { io::load_pth_state_dict(mixed, "args"); },
                     {mixed.c_str(), "'args' is not a dict"});
  expect_input_error([&] { io::load_pth_state_dict(mixed, "scaler"); }, {mixed.c_str(), "holds no tensors"});
}

TEST_F(Pth, ZipSignatureIdentifiesPthFiles) {
  EXPECT_TRUE(io::is_pth_file(file("mixed.pth")));
  EXPECT_FALSE(io::is_pth_file(file("expect.safetensors")));
  EXPECT_FALSE(io::is_pth_file(file("legacy.pth")));
  EXPECT_FALSE(io::is_pth_file(file("absent.pth")));
}

TEST_F(Pth, TruncatedArchivesAreInputErrors) {
  for (size_t n : {size_t{0}, size_t{3}, size_t{64}, size_of("mixed.pth") / 2, size_of("mixed.pth") - 30,
                   size_of("mixed.pth") - 1}) {
    SCOPED_TRACE(n);
    const std::string cut = truncated("mixed.pth", n);
    expect_input_error([&] { io::load_pth_state_dict(cut); }, {cut.c_str()});
    expect_input_error([&] { io::load_pth(cut); }, {cut.c_str(), n < 4 ? "no zip signature" : "zip"});
  }
}

TEST_F(Pth, BrokenArchivesNameTheFileAndTheFault) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"no_pkl.pth", "no data.pkl record"},
      {"bad_opcode.pth", "data.pkl: unknown or unsupported pickle opcode 0xff at byte 5"},
      {"underflow.pth", "stack underflow"},
      {"truncated_pkl.pth", "truncated pickle"},
      {"missing_storage.pth", "missing storage record data/0"},
      {"short_storage.pth", "storage record data/0 holds 3 bytes"},
      {"view_outside.pth", "reaches past its storage data/0 of 6 elements"},
      {"legacy.pth", "legacy (before torch 1.6)"},
      {"expect.safetensors", "no zip signature"},
      {"absent.pth", "cannot open"},
  };
  for (const auto& [name, fault] : cases) {
    SCOPED_TRACE(name);
    const std::string path = file(name);
    expect_input_error([&] { io::load_pth(path); }, {path.c_str(), fault.c_str()});
    expect_input_error([&] { io::load_pth_state_dict(path); }, {path.c_str(), fault.c_str()});
  }
}

TEST_F(Pth, DeeplyNestedPickleIsReleasedWithoutRecursion) {
  io::PicklePtr v = io::load_pth(file("deep.pth"));
  int depth = 0;
  for (const io::PickleValue* p = v.get(); p->kind == Kind::kList; p = p->items[0].get()) {
    ++depth;
    if (p->items.empty()) break;
  }
  EXPECT_EQ(depth, 100000);
  v.reset();  // a recursive release would overflow the stack here
  expect_input_error([&] { io::load_pth_state_dict(file("deep.pth")); }, "the saved object is not a dict");
}

TEST(PickleValue, RepeatedKeysReplaceTheValueAsInPython) {
  io::PickleValue d;
  d.kind = Kind::kDict;
  auto str = [](const std::string& s) {
    auto v = std::make_shared<io::PickleValue>();
    v->kind = Kind::kString;
    v->text = s;
    return v;
  };
  d.set(str("a"), str("1"));
  d.set(str("b"), str("2"));
  d.set(str("a"), str("3"));
  ASSERT_EQ(d.entries.size(), 2u);
  EXPECT_EQ(d.entries[0].first->text, "a");
  EXPECT_EQ(d.get("a")->text, "3");
  EXPECT_EQ(d.get("c"), nullptr);
}

}  // namespace
