// Batch-mode mixup / cutmix against timm's Mixup at fixed lambdas and boxes
// (tests/data/timm_mixup_reference.py): mixed images, soft targets, the corrected lambda, rand_bbox and
// rand_bbox_minmax; the statistics of the random draws; reproducibility on the loader's worker threads; input
// errors.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "input_error.h"
#include "run_command.h"
#include "semaim/core/errors.h"
#include "semaim/core/rng.h"
#include "semaim/data/idx.h"
#include "semaim/data/mixup.h"
#include "semaim_paths.h"
#include "temp_dir.h"

namespace d = semaim::data;
using nlohmann::json;
using semaim::test::expect_input_error;

namespace {

constexpr int64_t kH = 12, kW = 10, kClasses = 5;

// A fixed case for timm: the raw lambda timm's draw returns, cutmix or not, the box its box function returns.
struct Case {
  std::string name;
  double lam;
  bool cutmix;
  d::CutBox box;
  bool correct_lam = true;
  bool minmax = false;
  double smoothing = 0.1;
};

const std::vector<Case> kCases = {
    {"mixup", 0.3, false, {}},
    {"mixup_no_smoothing", 0.55, false, {}, true, false, 0.0},
    {"cutmix_corrected", 0.6, true, {0, 5, 3, 9}},
    {"cutmix_uncorrected", 0.6, true, {2, 8, 1, 5}, false},
    {"cutmix_minmax", 0.42, true, {1, 7, 2, 9}, false, true},
    {"unmixed", 1.0, false, {}, true, false, 0.2},
};

// rand_bbox at fixed centres: inside, clipped at corners, a box too small to have area, the whole image.
struct BboxCase {
  std::string name;
  double lam;
  int64_t cy, cx;
};
const std::vector<BboxCase> kBboxes = {
    {"centre", 0.3, 6, 5}, {"corner", 0.6, 0, 9}, {"far_corner", 0.05, 11, 0},
    {"tiny", 0.999, 4, 4}, {"whole", 0.0, 3, 7},  {"odd", 0.5, 7, 2},
};
constexpr std::array<double, 2> kMinmax{0.2, 0.8};
constexpr int64_t kMinmaxH = 32, kMinmaxW = 24, kMinmaxDraws = 3000;

at::Tensor test_images() {
  at::manual_seed(11);
  return at::randn({6, 3, kH, kW});
}
at::Tensor test_labels() { return at::tensor({0, 3, 1, 4, 2, 3}, at::kLong); }

json flat(const at::Tensor& t) {
  const at::Tensor c = t.contiguous().to(at::kDouble);
  return std::vector<double>(c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
}
at::Tensor from_json(const json& values, at::IntArrayRef shape) {
  return at::tensor(values.get<std::vector<double>>(), at::kDouble).to(at::kFloat).reshape(shape);
}

json to_json(const d::CutBox& b) { return {b.y0, b.y1, b.x0, b.x1}; }

// The lambda timm hands mixup_target for a case.
double final_lam(const Case& c) {
  return c.cutmix && (c.correct_lam || c.minmax) ? d::box_lam(c.box, kH, kW) : c.lam;
}

// Runs timm once for the suite; tests skip with the reason when the venv or timm is missing.
class MixupTimm : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!std::filesystem::exists(SEMAIM_PYTHON)) {
      skip_ = std::string("no venv python at ") + SEMAIM_PYTHON + " (run tools/setup.sh)";
      return;
    }
    json in;
    const at::Tensor images = test_images();
    in["images"] = {{"shape", images.sizes().vec()}, {"data", flat(images)}};
    const at::Tensor labels = test_labels();
    in["labels"] =
        std::vector<int64_t>(labels.data_ptr<int64_t>(), labels.data_ptr<int64_t>() + labels.numel());
    in["cases"] = json::array();
    for (const auto& c : kCases)
      in["cases"].push_back({{"name", c.name},
                             {"lam", c.lam},
                             {"cutmix", c.cutmix},
                             {"box", to_json(c.box)},
                             {"minmax", c.minmax ? json(kMinmax) : json(nullptr)},
                             {"correct_lam", c.correct_lam},
                             {"smoothing", c.smoothing},
                             {"num_classes", kClasses}});
    in["bboxes"] = json::array();
    for (const auto& b : kBboxes)
      in["bboxes"].push_back(
          {{"name", b.name}, {"h", kH}, {"w", kW}, {"lam", b.lam}, {"cy", b.cy}, {"cx", b.cx}});
    in["minmax"] = json::array({{{"name", "sides"},
                                 {"h", kMinmaxH},
                                 {"w", kMinmaxW},
                                 {"minmax", kMinmax},
                                 {"draws", kMinmaxDraws}}});
    const semaim::test::TempDir tmp;
    const std::string in_path = tmp.file("in.json"), out_path = tmp.file("out.json");
    std::ofstream(in_path) << in.dump();
    const auto r = semaim::testing::run_command(std::string("'") + SEMAIM_PYTHON + "' '" + SEMAIM_SOURCE_DIR +
                                                "/tests/data/timm_mixup_reference.py' '" + in_path + "' '" +
                                                out_path + "'");
    if (r.exit_code == 3) skip_ = "timm is not importable in the venv: " + r.output;
    if (r.exit_code != 0 && r.exit_code != 3)
      failure_ = "timm_mixup_reference.py exited " + std::to_string(r.exit_code) + ": " + r.output;
    if (r.exit_code == 0) ref_ = json::parse(std::ifstream(out_path));
  }
  void SetUp() override {
    if (!skip_.empty()) GTEST_SKIP() << skip_;
    ASSERT_TRUE(failure_.empty()) << failure_;
  }
  static const json& ref(const std::string& key) {
    EXPECT_TRUE(ref_.contains(key)) << "timm produced no " << key;
    return ref_[key];
  }

  static inline std::string skip_, failure_;
  static inline json ref_;
};

}  // namespace

