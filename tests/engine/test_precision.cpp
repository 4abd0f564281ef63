// `<section>.precision`: fp32 / bf16 as configured, auto from the CPU's bf16 units (CPUID, held against the
// kernel's /proc/cpuinfo flags), the resolved choice in TrainSettings, and the old `bf16` key's rename error.
#include <gtest/gtest.h>

#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include "semaim/config/config.h"
#include "semaim/core/cpu_features.h"
#include "semaim/core/errors.h"
#include "semaim/engine/config_keys.h"
#include "semaim/engine/precision.h"
#include "semaim/engine/settings.h"

using semaim::config::Config;
using semaim::engine::resolve_precision;

namespace {

// The flags of the first processor in /proc/cpuinfo; empty when the file is absent (not Linux).
std::set<std::string> proc_cpu_flags() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("flags", 0) != 0) continue;
    std::istringstream words(line.substr(line.find(':') + 1));
    std::set<std::string> flags;
    for (std::string w; words >> w;) flags.insert(w);
    return flags;
  }
  return {};
}

// run.* and three task sections with the shared training keys (the tasks add their own keys on top).
const semaim::config::Schema& schema() {
  static const semaim::config::Schema s = [] {
    semaim::config::Schema x;
    semaim::engine::register_config_keys(x);
    for (const char* section : {"pretrain", "finetune", "detect"}) {
      x.add_section(section);
      semaim::engine::register_training_keys(x, section, semaim::engine::TrainingKeyDefaults{});
    }
    return x;
  }();
  return s;
}

}  // namespace

TEST(Precision, ConfiguredValuesAreTakenAsGiven) {
  const c10::Device cpu(c10::kCPU);
  EXPECT_FALSE(resolve_precision("fp32", cpu).bf16);
  EXPECT_TRUE(resolve_precision("bf16", cpu).bf16);
  EXPECT_EQ(resolve_precision("fp32", cpu).reason, "fp32 (configured)");
  EXPECT_THROW(resolve_precision("fp16", cpu), std::logic_error);
}

TEST(Precision, CpuFeaturesAgreeWithTheKernelsFlags) {
  const auto flags = proc_cpu_flags();
  if (flags.empty()) GTEST_SKIP() << "no /proc/cpuinfo flags line to compare with";
  const semaim::core::CpuFeatures f = semaim::core::cpu_features();
  EXPECT_EQ(f.avx512_bf16, flags.count("avx512_bf16") == 1);
  EXPECT_EQ(f.amx_bf16, flags.count("amx_bf16") == 1);
}

TEST(Precision, AutoOnTheCpuIsBf16ExactlyWhenItHasNativeBf16Products) {
  const semaim::core::CpuFeatures f = semaim::core::cpu_features();
  const auto choice = resolve_precision("auto", c10::Device(c10::kCPU));
  EXPECT_EQ(choice.bf16, f.native_bf16_matmul());
  EXPECT_NE(choice.reason.find("auto: CPU has " + f.describe()), std::string::npos) << choice.reason;
}

TEST(Precision, TrainSettingsCarryTheResolvedChoiceForEverySection) {
  Config c = Config::defaults(schema());
  c.apply_overrides({"run.device=cpu", "pretrain.precision=bf16", "finetune.precision=fp32"});
  const auto pre = semaim::engine::TrainSettings::read(c, "pretrain");
  EXPECT_EQ(pre.precision, "bf16");
  EXPECT_TRUE(pre.bf16);
  const auto ft = semaim::engine::TrainSettings::read(c, "finetune");
  EXPECT_FALSE(ft.bf16);
  const auto probe = semaim::engine::TrainSettings::read(c, "detect");
  EXPECT_EQ(probe.precision, "auto");
  EXPECT_EQ(probe.bf16, semaim::core::cpu_features().native_bf16_matmul());
  EXPECT_FALSE(probe.precision_reason.empty());
}

TEST(Precision, TheOldBf16KeyNamesItsReplacement) {
  Config c = Config::defaults(schema());
  try {
    c.apply_overrides({"detect.bf16=true"});
    FAIL() << "detect.bf16 was accepted";
  } catch (const semaim::InputError& e) {
    EXPECT_NE(std::string(e.what()).find("renamed to 'detect.precision'"), std::string::npos) << e.what();
  }
  EXPECT_THROW(c.apply_overrides({"pretrain.precision=fp16"}), semaim::InputError);
}
