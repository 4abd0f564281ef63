// Config layering (_base_, --set), strict validation and the generated reference in docs/configs.md.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>

#include <unistd.h>

#include "semaim/config/config.h"
#include "semaim/config/errors.h"

namespace fs = std::filesystem;
using semaim::InputError;
using semaim::config::Config;

namespace {

class ConfigFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("semaim_cfg_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_ / "_base_");
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string write(const std::string& rel, const std::string& text) {
    auto p = dir_ / rel;
    std::ofstream(p) << text;
    return p.string();
  }
  std::string error_of(const std::function<void()>& f) {
    try {
      f();
    } catch (const InputError& e) {
      return e.what();
    }
    return "";
  }
  fs::path dir_;
};

}  // namespace

TEST_F(ConfigFiles, BaseChainThenFileThenSetOverride) {
  write("_base_/model.yaml", "model:\n  name: aim_tiny_patch16\n  head: linear\ntrain:\n  epochs: 3\n");
  write("_base_/sched.yaml", "train:\n  epochs: 7\n  base_lr: 0.001\n");
  auto path = write("exp.yaml", "_base_: [_base_/model.yaml, _base_/sched.yaml]\ntrain:\n  batch_size: 64\n");
  Config cfg = Config::load(path, {"train.base_lr=0.5", "ordering.center_windows=[3, 5]"});
  EXPECT_EQ(cfg.get_string("model.name"), "aim_tiny_patch16");
  EXPECT_EQ(cfg.get_string("model.head"), "linear");
  EXPECT_EQ(cfg.get_int("train.epochs"), 7);  // the later base wins
  EXPECT_EQ(cfg.get_int("train.batch_size"), 64);
  EXPECT_DOUBLE_EQ(cfg.get_float("train.base_lr"), 0.5);
  EXPECT_EQ(cfg.get_ints("ordering.center_windows"), (std::vector<int64_t>{3, 5}));
  EXPECT_EQ(cfg.origin("train.base_lr"), "--set");
  EXPECT_NE(cfg.origin("train.epochs").find("sched.yaml"), std::string::npos);
  EXPECT_EQ(cfg.origin("run.seed"), "default");
}