TEST_F(MixupTimm, MixedImagesAndSoftTargetsEqualTimmAtFixedLambdasAndBoxes) {
  for (const auto& c : kCases) {
    SCOPED_TRACE(c.name);
    at::Tensor images = test_images();
    const at::Tensor before = images.clone();
    const d::MixParams p{final_lam(c), c.cutmix, c.box};
    const at::Tensor soft = d::mix_batch(images, test_labels(), p, c.smoothing, kClasses);
    EXPECT_DOUBLE_EQ(p.lam, ref("lam." + c.name).get<double>());
    EXPECT_TRUE(at::equal(images, from_json(ref("images." + c.name), images.sizes())))
        << (images - from_json(ref("images." + c.name), images.sizes())).abs().max();
    ASSERT_EQ(soft.sizes(), at::IntArrayRef({6, kClasses}));
    EXPECT_EQ(soft.scalar_type(), at::kFloat);
    EXPECT_TRUE(at::equal(soft, from_json(ref("soft." + c.name), soft.sizes())))
        << soft << from_json(ref("soft." + c.name), soft.sizes());
    EXPECT_TRUE(at::allclose(soft.sum(1), at::ones({6})));
    if (c.lam == 1.0) EXPECT_TRUE(at::equal(images, before));
  }
}

TEST_F(MixupTimm, CutmixBoxGeometryEqualsTimmRandBbox) {
  for (const auto& b : kBboxes) {
    SCOPED_TRACE(b.name);
    EXPECT_EQ(to_json(d::bbox_at(kH, kW, b.lam, b.cy, b.cx)), ref("bbox." + b.name));
  }
  // The boxes are clipped: the corner case is cut, the whole-image box covers everything, a tiny lam has
  // none.
  EXPECT_EQ(d::bbox_at(kH, kW, 0.0, 3, 7).area(), kH * kW - 3 * kW - 2 * kH + 6);
  EXPECT_EQ(d::bbox_at(kH, kW, 0.999, 4, 4).area(), 0);
}

