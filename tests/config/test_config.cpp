// The config mechanism on small schemas of its own: Schema building (sections, duplicates, renames, markdown)
// and Config layering (_base_, --set), strict validation and the resolved YAML.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <stdexcept>

#include "semaim/config/config.h"
#include "semaim/core/errors.h"
#include "temp_dir.h"

namespace fs = std::filesystem;
using semaim::InputError;
using semaim::config::Config;
using semaim::config::KeySpec;
using semaim::config::Schema;
using T = semaim::config::ValueType;

namespace {

// A stand-in for a program's schema: a few keys of every type, in two areas' sections and one task section,
// with the task section renamed from `train`.
const Schema& test_schema() {
  static const Schema kSchema = [] {
    Schema s;
    s.add_section("run");
    s.add({"run.name", T::kString, "\"\"", "Run name."});
    s.add({"run.seed", T::kInt, "0", "Seed.", 0});
    s.add({"run.timeout_seconds", T::kFloat, "600.0", "A float without a range."});
    s.add_section("model");
    s.add({"model.name", T::kString, "small", "Model size."});
    s.add({"model.head", T::kString, "mlp", "Head.", {}, {}, {"mlp", "linear"}});
    s.add_section("data");
    s.add({"data.hflip", T::kFloat, "0.5", "Flip probability.", 0.0, 1.0});
    s.add({"data.transforms", T::kStringList, "[crop, hflip]", "Transforms."});
    s.add({"data.std", T::kFloatList, "[0.5]", "A float list without a range."});
    s.add_section("ordering");
    s.add({"ordering.strategy", T::kString, "semantic", "Ordering.", {}, {}, {"raster", "semantic"}});
    s.add({"ordering.center_windows", T::kIntList, "[]", "Windows.", 1});
    s.add_section("pretrain", "A task section.");
    s.add({"pretrain.epochs", T::kInt, "10", "Epochs.", 1, 100000});
    s.add({"pretrain.batch_size", T::kInt, "256", "Batch.", 1});
    s.add({"pretrain.base_lr", T::kFloat, "0.0002", "Base lr.", 0.0, 10.0});
    s.add({"pretrain.min_lr", T::kFloat, "0.0", "Min lr.", 0.0, 10.0});
    s.add({"pretrain.betas", T::kFloatList, "[0.9, 0.95]", "Betas.", 0.0, 0.999999});
    s.add({"pretrain.ema", T::kBool, "false", "EMA."});
    s.rename("train", "pretrain");
    return s;
  }();
  return kSchema;
}

Config load(const std::string& path, const std::vector<std::string>& overrides = {}) {
  return Config::load(test_schema(), path, overrides);
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

std::string misuse_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::logic_error& e) {
    return e.what();
  }
  return "";
}

class ConfigFiles : public ::testing::Test {
 protected:
  void SetUp() override { fs::create_directories(tmp_.path() / "_base_"); }
  std::string write(const std::string& rel, const std::string& text) {
    auto p = tmp_.path() / rel;
    std::ofstream(p) << text;
    return p.string();
  }
  semaim::test::TempDir tmp_;
};

}  // namespace

TEST_F(ConfigFiles, BaseChainThenFileThenSetOverride) {
  write("_base_/model.yaml", "model:\n  name: tiny\n  head: linear\npretrain:\n  epochs: 3\n");
  write("_base_/sched.yaml", "pretrain:\n  epochs: 7\n  base_lr: 0.001\n");
  auto path =
      write("exp.yaml", "_base_: [_base_/model.yaml, _base_/sched.yaml]\npretrain:\n  batch_size: 64\n");
  Config cfg = load(path, {"pretrain.base_lr=0.5", "ordering.center_windows=[3, 5]"});
  EXPECT_EQ(cfg.get_string("model.name"), "tiny");
  EXPECT_EQ(cfg.get_string("model.head"), "linear");
  EXPECT_EQ(cfg.get_int("pretrain.epochs"), 7);  // the later base wins
  EXPECT_EQ(cfg.get_int("pretrain.batch_size"), 64);
  EXPECT_DOUBLE_EQ(cfg.get_float("pretrain.base_lr"), 0.5);
  EXPECT_EQ(cfg.get_ints("ordering.center_windows"), (std::vector<int64_t>{3, 5}));
  EXPECT_EQ(cfg.origin("pretrain.base_lr"), "--set");
  EXPECT_NE(cfg.origin("pretrain.epochs").find("sched.yaml"), std::string::npos);
  EXPECT_EQ(cfg.origin("run.seed"), "default");
  EXPECT_EQ(&cfg.schema(), &test_schema());
}

