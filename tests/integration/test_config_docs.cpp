// The program's full schema (tasks::schema(), every area's keys): docs/configs.md is its generated reference,
// every default validates, the pretraining defaults are the ones SemAIM pretraining has always run with, and
// the old train.* keys point to pretrain.*.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <sstream>

#include "semaim/config/config.h"
#include "semaim/core/errors.h"
#include "semaim/ordering/ordering.h"
#include "semaim/tasks/schema.h"
#include "semaim_paths.h"

using semaim::config::Config;

TEST(ConfigDocs, DocsConfigsMdIsTheGeneratedReference) {
  std::ifstream f(std::string(SEMAIM_SOURCE_DIR) + "/docs/configs.md");
  ASSERT_TRUE(f.good()) << "docs/configs.md is missing; run `build/semaim config --docs > docs/configs.md`";
  std::stringstream ss;
  ss << f.rdbuf();
  EXPECT_EQ(ss.str(), semaim::tasks::schema().markdown())
      << "docs/configs.md is stale; run `build/semaim config --docs > docs/configs.md`";
}

TEST(ConfigDocs, EveryKeyIsDocumentedAndEveryDefaultValidates) {
  const auto& schema = semaim::tasks::schema();
  Config d = Config::defaults(schema);
  for (const auto& spec : schema.specs()) {
    EXPECT_EQ(std::count(spec.key.begin(), spec.key.end(), '.'), 1) << spec.key;
    EXPECT_FALSE(spec.doc.empty()) << spec.key;
    EXPECT_EQ(d.origin(spec.key), "default") << spec.key;
  }
  for (const char* section :
       {"run", "checkpoint", "log", "model", "target", "data", "ordering", "dist", "pretrain", "linprobe"}) {
    EXPECT_TRUE(schema.has_section(section)) << section;
  }
  EXPECT_EQ(d.get_string("ordering.strategy"), "semantic");
}

TEST(ConfigDocs, OrderingChoicesAreTheStrategyTable) {
  const auto* spec = semaim::tasks::schema().find("ordering.strategy");
  ASSERT_NE(spec, nullptr);
  EXPECT_EQ(spec->choices, semaim::ordering::strategy_names());
  for (const auto& name : semaim::ordering::strategy_names()) {
    EXPECT_NE(spec->doc.find("`" + name + "`"), std::string::npos) << name;
  }
}

// The values pretraining read from train.* before the keys moved; a change here changes every run's numbers.
TEST(ConfigDocs, PretrainDefaultsAreTheFormerTrainDefaults) {
  Config d = Config::defaults(semaim::tasks::schema());
  const std::map<std::string, int64_t> ints = {{"epochs", 10},
                                               {"max_steps", 0},
                                               {"batch_size", 256},
                                               {"accum_steps", 1},
                                               {"max_consecutive_skips", 10}};
  for (const auto& [k, v] : ints) EXPECT_EQ(d.get_int("pretrain." + k), v) << k;
  const std::map<std::string, double> floats = {
      {"base_lr", 0.0002},    {"lr", 0.0},   {"min_lr", 0.0},    {"warmup_epochs", 1.0},
      {"weight_decay", 0.05}, {"eps", 1e-8}, {"clip_grad", 3.0}, {"ema_decay", 0.999}};
  for (const auto& [k, v] : floats) EXPECT_EQ(d.get_float("pretrain." + k), v) << k;
  EXPECT_EQ(d.get_floats("pretrain.betas"), (std::vector<double>{0.9, 0.95}));
  EXPECT_EQ(d.get_string("pretrain.precision"), "auto");
  EXPECT_FALSE(d.get_bool("pretrain.ema"));
}

TEST(ConfigDocs, TrainKeysNameTheirPretrainKey) {
  Config d = Config::defaults(semaim::tasks::schema());
  try {
    d.apply_overrides({"train.batch_size=32"});
    FAIL() << "train.batch_size was accepted";
  } catch (const semaim::InputError& e) {
    EXPECT_NE(std::string(e.what()).find("key 'train.batch_size' was renamed to 'pretrain.batch_size'"),
              std::string::npos)
        << e.what();
  }
}