TEST_F(MixupTimm, MinmaxBoxesCoverTheSameSidesAndPositionsAsTimm) {
  // The draws differ from numpy's, so the sets of sides and the ranges of positions are compared.
  std::set<int64_t> timm_h, timm_w, ours_h, ours_w;
  int64_t timm_max_y = 0, timm_max_x = 0, ours_max_y = 0, ours_max_x = 0;
  for (const auto& box : ref("minmax.sides")) {
    timm_h.insert(box[1].get<int64_t>() - box[0].get<int64_t>());
    timm_w.insert(box[3].get<int64_t>() - box[2].get<int64_t>());
    timm_max_y = std::max(timm_max_y, box[1].get<int64_t>());
    timm_max_x = std::max(timm_max_x, box[3].get<int64_t>());
  }
  std::mt19937_64 rng(3);
  for (int64_t i = 0; i < kMinmaxDraws; ++i) {
    const d::CutBox b = d::rand_bbox_minmax(kMinmaxH, kMinmaxW, kMinmax, rng);
    ASSERT_GE(b.y0, 0);
    ASSERT_GE(b.x0, 0);
    ours_h.insert(b.y1 - b.y0);
    ours_w.insert(b.x1 - b.x0);
    ours_max_y = std::max(ours_max_y, b.y1);
    ours_max_x = std::max(ours_max_x, b.x1);
  }
  EXPECT_EQ(ours_h, timm_h);
  EXPECT_EQ(ours_w, timm_w);
  EXPECT_EQ(*ours_h.begin(), 6);    // int(32 * 0.2)
  EXPECT_EQ(*ours_h.rbegin(), 24);  // int(32 * 0.8) - 1
  EXPECT_EQ(ours_max_y, timm_max_y);
  EXPECT_EQ(ours_max_y, kMinmaxH);  // a box reaches the border
  EXPECT_EQ(ours_max_x, timm_max_x);
}

TEST(MixupDraws, ApplyProbabilitySwitchFrequencyAndLambdaMomentsMatchTheConfig) {
  d::MixupConfig cfg;
  cfg.mixup_alpha = 0.8;
  cfg.cutmix_alpha = 1.0;
  cfg.prob = 0.6;
  cfg.switch_prob = 0.3;
  std::mt19937_64 rng(7);
  const int n = 20000;
  int applied = 0, cutmix = 0;
  double sum = 0, sum_sq = 0;
  int mixups = 0;
  for (int i = 0; i < n; ++i) {
    const d::MixParams p = d::draw_mix_params(cfg, 32, 32, rng);
    if (!p.cutmix && p.lam == 1.0) continue;  // not mixed (a cutmix box without area also has lambda 1)
    ++applied;
    if (p.cutmix) {
      ++cutmix;
      EXPECT_DOUBLE_EQ(p.lam, d::box_lam(p.box, 32, 32));  // correct_lam
      EXPECT_TRUE(p.box.y0 >= 0 && p.box.y0 <= p.box.y1 && p.box.y1 <= 32);
      EXPECT_TRUE(p.box.x0 >= 0 && p.box.x0 <= p.box.x1 && p.box.x1 <= 32);
    } else {
      ++mixups;
      sum += p.lam;
      sum_sq += p.lam * p.lam;
    }
  }
  EXPECT_NEAR(applied / static_cast<double>(n), 0.6, 0.015);
  EXPECT_NEAR(cutmix / static_cast<double>(applied), 0.3, 0.02);
  const double mean = sum / mixups, var = sum_sq / mixups - mean * mean;
  EXPECT_NEAR(mean, 0.5, 0.015);
  EXPECT_NEAR(var, 0.8 * 0.8 / (1.6 * 1.6 * 2.6), 0.006);  // Beta(a, a): a^2 / ((2a)^2 (2a + 1))
}