TEST_F(ConfigFiles, UnknownKeyNamesKeyFileAndClosestValidKey) {
  auto path = write("exp.yaml", "pretrain:\n  epoch: 3\n");
  std::string msg = error_of([&] { load(path); });
  EXPECT_NE(msg.find("exp.yaml"), std::string::npos) << msg;
  EXPECT_NE(msg.find("'pretrain.epoch'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("did you mean 'pretrain.epochs'"), std::string::npos) << msg;
}

TEST_F(ConfigFiles, UnknownSectionAndUnknownSetKeyAreErrors) {
  auto path = write("exp.yaml", "pretrian:\n  epochs: 3\n");
  EXPECT_NE(error_of([&] { load(path); }).find("'pretrian'"), std::string::npos);
  auto ok = write("ok.yaml", "pretrain:\n  epochs: 3\n");
  std::string msg = error_of([&] { load(ok, {"pretrain.bach_size=3"}); });
  EXPECT_NE(msg.find("--set"), std::string::npos) << msg;
  EXPECT_NE(msg.find("pretrain.batch_size"), std::string::npos) << msg;
  EXPECT_NE(error_of([&] { load(ok, {"novalue"}); }).find("key=value"), std::string::npos);
}

TEST_F(ConfigFiles, RenamedKeysAndSectionsNameTheirNewName) {
  auto ok = write("ok.yaml", "pretrain:\n  epochs: 3\n");
  std::string set = error_of([&] { load(ok, {"train.epochs=5"}); });
  EXPECT_NE(set.find("--set train.epochs=5"), std::string::npos) << set;
  EXPECT_NE(set.find("key 'train.epochs' was renamed to 'pretrain.epochs'"), std::string::npos) << set;
  auto old = write("old.yaml", "train:\n  epochs: 3\n");
  std::string file = error_of([&] { load(old); });
  EXPECT_NE(file.find("old.yaml"), std::string::npos) << file;
  EXPECT_NE(file.find("section 'train' was renamed to 'pretrain'"), std::string::npos) << file;
  // A misspelled key under the old name is looked up under the new one.
  std::string typo = error_of([&] { load(ok, {"train.epoch=5"}); });
  EXPECT_NE(typo.find("unknown key 'train.epoch' (did you mean 'pretrain.epochs'?)"), std::string::npos)
      << typo;
  EXPECT_EQ(test_schema().renamed("train.ema"), "pretrain.ema");
  EXPECT_EQ(test_schema().renamed("trainer.ema"), "");
}

TEST_F(ConfigFiles, WrongTypeAndOutOfRangeNameTheKey) {
  auto p1 = write("a.yaml", "pretrain:\n  epochs: many\n");
  std::string m1 = error_of([&] { load(p1); });
  EXPECT_NE(m1.find("pretrain.epochs"), std::string::npos) << m1;
  EXPECT_NE(m1.find("integer"), std::string::npos) << m1;
  auto p2 = write("b.yaml", "data:\n  hflip: 1.5\n");
  std::string m2 = error_of([&] { load(p2); });
  EXPECT_NE(m2.find("data.hflip"), std::string::npos) << m2;
  EXPECT_NE(m2.find("out of range [0, 1]"), std::string::npos) << m2;
  auto p3 = write("c.yaml", "ordering:\n  strategy: semantik\n");
  std::string m3 = error_of([&] { load(p3); });
  EXPECT_NE(m3.find("did you mean 'semantic'"), std::string::npos) << m3;
  auto p4 = write("d.yaml", "pretrain: 5\n");
  EXPECT_NE(error_of([&] { load(p4); }).find("section"), std::string::npos);
  auto p5 = write("e.yaml", "pretrain:\n  betas: 0.9\n");
  EXPECT_NE(error_of([&] { load(p5); }).find("list"), std::string::npos);
}

TEST_F(ConfigFiles, SyntaxErrorsMissingFilesAndCyclesAreClearErrors) {
  auto bad = write("bad.yaml", "pretrain:\n  epochs: [1, 2\n");
  std::string m = error_of([&] { load(bad); });
  EXPECT_NE(m.find("bad.yaml"), std::string::npos) << m;
  EXPECT_NE(m.find("line"), std::string::npos) << m;
  EXPECT_NE(error_of([&] { load(tmp_.file("nope.yaml")); }).find("no such config file"), std::string::npos);
  write("x.yaml", "_base_: y.yaml\n");
  auto y = write("y.yaml", "_base_: x.yaml\n");
  EXPECT_NE(error_of([&] { load(y); }).find("cycle"), std::string::npos);
  auto missing_base = write("m.yaml", "_base_: gone.yaml\n");
  EXPECT_NE(error_of([&] { load(missing_base); }).find("gone.yaml"), std::string::npos);
}

TEST_F(ConfigFiles, ResolvedYamlReloadsToTheSameValues) {
  auto path = write("exp.yaml", "pretrain:\n  epochs: 4\n  betas: [0.8, 0.9]\nrun:\n  name: \"x y\"\n");
  Config a = load(path, {"pretrain.min_lr=1e-7"});
  auto resolved = write("resolved.yaml", a.to_yaml());
  Config b = load(resolved);
  EXPECT_EQ(a.to_yaml(), b.to_yaml());
  EXPECT_DOUBLE_EQ(b.get_float("pretrain.min_lr"), 1e-7);
  EXPECT_EQ(b.get_string("run.name"), "x y");
  EXPECT_EQ(b.get_strings("data.transforms"), (std::vector<std::string>{"crop", "hflip"}));
}

TEST(ConfigSchema, DefaultsValidateAndCarryTheirOrigin) {
  Config d = Config::defaults(test_schema());
  EXPECT_EQ(d.get_string("ordering.strategy"), "semantic");
  EXPECT_EQ(d.get_floats("pretrain.betas"), (std::vector<double>{0.9, 0.95}));
  EXPECT_FALSE(d.get_bool("pretrain.ema"));
  EXPECT_EQ(d.origin("pretrain.epochs"), "default");
  EXPECT_EQ(d.path(), "");
  EXPECT_EQ(test_schema().find("pretrain.epochs")->default_yaml, "10");
  EXPECT_EQ(test_schema().find("train.epochs"), nullptr);
}

TEST(ConfigSchema, DuplicateKeysAndKeysOutsideTheirSectionAreRejected) {
  Schema s;
  s.add_section("a");
  s.add({"a.x", T::kInt, "1", "X."});
  EXPECT_NE(misuse_of([&] {
              s.add({"a.x", T::kInt, "2", "X again."});
            }).find("'a.x' is registered twice"),
            std::string::npos);
  EXPECT_NE(misuse_of([&] {
              s.add({"b.y", T::kInt, "1", "Y."});
            }).find("outside every declared section"),
            std::string::npos);
  EXPECT_NE(misuse_of([&] {
              s.add({"a.y.z", T::kInt, "1", "Nested."});
            }).find("not section.name"),
            std::string::npos);
  EXPECT_NE(misuse_of([&] {
              s.add({"a.", T::kInt, "1", "No leaf."});
            }).find("not section.name"),
            std::string::npos);
  EXPECT_NE(misuse_of([&] { s.add({"a.w", T::kInt, "1", ""}); }).find("no documentation"), std::string::npos);
  EXPECT_NE(misuse_of([&] { s.add_section("a"); }).find("declared twice"), std::string::npos);
  EXPECT_NE(misuse_of([&] { s.rename("old", "nowhere"); }).find("not registered"), std::string::npos);
  EXPECT_NE(misuse_of([&] { s.rename("a.x", "a"); }).find("still exists"), std::string::npos);
  EXPECT_EQ(s.keys(), (std::vector<std::string>{"a.x"}));
}

TEST(ConfigSchema, SectionsKeepRegistrationOrderAndGroupTheirKeys) {
  Schema s;
  s.add_section("zeta");
  s.add_section("alpha");
  s.add({"alpha.one", T::kInt, "1", "One."});
  s.add({"zeta.two", T::kInt, "2", "Two."});
  s.add({"alpha.three", T::kBool, "true", "Three."});
  EXPECT_EQ(s.keys(), (std::vector<std::string>{"zeta.two", "alpha.one", "alpha.three"}));
  EXPECT_TRUE(s.has_section("alpha"));
  EXPECT_FALSE(s.has_section("alpha.one"));
  EXPECT_EQ(Config::defaults(s).to_yaml(), "zeta:\n  two: 2\nalpha:\n  one: 1\n  three: true\n");
}

TEST(ConfigSchema, MarkdownOfASmallSchema) {
  Schema s;
  s.add_section("task", "What the task does.");
  s.add({"task.epochs", T::kInt, "10", "Epochs.", 1});
  s.add({"task.lr", T::kFloat, "0.001", "Rate.", 0.0, 1e30});
  s.add({"task.pool", T::kString, "mean", "Pooling.", {}, {}, {"cls", "mean"}});
  s.add_section("io");
  s.add({"io.dirs", T::kStringList, "[a, b]", "Dirs."});
  const std::string md = s.markdown();
  const std::string tables =
      "\n## task\n\nWhat the task does.\n\n| key | type | default | meaning |\n|---|---|---|---|\n"
      "| `task.epochs` | int in [1, inf] | `10` | Epochs. |\n"
      "| `task.lr` | float in [0, 1e+30] | `0.001` | Rate. |\n"
      "| `task.pool` | one of `cls`, `mean` | `mean` | Pooling. |\n"
      "\n## io\n\n| key | type | default | meaning |\n|---|---|---|---|\n"
      "| `io.dirs` | string list | `[a, b]` | Dirs. |\n";
  ASSERT_GE(md.size(), tables.size());
  EXPECT_EQ(md.substr(md.size() - tables.size()), tables) << md;
  EXPECT_EQ(md.rfind("# Configuration reference\n", 0), 0u) << md;
}

TEST(ConfigClosest, FindsNearbyKeysAndRejectsFarOnes) {
  std::vector<std::string> c{"pretrain.epochs", "pretrain.batch_size", "model.depth"};
  EXPECT_EQ(semaim::config::closest_match("pretrain.epoch", c), "pretrain.epochs");
  EXPECT_EQ(semaim::config::closest_match("model.dpeth", c), "model.depth");
  EXPECT_EQ(semaim::config::closest_match("zzzzzzzzzzzzzzzzzzzz", c), "");
}

// Bad-input defects of the loader (issue 21): non-finite floats, base-0 integers, empty files, duplicate
// keys, a `_base_` that is a directory.

TEST_F(ConfigFiles, NonFiniteFloatsAreRejectedWithOrWithoutARange) {
  auto ok = write("ok.yaml", "pretrain:\n  epochs: 3\n");
  for (const std::string set :
       {"pretrain.base_lr=nan", "pretrain.base_lr=inf", "pretrain.base_lr=-inf", "run.timeout_seconds=nan",
        "run.timeout_seconds=.inf", "run.timeout_seconds=1e999", "data.std=[0.5, inf]",
        "pretrain.betas=[nan, 0.9]"}) {
    const std::string msg = error_of([&] { load(ok, {set}); });
    const std::string key = set.substr(0, set.find('='));
    const std::string value = set.substr(set.find('=') + 1);
    EXPECT_NE(msg.find("'" + key + "'"), std::string::npos) << set << ": " << msg;
    EXPECT_NE(msg.find("not a finite number"), std::string::npos) << set << ": " << msg;
    if (value[0] != '[') EXPECT_NE(msg.find("'" + value + "'"), std::string::npos) << set << ": " << msg;
  }
  for (const std::string text : {"run:\n  timeout_seconds: .nan\n", "run:\n  timeout_seconds: -.Inf\n",
                                 "data:\n  std: [.inf]\n", "pretrain:\n  min_lr: .NaN\n"}) {
    auto path = write("nf.yaml", text);
    const std::string msg = error_of([&] { load(path); });
    EXPECT_NE(msg.find("nf.yaml"), std::string::npos) << text << msg;
    EXPECT_NE(msg.find("not a finite number"), std::string::npos) << text << msg;
  }
  // Finite values in every notation still load.
  Config c = load(ok, {"run.timeout_seconds=-2.5e-3", "data.std=[.5, 1, +2.0E1]"});
  EXPECT_DOUBLE_EQ(c.get_float("run.timeout_seconds"), -2.5e-3);
  EXPECT_EQ(c.get_floats("data.std"), (std::vector<double>{0.5, 1.0, 20.0}));
  EXPECT_NE(error_of([&] { load(ok, {"run.timeout_seconds=0x1p3"}); }).find("expected a number"),
            std::string::npos);
}

TEST_F(ConfigFiles, IntegersAreBaseTenInFilesAndOverrides) {
  auto ok = write("ok.yaml", "pretrain:\n  epochs: 3\n");
  EXPECT_EQ(load(ok, {"pretrain.epochs=010"}).get_int("pretrain.epochs"), 10);
  EXPECT_EQ(load(ok, {"pretrain.epochs=+7"}).get_int("pretrain.epochs"), 7);
  EXPECT_EQ(load(ok, {"ordering.center_windows=[03, 9]"}).get_ints("ordering.center_windows"),
            (std::vector<int64_t>{3, 9}));
  auto zero = write("zero.yaml", "pretrain:\n  epochs: 010\n");
  EXPECT_EQ(load(zero).get_int("pretrain.epochs"), 10);
  // Hexadecimal and octal prefixes are errors from a file and from --set alike.
  for (const std::string v : {"0x10", "0o10", "10abc", "1.5", "1e3", "+-3", "99999999999999999999"}) {
    const std::string set = error_of([&] { load(ok, {"pretrain.epochs=" + v}); });
    EXPECT_NE(set.find("'pretrain.epochs'"), std::string::npos) << v << ": " << set;
    EXPECT_NE(set.find("'" + v + "'"), std::string::npos) << v << ": " << set;
    auto path = write("int.yaml", "pretrain:\n  epochs: " + v + "\n");
    const std::string file = error_of([&] { load(path); });
    EXPECT_NE(file.find("int.yaml"), std::string::npos) << v << ": " << file;
    EXPECT_NE(file.find("base-10 integer"), std::string::npos) << v << ": " << file;
  }
}

TEST_F(ConfigFiles, EmptyOrCommentOnlyFileIsAnErrorNamingTheFile) {
  for (const std::string text : {"", "# nothing but a comment\n\n", "~\n"}) {
    auto path = write("empty.yaml", text);
    const std::string msg = error_of([&] { load(path); });
    EXPECT_NE(msg.find("empty.yaml"), std::string::npos) << msg;
    EXPECT_NE(msg.find("empty config"), std::string::npos) << msg;
  }
  write("_base_/blank.yaml", "# to be filled\n");
  auto child = write("child.yaml", "_base_: _base_/blank.yaml\npretrain:\n  epochs: 3\n");
  EXPECT_NE(error_of([&] { load(child); }).find("blank.yaml: empty config"), std::string::npos);
  // An explicit empty mapping is the way to ask for the defaults.
  auto braces = write("braces.yaml", "{}\n");
  EXPECT_EQ(load(braces).to_yaml(), Config::defaults(test_schema()).to_yaml());
}

TEST_F(ConfigFiles, DuplicateKeysNameTheFileTheKeyAndTheLine) {
  auto leaf = write("dup.yaml", "pretrain:\n  epochs: 1\n  batch_size: 8\n  epochs: 2\n");
  const std::string m1 = error_of([&] { load(leaf); });
  EXPECT_NE(m1.find("dup.yaml"), std::string::npos) << m1;
  EXPECT_NE(m1.find("duplicate key 'pretrain.epochs' at line 4"), std::string::npos) << m1;
  auto section = write("dup2.yaml", "pretrain:\n  epochs: 1\nrun:\n  seed: 2\npretrain:\n  batch_size: 8\n");
  const std::string m2 = error_of([&] { load(section); });
  EXPECT_NE(m2.find("dup2.yaml"), std::string::npos) << m2;
  EXPECT_NE(m2.find("duplicate key 'pretrain' at line 5"), std::string::npos) << m2;
  write("_base_/b.yaml", "pretrain:\n  epochs: 1\n");
  auto base = write("dup3.yaml", "_base_: _base_/b.yaml\n_base_: _base_/b.yaml\n");
  EXPECT_NE(error_of([&] { load(base); }).find("duplicate key '_base_' at line 2"), std::string::npos);
  // The same key in two files of a chain is layering, not a duplicate.
  auto layered = write("layered.yaml", "_base_: _base_/b.yaml\npretrain:\n  epochs: 5\n");
  EXPECT_EQ(load(layered).get_int("pretrain.epochs"), 5);
}

TEST_F(ConfigFiles, BaseOrConfigThatIsADirectoryIsAnErrorNamingIt) {
  auto dir_base = write("d.yaml", "_base_: _base_\n");
  const std::string m = error_of([&] { load(dir_base); });
  EXPECT_NE(m.find("_base_"), std::string::npos) << m;
  EXPECT_NE(m.find("is a directory"), std::string::npos) << m;
  const std::string top = error_of([&] { load((tmp_.path() / "_base_").string()); });
  EXPECT_NE(top.find("_base_"), std::string::npos) << top;
  EXPECT_NE(top.find("is a directory"), std::string::npos) << top;
}

TEST_F(ConfigFiles, NonScalarKeysAreErrorsNamingTheFile) {
  auto path = write("k.yaml", "? [a, b]\n: 1\n");
  const std::string m = error_of([&] { load(path); });
  EXPECT_NE(m.find("k.yaml"), std::string::npos) << m;
}