TEST_F(ConfigFiles, UnknownKeyNamesKeyFileAndClosestValidKey) {
  auto path = write("exp.yaml", "train:\n  epoch: 3\n");
  std::string msg = error_of([&] { Config::load(path); });
  EXPECT_NE(msg.find("exp.yaml"), std::string::npos) << msg;
  EXPECT_NE(msg.find("'train.epoch'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("did you mean 'train.epochs'"), std::string::npos) << msg;
}

TEST_F(ConfigFiles, UnknownSectionAndUnknownSetKeyAreErrors) {
  auto path = write("exp.yaml", "trian:\n  epochs: 3\n");
  EXPECT_NE(error_of([&] { Config::load(path); }).find("'trian'"), std::string::npos);
  auto ok = write("ok.yaml", "train:\n  epochs: 3\n");
  std::string msg = error_of([&] { Config::load(ok, {"train.bach_size=3"}); });
  EXPECT_NE(msg.find("--set"), std::string::npos) << msg;
  EXPECT_NE(msg.find("train.batch_size"), std::string::npos) << msg;
  EXPECT_NE(error_of([&] { Config::load(ok, {"novalue"}); }).find("key=value"), std::string::npos);
}

TEST_F(ConfigFiles, WrongTypeAndOutOfRangeNameTheKey) {
  auto p1 = write("a.yaml", "train:\n  epochs: many\n");
  std::string m1 = error_of([&] { Config::load(p1); });
  EXPECT_NE(m1.find("train.epochs"), std::string::npos) << m1;
  EXPECT_NE(m1.find("integer"), std::string::npos) << m1;
  auto p2 = write("b.yaml", "data:\n  hflip: 1.5\n");
  std::string m2 = error_of([&] { Config::load(p2); });
  EXPECT_NE(m2.find("data.hflip"), std::string::npos) << m2;
  EXPECT_NE(m2.find("out of range"), std::string::npos) << m2;
  auto p3 = write("c.yaml", "ordering:\n  strategy: semantik\n");
  std::string m3 = error_of([&] { Config::load(p3); });
  EXPECT_NE(m3.find("did you mean 'semantic'"), std::string::npos) << m3;
  auto p4 = write("d.yaml", "train: 5\n");
  EXPECT_NE(error_of([&] { Config::load(p4); }).find("section"), std::string::npos);
  auto p5 = write("e.yaml", "train:\n  betas: 0.9\n");
  EXPECT_NE(error_of([&] { Config::load(p5); }).find("list"), std::string::npos);
}

TEST_F(ConfigFiles, SyntaxErrorsMissingFilesAndCyclesAreClearErrors) {
  auto bad = write("bad.yaml", "train:\n  epochs: [1, 2\n");
  std::string m = error_of([&] { Config::load(bad); });
  EXPECT_NE(m.find("bad.yaml"), std::string::npos) << m;
  EXPECT_NE(m.find("line"), std::string::npos) << m;
  EXPECT_NE(error_of([&] { Config::load((dir_ / "nope.yaml").string()); }).find("no such config file"),
            std::string::npos);
  write("x.yaml", "_base_: y.yaml\n");
  auto y = write("y.yaml", "_base_: x.yaml\n");
  EXPECT_NE(error_of([&] { Config::load(y); }).find("cycle"), std::string::npos);
  auto missing_base = write("m.yaml", "_base_: gone.yaml\n");
  EXPECT_NE(error_of([&] { Config::load(missing_base); }).find("gone.yaml"), std::string::npos);
}

TEST_F(ConfigFiles, ResolvedYamlReloadsToTheSameValues) {
  auto path = write("exp.yaml", "train:\n  epochs: 4\n  betas: [0.8, 0.9]\nrun:\n  name: \"x y\"\n");
  Config a = Config::load(path, {"train.min_lr=1e-7"});
  auto resolved = write("resolved.yaml", a.to_yaml());
  Config b = Config::load(resolved);
  EXPECT_EQ(a.to_yaml(), b.to_yaml());
  EXPECT_DOUBLE_EQ(b.get_float("train.min_lr"), 1e-7);
  EXPECT_EQ(b.get_string("run.name"), "x y");
}

TEST(ConfigSchema, EveryKeyIsSectionDotNameAndDefaultsValidate) {
  Config d = Config::defaults();
  for (const auto& spec : semaim::config::schema()) {
    EXPECT_EQ(std::count(spec.key.begin(), spec.key.end(), '.'), 1) << spec.key;
    EXPECT_FALSE(spec.doc.empty()) << spec.key;
  }
  EXPECT_EQ(d.get_string("ordering.strategy"), "semantic");
}

TEST(ConfigSchema, DocsConfigsMdIsTheGeneratedReference) {
  std::ifstream f(std::string(SEMAIM_SOURCE_DIR) + "/docs/configs.md");
  ASSERT_TRUE(f.good()) << "docs/configs.md is missing; run `semaim config --docs > docs/configs.md`";
  std::stringstream ss;
  ss << f.rdbuf();
  EXPECT_EQ(ss.str(), semaim::config::schema_markdown())
      << "docs/configs.md is stale; run `build/semaim config --docs > docs/configs.md`";
}

TEST(ConfigClosest, FindsNearbyKeysAndRejectsFarOnes) {
  std::vector<std::string> c{"train.epochs", "train.batch_size", "model.depth"};
  EXPECT_EQ(semaim::config::closest_match("train.epoch", c), "train.epochs");
  EXPECT_EQ(semaim::config::closest_match("model.dpeth", c), "model.depth");
  EXPECT_EQ(semaim::config::closest_match("zzzzzzzzzzzzzzzzzzzz", c), "");
}