TEST(MixupDraws, OnlyMixupOrOnlyCutmixNeverSwitchesAndProbZeroNeverMixes) {
  std::mt19937_64 rng(8);
  d::MixupConfig only_mixup;
  only_mixup.mixup_alpha = 0.2;
  d::MixupConfig only_cutmix;
  only_cutmix.mixup_alpha = 0.0;
  only_cutmix.cutmix_alpha = 1.0;
  d::MixupConfig never = only_mixup;
  never.prob = 0.0;
  double sum_sq = 0, sum = 0;
  for (int i = 0; i < 4000; ++i) {
    const auto m = d::draw_mix_params(only_mixup, 16, 16, rng);
    EXPECT_FALSE(m.cutmix);
    sum += m.lam;
    sum_sq += m.lam * m.lam;
    EXPECT_TRUE(d::draw_mix_params(only_cutmix, 16, 16, rng).cutmix);
    EXPECT_EQ(d::draw_mix_params(never, 16, 16, rng).lam, 1.0);
  }
  // Beta(0.2, 0.2) piles up at both ends: variance 0.04 / (0.16 * 1.4).
  EXPECT_NEAR(sum_sq / 4000 - (sum / 4000) * (sum / 4000), 0.04 / (0.16 * 1.4), 0.01);
}

TEST(MixupDraws, CutmixMinmaxForcesCutmixAndAlwaysCorrectsLambda) {
  d::MixupConfig cfg;
  cfg.mixup_alpha = 0.0;
  cfg.cutmix_minmax = std::array<double, 2>{0.3, 0.6};
  cfg.correct_lam = false;
  cfg.validate();  // minmax alone is something to mix
  std::mt19937_64 rng(9);
  for (int i = 0; i < 200; ++i) {
    const auto p = d::draw_mix_params(cfg, 20, 30, rng);
    ASSERT_TRUE(p.cutmix);
    EXPECT_DOUBLE_EQ(p.lam, d::box_lam(p.box, 20, 30));
    EXPECT_TRUE(p.box.y1 - p.box.y0 >= 6 && p.box.y1 - p.box.y0 < 12);
    EXPECT_TRUE(p.box.x1 - p.box.x0 >= 9 && p.box.x1 - p.box.x0 < 18);
  }
  // An image too small for the range (int(0.3) = int(0.6) = 0) is a clear error, not a crash.
  expect_input_error([&] { (void)d::draw_mix_params(cfg, 1, 1, rng); }, "cutmix_minmax");
}

TEST(Mixup, ApplyIsReproducibleFromTheSeedAndFillsSoftLabels) {
  d::MixupConfig cfg;
  cfg.mixup_alpha = 0.8;
  cfg.cutmix_alpha = 1.0;
  cfg.num_classes = kClasses;
  const d::Mixup mix(cfg);
  auto run = [&](uint64_t seed) {
    d::Batch b;
    b.images = test_images();
    b.labels = test_labels();
    std::mt19937_64 rng(seed);
    const d::MixParams p = mix.apply(b, rng);
    return std::make_tuple(b, p);
  };
  const auto [a, pa] = run(21);
  const auto [b, pb] = run(21);
  EXPECT_TRUE(at::equal(a.images, b.images));
  EXPECT_TRUE(at::equal(a.soft_labels, b.soft_labels));
  ASSERT_EQ(a.soft_labels.sizes(), at::IntArrayRef({6, kClasses}));
  // apply is draw_mix_params then mix_batch with the same generator state.
  at::Tensor images = test_images();
  std::mt19937_64 rng(21);
  const d::MixParams p = d::draw_mix_params(cfg, kH, kW, rng);
  EXPECT_EQ(p.lam, pa.lam);
  EXPECT_TRUE(at::equal(d::mix_batch(images, test_labels(), p, 0.1, kClasses), a.soft_labels));
  EXPECT_TRUE(at::equal(images, a.images));
  // Other seeds draw other lambdas.
  std::set<double> lams;
  for (uint64_t s = 0; s < 8; ++s) lams.insert(std::get<1>(run(s)).lam);
  EXPECT_GT(lams.size(), 4u);
}

TEST(Mixup, OddBatchesBadLabelsAndDatasetSoftLabelsAreInputErrors) {
  d::MixupConfig cfg;
  cfg.num_classes = kClasses;
  const d::Mixup mix(cfg);
  std::mt19937_64 rng(1);
  d::Batch odd;
  odd.images = at::zeros({3, 1, 4, 4});
  odd.labels = at::zeros({3}, at::kLong);
  expect_input_error([&] { (void)mix.apply(odd, rng); }, "even batch size");
  d::Batch unlabeled;
  unlabeled.images = at::zeros({2, 1, 4, 4});
  unlabeled.labels = at::tensor({0, -1}, at::kLong);
  expect_input_error([&] { (void)mix.apply(unlabeled, rng); }, "label -1");
  unlabeled.labels = at::tensor({int64_t{0}, kClasses}, at::kLong);
  expect_input_error([&] { (void)mix.apply(unlabeled, rng); }, "label 5");
  d::Batch soft;
  soft.images = at::zeros({2, 1, 4, 4});
  soft.labels = at::zeros({2}, at::kLong);
  soft.soft_labels = at::zeros({2, kClasses});
  expect_input_error([&] { (void)mix.apply(soft, rng); }, "soft labels");
}

