// Tests of the data-free orderings (method.md §5: raster, snake, stochastic, center_out, stochastic_center),
// the strategy table (names, config key), order_from_keys and make_keys' distinct-rank guarantee.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "semaim/config/config.h"
#include "semaim/core/errors.h"
#include "semaim/ordering/config_keys.h"
#include "semaim/ordering/ordering.h"

namespace {

using namespace semaim::ordering;

struct Grid {
  int64_t gh, gw;
};
const std::vector<Grid> kGrids = {{7, 7}, {14, 14}, {16, 16}, {37, 37}, {6, 11}};

at::Generator seeded(uint64_t seed) { return at::make_generator<at::CPUGeneratorImpl>(seed); }

bool is_permutation_rows(const at::Tensor& order) {
  const int64_t l = order.size(1);
  at::Tensor sorted = std::get<0>(order.sort(1));
  return at::equal(sorted, at::arange(l, at::kLong).expand_as(sorted));
}

// For a window of side s around (cr, cc) (shifted inside the grid), the rows/cols it spans.
std::pair<int64_t, int64_t> span(int64_t c, int64_t s, int64_t g) {
  int64_t start = std::min(std::max<int64_t>(c - s / 2, 0), g - s);
  return {start, start + s};
}

// Every patch inside each window comes before every patch outside it, for every nesting level.
void expect_windows_first(const at::Tensor& keys, const at::Tensor& centers, int64_t gh, int64_t gw,
                          const std::vector<int64_t>& windows) {
  const Permutation p = order_from_keys(keys);
  for (int64_t i = 0; i < keys.size(0); ++i) {
    const int64_t cr = centers[i][0].item<int64_t>(), cc = centers[i][1].item<int64_t>();
    for (int64_t s : windows) {
      auto [r0, r1] = span(cr, s, gh);
      auto [c0, c1] = span(cc, s, gw);
      ASSERT_TRUE(r0 <= cr && cr < r1 && c0 <= cc && cc < c1) << "window must contain its center";
      // The first s*s positions of the order must be exactly the window's patches.
      for (int64_t k = 0; k < keys.size(1); ++k) {
        const int64_t j = p.order[i][k].item<int64_t>();
        const bool inside = j / gw >= r0 && j / gw < r1 && j % gw >= c0 && j % gw < c1;
        ASSERT_EQ(inside, k < s * s) << "image " << i << " window " << s << " position " << k << " patch "
                                     << j;
      }
    }
  }
}

TEST(Strategy, NamesRoundTripAndUnknownNameSuggestsClosest) {
  for (const std::string& name : strategy_names()) EXPECT_EQ(strategy_name(parse_strategy(name)), name);
  EXPECT_EQ(strategy_names().size(), 8u);
  try {
    parse_strategy("semantc");
    FAIL() << "no throw";
  } catch (const semaim::InputError& e) {
    EXPECT_NE(std::string(e.what()).find("'semantic'"), std::string::npos) << e.what();
  }
  try {
    parse_strategy("attention_center");
    FAIL() << "no throw";
  } catch (const semaim::InputError& e) {
    EXPECT_NE(std::string(e.what()).find("semaim's 'semantic'"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(needs_tokens(parse_strategy("semantic")));
  EXPECT_TRUE(needs_tokens(parse_strategy("similarity")));
  EXPECT_TRUE(needs_tokens(parse_strategy("parts")));
  EXPECT_FALSE(needs_tokens(parse_strategy("center_out")));
  EXPECT_TRUE(parse_strategy("snake") == parse_strategy("snake"));
  EXPECT_FALSE(parse_strategy("snake") == parse_strategy("raster"));
  EXPECT_EQ(strategy_name(OrderingConfig().strategy), "semantic");
  EXPECT_EQ(parse_source("gap"), SimilaritySource::kGap);
  EXPECT_THROW(parse_source("mean"), semaim::InputError);
}

TEST(Strategy, TableDrivesNamesTokenNeedsAndTheConfigKey) {
  std::vector<std::string> names;
  for (const StrategyDef& row : strategy_table()) {
    const Strategy s = parse_strategy(row.name);
    EXPECT_EQ(&s.def(), &row) << row.name;
    EXPECT_EQ(needs_tokens(s), row.needs_tokens) << row.name;
    EXPECT_NE(row.permute, nullptr) << row.name;
    EXPECT_FALSE(std::string(row.summary).empty()) << row.name;
    names.push_back(row.name);
  }
  EXPECT_EQ(names, strategy_names());
  semaim::config::Schema schema;
  register_config_keys(schema);
  const semaim::config::KeySpec* key = schema.find("ordering.strategy");
  ASSERT_NE(key, nullptr);
  EXPECT_EQ(key->choices, names);
  for (const StrategyDef& row : strategy_table()) {
    EXPECT_NE(key->doc.find("`" + std::string(row.name) + "`: " + row.summary), std::string::npos)
        << key->doc;
  }
  const auto cfg = semaim::config::Config::defaults(schema);
  EXPECT_EQ(strategy_name(parse_strategy(cfg.get_string("ordering.strategy"))), "semantic");
  EXPECT_EQ(parse_source(cfg.get_string("ordering.source")), SimilaritySource::kCls);
}

TEST(RasterOrder, OrderIsPatchIndex) {
  for (const Grid& g : kGrids) {
    const Permutation p = order_from_keys(raster_keys(3, g.gh, g.gw));
    EXPECT_TRUE(at::equal(p.order, at::arange(g.gh * g.gw, at::kLong).expand({3, g.gh * g.gw})));
  }
}

TEST(SnakeOrder, ExactOrderOn3x4) {
  const Permutation p = order_from_keys(snake_keys(2, 3, 4));
  const at::Tensor expected = at::tensor({0, 1, 2, 3, 7, 6, 5, 4, 8, 9, 10, 11}, at::kLong);
  for (int64_t i = 0; i < 2; ++i) EXPECT_TRUE(at::equal(p.order[i], expected)) << p.order[i];
}

TEST(SnakeOrder, RowDirectionAlternates) {
  for (const Grid& g : kGrids) {
    const Permutation p = order_from_keys(snake_keys(1, g.gh, g.gw));
    for (int64_t r = 0; r < g.gh; ++r) {
      at::Tensor row = p.order[0].narrow(0, r * g.gw, g.gw);
      EXPECT_TRUE(at::equal(at::div(row, g.gw, "floor"), at::full({g.gw}, r, at::kLong)));
      at::Tensor cols = at::remainder(row, g.gw);
      at::Tensor ascending = at::arange(g.gw, at::kLong);
      EXPECT_TRUE(at::equal(cols, r % 2 == 0 ? ascending : ascending.flip(0))) << "row " << r;
    }
  }
}

TEST(StochasticOrder, PermutationDifferingAcrossImagesAndCallsReproducibleBySeed) {
  auto gen = seeded(7);
  const at::Tensor a = stochastic_keys(4, 196, gen), b = stochastic_keys(4, 196, gen);
  const Permutation pa = order_from_keys(a);
  EXPECT_TRUE(is_permutation_rows(pa.order));
  EXPECT_TRUE(keys_distinct(a));
  EXPECT_GE(a.min().item<float>(), 0.f);
  EXPECT_LT(a.max().item<float>(), 1.f);
  for (int64_t i = 1; i < 4; ++i) EXPECT_FALSE(at::equal(pa.order[0], pa.order[i]));
  EXPECT_FALSE(at::equal(a, b));
  auto gen2 = seeded(7);
  EXPECT_TRUE(at::equal(stochastic_keys(4, 196, gen2), a));
}

TEST(CenterOutOrder, DefaultWindowsReproduceReferenceOn14x14AndScaleWithGrid) {
  EXPECT_EQ(default_center_windows(14, 14), (std::vector<int64_t>{2, 6, 10}));
  EXPECT_EQ(default_center_windows(7, 7), (std::vector<int64_t>{1, 3, 5}));
  EXPECT_EQ(default_center_windows(16, 16), (std::vector<int64_t>{2, 6, 12}));
  EXPECT_EQ(default_center_windows(37, 37), (std::vector<int64_t>{5, 15, 27}));
  EXPECT_EQ(default_center_windows(6, 11), (std::vector<int64_t>{2, 4}));
  EXPECT_TRUE(default_center_windows(2, 9).empty());
  // Reference counts on 14x14: rows/cols [6,8) -> 3 windows, [4,10) -> >= 2, [2,12) -> >= 1.
  const at::Tensor count = window_count(at::tensor({7, 7}, at::kLong).view({1, 2}), 14, 14, {2, 6, 10});
  at::Tensor expected = at::zeros({14, 14});
  expected.narrow(0, 2, 10).narrow(1, 2, 10).add_(1);
  expected.narrow(0, 4, 6).narrow(1, 4, 6).add_(1);
  expected.narrow(0, 6, 2).narrow(1, 6, 2).add_(1);
  EXPECT_TRUE(at::equal(count.view({14, 14}), expected));
}

TEST(CenterOutOrder, InnerWindowsComeFirstAtEveryNestingLevel) {
  auto gen = seeded(3);
  for (const Grid& g : kGrids) {
    const std::vector<int64_t> w = default_center_windows(g.gh, g.gw);
    const at::Tensor keys = center_out_keys(3, g.gh, g.gw, {}, gen);
    const at::Tensor centers = at::tensor({g.gh / 2, g.gw / 2}, at::kLong).view({1, 2}).expand({3, 2});
    expect_windows_first(keys, centers, g.gh, g.gw, w);
    EXPECT_TRUE(keys_distinct(keys));
    // Random inside a ring: two images rarely share an order.
    const Permutation p = order_from_keys(keys);
    EXPECT_FALSE(at::equal(p.order[0], p.order[1]));
  }
  // Explicit windows on a non-square grid, given out of order.
  const at::Tensor keys = center_out_keys(2, 9, 12, {7, 3}, gen);
  expect_windows_first(keys, at::tensor({4, 6}, at::kLong).view({1, 2}).expand({2, 2}), 9, 12, {3, 7});
}

TEST(StochasticCenterOrder, WindowsAroundARandomCenterComeFirst) {
  for (const Grid& g : kGrids) {
    auto gen = seeded(11);
    const at::Tensor keys = stochastic_center_keys(6, g.gh, g.gw, {}, gen);
    EXPECT_TRUE(keys_distinct(keys));
    // The centers are stochastic_center_keys' first draws from the generator: re-draw them with the seed.
    auto gen2 = seeded(11);
    const at::Tensor cr = at::randint(g.gh, {6}, gen2, at::kLong),
                     cc = at::randint(g.gw, {6}, gen2, at::kLong);
    const at::Tensor centers = at::stack({cr, cc}, 1);
    expect_windows_first(keys, centers, g.gh, g.gw, default_center_windows(g.gh, g.gw));
    // Window counts agree with the exposed geometry.
    const at::Tensor count = window_count(centers, g.gh, g.gw, default_center_windows(g.gh, g.gw));
    EXPECT_TRUE((at::ceil(-keys) == count).all().item<bool>());
    EXPECT_GT(std::get<0>(at::unique_dim(centers, 0)).size(0), 1) << "center should vary across images";
  }
}

TEST(OrderFromKeys, InverseInvertsOrder) {
  auto gen = seeded(5);
  const at::Tensor keys = at::rand({5, 37 * 37}, gen, at::TensorOptions().dtype(at::kFloat));
  const Permutation p = order_from_keys(keys);
  const at::Tensor pos = at::arange(37 * 37, at::kLong).expand({5, 37 * 37});
  EXPECT_TRUE(at::equal(p.order.gather(1, p.inverse), pos));
  EXPECT_TRUE(at::equal(p.inverse.gather(1, p.order), pos));
  const at::Tensor sorted = keys.gather(1, p.order);
  EXPECT_TRUE((sorted.narrow(1, 1, sorted.size(1) - 1) >= sorted.narrow(1, 0, sorted.size(1) - 1))
                  .all()
                  .item<bool>());
}

TEST(MakeKeys, DataFreeStrategiesGiveExactRanksAndKeepTheirOrder) {
  for (const Grid& g : kGrids) {
    for (const std::string name : {"raster", "snake", "stochastic", "center_out", "stochastic_center"}) {
      OrderingConfig cfg;
      cfg.strategy = parse_strategy(name);
      auto gen = seeded(21);
      const at::Tensor keys = make_keys(cfg, 3, g.gh, g.gw, at::Tensor(), gen, at::kCPU);
      ASSERT_EQ(keys.scalar_type(), at::kFloat);
      ASSERT_EQ(keys.sizes(), (at::IntArrayRef{3, g.gh * g.gw}));
      const Permutation p = order_from_keys(keys);
      EXPECT_TRUE(at::equal(keys, p.inverse.to(at::kFloat))) << name << " keys must be ranks";
      // The same seed through the individual function gives the same order.
      auto gen2 = seeded(21);
      at::Tensor raw = name == "raster"       ? raster_keys(3, g.gh, g.gw)
                       : name == "snake"      ? snake_keys(3, g.gh, g.gw)
                       : name == "stochastic" ? stochastic_keys(3, g.gh * g.gw, gen2)
                       : name == "center_out" ? center_out_keys(3, g.gh, g.gw, {}, gen2)
                                              : stochastic_center_keys(3, g.gh, g.gw, {}, gen2);
      EXPECT_TRUE(at::equal(order_from_keys(raw).order, p.order)) << name;
    }
  }
}

TEST(OrderingInput, BadGridsWindowsAndConfigThrowInputError) {
  auto gen = seeded(1);
  EXPECT_THROW(raster_keys(2, 0, 4), semaim::InputError);
  EXPECT_THROW(snake_keys(-1, 4, 4), semaim::InputError);
  EXPECT_THROW(stochastic_keys(2, 0, gen), semaim::InputError);
  EXPECT_THROW(center_out_keys(2, 14, 14, {2, 15}, gen), semaim::InputError);  // larger than the grid
  EXPECT_THROW(center_out_keys(2, 6, 11, {7}, gen), semaim::InputError);       // larger than the short side
  EXPECT_THROW(center_out_keys(2, 14, 14, {0, 6}, gen), semaim::InputError);   // empty window
  EXPECT_THROW(stochastic_center_keys(2, 14, 14, {6, 6}, gen), semaim::InputError);
  OrderingConfig cfg;
  cfg.strategy = parse_strategy("center_out");
  cfg.tie_noise = -1;
  EXPECT_THROW(make_keys(cfg, 2, 14, 14, at::Tensor(), gen, at::kCPU), semaim::InputError);
  cfg.strategy = parse_strategy("semantic");
  cfg.tie_noise = 1e-3;
  EXPECT_THROW(make_keys(cfg, 2, 14, 14, at::Tensor(), gen, at::kCPU), semaim::InputError);  // no tokens
  EXPECT_THROW(order_from_keys(at::zeros({4})), semaim::InputError);
}

}  // namespace

namespace {

// make_order for every strategy: order and inverse are the stable permutation of its rank keys, the keys are
// make_keys' with the same seed, and similarity matches rank_keys (the ATen composition) on the same draws.
TEST(MakeOrder, EveryStrategyGivesThePermutationOfItsRankKeys) {
  for (const Grid& g : {Grid{7, 7}, Grid{14, 14}, Grid{6, 11}}) {
    const int64_t l = g.gh * g.gw, n = 4;
    auto tgen = seeded(77);
    at::Tensor tokens = at::randn({n, l + 1, 24}, tgen, at::TensorOptions().dtype(at::kFloat));
    tokens.narrow(1, 3, 2).copy_(tokens.narrow(1, 1, 2));  // identical tokens: similarity ties
    for (const std::string& name : strategy_names()) {
      OrderingConfig cfg;
      cfg.strategy = parse_strategy(name);
      auto gen = seeded(9), gen2 = seeded(9);
      const Ordering o = make_order(cfg, n, g.gh, g.gw, tokens, gen, at::kCPU);
      const at::Tensor keys = make_keys(cfg, n, g.gh, g.gw, tokens, gen2, at::kCPU);
      EXPECT_TRUE(at::equal(o.keys, keys)) << name;
      const Permutation ref = order_from_keys_reference(keys);
      EXPECT_TRUE(at::equal(o.order, ref.order)) << name;
      EXPECT_TRUE(at::equal(o.inverse, ref.inverse)) << name;
      if (name == "similarity") {
        auto gen3 = seeded(9);
        const at::Tensor tie = at::rand({n, l}, gen3, at::TensorOptions().dtype(at::kDouble));
        EXPECT_TRUE(at::equal(keys, rank_keys(cls_similarity(tokens, cfg.source).neg(), tie))) << name;
      }
    }
  }
}

}  // namespace