TEST(Mixup, ConfigValidationNamesTheKey) {
  auto bad = [](auto edit) {
    d::MixupConfig c;
    edit(c);
    return c;
  };
  expect_input_error([&] { (void)d::Mixup(bad([](d::MixupConfig& c) { c.mixup_alpha = -1; })); },
                     "mixup_alpha");
  expect_input_error([&] { (void)d::Mixup(bad([](d::MixupConfig& c) { c.cutmix_alpha = -0.5; })); },
                     "cutmix_alpha");
  expect_input_error([&] { (void)d::Mixup(bad([](d::MixupConfig& c) { c.prob = 1.5; })); }, "prob");
  expect_input_error([&] { (void)d::Mixup(bad([](d::MixupConfig& c) { c.switch_prob = -0.1; })); },
                     "switch_prob");
  expect_input_error([&] { (void)d::Mixup(bad([](d::MixupConfig& c) { c.label_smoothing = 1.0; })); },
                     "label_smoothing");
  expect_input_error([&] { (void)d::Mixup(bad([](d::MixupConfig& c) { c.num_classes = 0; })); },
                     "num_classes");
  expect_input_error(
      [&] {
        (void)d::Mixup(bad([](d::MixupConfig& c) { c.cutmix_minmax = std::array<double, 2>{0.8, 0.2}; }));
      },
      "cutmix_minmax");
  expect_input_error([&] { (void)d::Mixup(bad([](d::MixupConfig& c) { c.mixup_alpha = 0; })); },
                     "nothing to mix");
  EXPECT_NO_THROW(d::Mixup(d::MixupConfig{}));
}

TEST(Mixup, LoaderHookMixesIdenticallyForAnyWorkerCount) {
  // The caller's post_batch seeds a generator per batch from (seed, epoch, batch index), so worker threads
  // finishing batches in any order mix exactly as the synchronous loader does.
  at::manual_seed(5);
  d::ImageSet set{at::randint(0, 256, {64, 1, 8, 8}).to(at::kByte), at::randint(0, 10, {64}), "synthetic"};
  d::MixupConfig mcfg;
  mcfg.mixup_alpha = 0.8;
  mcfg.cutmix_alpha = 1.0;
  mcfg.num_classes = 10;
  const auto mix = std::make_shared<const d::Mixup>(mcfg);
  auto batches = [&](int64_t workers) {
    d::LoaderConfig cfg;
    cfg.batch_size = 8;
    cfg.num_workers = workers;
    cfg.augment.out_size = 8;
    cfg.post_batch = [mix](d::Batch& b) {
      std::mt19937_64 rng(semaim::core::mix_seed(17, 0x6d69787570, static_cast<uint64_t>(b.epoch),
                                                 static_cast<uint64_t>(b.index)));
      mix->apply(b, rng);
    };
    d::Loader loader(set, cfg);
    loader.start_epoch(1);
    std::vector<d::Batch> out;
    while (auto b = loader.next()) out.push_back(*b);
    return out;
  };
  const auto sync = batches(0), threaded = batches(2);
  ASSERT_EQ(sync.size(), 8u);
  ASSERT_EQ(threaded.size(), sync.size());
  for (size_t i = 0; i < sync.size(); ++i) {
    EXPECT_TRUE(at::equal(sync[i].images, threaded[i].images)) << i;
    ASSERT_TRUE(threaded[i].soft_labels.defined());
    EXPECT_TRUE(at::equal(sync[i].soft_labels, threaded[i].soft_labels)) << i;
  }
}
