// Tests of the token-driven orderings (method.md §5 similarity, §6 semantic), including the golden
// cls-similarity / semantic-center tensors from the SemAIM reference model (tests/data/golden).
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <string>
#include <vector>

#include "semaim/core/errors.h"
#include "semaim/ordering/ordering.h"
#include "semaim_paths.h"

namespace {

using namespace semaim::ordering;

struct Grid {
  int64_t gh, gw;
};
const std::vector<Grid> kGrids = {{7, 7}, {14, 14}, {16, 16}, {37, 37}, {6, 11}};
const SimilaritySource kSources[] = {SimilaritySource::kCls, SimilaritySource::kGap};

at::Generator seeded(uint64_t seed) { return at::make_generator<at::CPUGeneratorImpl>(seed); }

at::Tensor random_tokens(int64_t n, int64_t l, int64_t d, uint64_t seed) {
  auto gen = seeded(seed);
  return at::randn({n, l + 1, d}, gen, at::TensorOptions().dtype(at::kFloat));
}

// Independent reference for method.md §6 step 3: at::cosine_similarity against cls or the mean raw patch.
at::Tensor reference_similarity(const at::Tensor& tokens, SimilaritySource src) {
  at::Tensor patches = tokens.narrow(1, 1, tokens.size(1) - 1);
  at::Tensor anchor = src == SimilaritySource::kCls ? tokens.narrow(1, 0, 1) : patches.mean(1, true);
  return at::cosine_similarity(patches, anchor.expand_as(patches), -1, 0.0);
}

bool non_decreasing(const at::Tensor& rows) {
  const int64_t l = rows.size(1);
  return (rows.narrow(1, 1, l - 1) >= rows.narrow(1, 0, l - 1)).all().item<bool>();
}

// Minimal reader for the test only (F32/F64/I64): u64 LE header length, JSON header, raw LE C-order data.
std::map<std::string, at::Tensor> read_safetensors(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + path);
  uint64_t header_len = 0;
  in.read(reinterpret_cast<char*>(&header_len), 8);
  std::string header(header_len, '\0');
  in.read(header.data(), static_cast<std::streamsize>(header_len));
  const std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::map<std::string, at::Tensor> out;
  const nlohmann::json json = nlohmann::json::parse(header);  // outlives the items() view below
  for (const auto& [name, info] : json.items()) {
    if (name == "__metadata__") continue;
    const std::string dtype = info["dtype"];
    const std::map<std::string, at::ScalarType> kTypes = {
        {"F32", at::kFloat}, {"F64", at::kDouble}, {"I64", at::kLong}};
    if (!kTypes.count(dtype)) throw std::runtime_error("unsupported dtype " + dtype + " for " + name);
    const at::ScalarType st = kTypes.at(dtype);
    const size_t begin = info["data_offsets"][0], end = info["data_offsets"][1];
    at::Tensor t = at::empty(info["shape"].get<std::vector<int64_t>>(), at::TensorOptions().dtype(st));
    if (static_cast<size_t>(t.nbytes()) != end - begin || end > data.size()) {
      throw std::runtime_error("bad data offsets for " + name);
    }
    std::memcpy(t.data_ptr(), data.data() + begin, end - begin);
    out[name] = t;
  }
  return out;
}

TEST(Similarity, ClsAndGapSimilarityAreCosines) {
  const at::Tensor tokens = random_tokens(3, 49, 16, 1).to(at::kDouble);
  for (SimilaritySource src : kSources) {
    const at::Tensor sim = cls_similarity(tokens, src);
    ASSERT_EQ(sim.sizes(), (at::IntArrayRef{3, 49}));
    EXPECT_EQ(sim.scalar_type(), at::kDouble);
    EXPECT_TRUE(at::allclose(sim, reference_similarity(tokens, src), 1e-12, 1e-14)) << source_name(src);
    const at::Tensor noise = at::full({3, 49}, 0.25, at::kDouble);
    EXPECT_TRUE(at::allclose(similarity_keys(tokens, src, noise), (0.25 - sim).to(at::kFloat), 1e-6, 1e-6));
  }
  // bfloat16 tokens are compared in float32.
  EXPECT_EQ(cls_similarity(tokens.to(at::kBFloat16), SimilaritySource::kCls).scalar_type(), at::kFloat);
}

TEST(SimilarityOrder, OrderIsByDecreasingCosineSimilarity) {
  for (const Grid& g : kGrids) {
    const int64_t l = g.gh * g.gw;
    const at::Tensor tokens = random_tokens(4, l, 24, 2);
    for (SimilaritySource src : kSources) {
      OrderingConfig cfg;
      cfg.strategy = parse_strategy("similarity");
      cfg.source = src;
      auto gen = seeded(4);
      const at::Tensor keys = make_keys(cfg, 4, g.gh, g.gw, tokens, gen, at::kCPU);
      EXPECT_TRUE(keys_distinct(keys));
      const Permutation p = order_from_keys(keys);
      const at::Tensor sim_in_order = reference_similarity(tokens, src).gather(1, p.order);
      EXPECT_TRUE(non_decreasing(-sim_in_order)) << g.gh << "x" << g.gw << " " << source_name(src);
    }
  }
}

TEST(SemanticOrder, SemanticOrder_SeedIsArgmaxOfClsSimilarity) {
  for (const Grid& g : kGrids) {
    const int64_t l = g.gh * g.gw;
    const at::Tensor tokens = random_tokens(5, l, 32, 3);
    for (SimilaritySource src : kSources) {
      const at::Tensor seed = reference_similarity(tokens, src).argmax(1);
      EXPECT_TRUE(at::equal(semantic_center(tokens, src), seed));
      OrderingConfig cfg;
      cfg.source = src;  // strategy defaults to semantic
      auto gen = seeded(5);
      const Permutation p = order_from_keys(make_keys(cfg, 5, g.gh, g.gw, tokens, gen, at::kCPU));
      EXPECT_TRUE(at::equal(p.order.select(1, 0), seed)) << g.gh << "x" << g.gw << " " << source_name(src);
    }
  }
}

TEST(SemanticOrder, KeysGrowWithGridDistanceFromSeed) {
  for (const Grid& g : kGrids) {
    const int64_t l = g.gh * g.gw;
    const at::Tensor tokens = random_tokens(4, l, 32, 6);
    for (SimilaritySource src : kSources) {
      OrderingConfig cfg;
      cfg.source = src;
      auto gen = seeded(8);
      const at::Tensor keys = make_keys(cfg, 4, g.gh, g.gw, tokens, gen, at::kCPU);
      EXPECT_TRUE(keys_distinct(keys));
      const Permutation p = order_from_keys(keys);
      // Distance from the seed, computed here from rows and columns.
      const at::Tensor seed = p.order.select(1, 0).view({-1, 1});
      const at::Tensor j = at::arange(l, at::kLong).view({1, -1});
      const at::Tensor dr = at::div(j, g.gw, "floor") - at::div(seed, g.gw, "floor");
      const at::Tensor dc = at::remainder(j, g.gw) - at::remainder(seed, g.gw);
      const at::Tensor d2 = dr * dr + dc * dc;
      EXPECT_TRUE(non_decreasing(d2.gather(1, p.order))) << g.gh << "x" << g.gw << " " << source_name(src);
    }
  }
}

TEST(SemanticKeys, KeyIsGridDistanceFromCenterPlusNoise) {
  const int64_t gh = 6, gw = 11, l = gh * gw;
  const at::Tensor tokens = random_tokens(3, l, 8, 9);
  auto gen = seeded(10);
  const at::Tensor noise = at::rand({3, l}, gen, at::TensorOptions().dtype(at::kFloat)) * 1e-3;
  const at::Tensor keys = semantic_keys(tokens, gh, gw, SimilaritySource::kCls, noise);
  const at::Tensor center = semantic_center(tokens, SimilaritySource::kCls);
  for (int64_t i = 0; i < 3; ++i) {
    const int64_t c = center[i].item<int64_t>();
    for (int64_t jj = 0; jj < l; jj += 7) {
      const double d = std::hypot(double(jj / gw - c / gw), double(jj % gw - c % gw));
      EXPECT_NEAR(keys[i][jj].item<float>(), d + noise[i][jj].item<float>(), 1e-5);
    }
  }
}

TEST(DistinctKeys, RandomStrategiesBreakDeliberateTiesRandomly) {
  // Every patch token identical: similarities tie exactly, and rings of equal distance tie.
  const int64_t n = 8;
  for (const Grid& g : kGrids) {
    const int64_t l = g.gh * g.gw;
    // Every image identical too, so orders can differ between images only through random tie-breaking.
    at::Tensor tokens = random_tokens(1, l, 16, 12).expand({n, l + 1, 16}).contiguous();
    tokens.narrow(1, 1, l).copy_(tokens.narrow(1, 1, 1).expand({n, l, 16}));
    for (const std::string name :
         {"stochastic", "center_out", "stochastic_center", "similarity", "semantic"}) {
      for (double tie_noise : {1e-3, 0.0}) {
        OrderingConfig cfg;
        cfg.strategy = parse_strategy(name);
        cfg.tie_noise = tie_noise;
        auto gen = seeded(13);
        const at::Tensor keys = make_keys(cfg, n, g.gh, g.gw, tokens, gen, at::kCPU);
        EXPECT_TRUE(keys_distinct(keys)) << name << " " << g.gh << "x" << g.gw;
        const Permutation p = order_from_keys(keys);
        EXPECT_FALSE(at::equal(p.order[0], p.order[1])) << name << ": ties must go in random order";
      }
    }
  }
}

TEST(DistinctKeys, SemanticRanksStayDistinctWhereFloat32DistancePlusNoiseCollides) {
  // 37x37: float32 distance + 1e-3*U collides in most rows; make_keys must not.
  const int64_t n = 16, g = 37, l = g * g;
  const at::Tensor tokens = random_tokens(n, l, 8, 14);
  auto gen = seeded(15);
  const at::Tensor noise = at::rand({n, l}, gen, at::TensorOptions().dtype(at::kFloat)) * 1e-3;
  const bool float32_distinct = keys_distinct(semantic_keys(tokens, g, g, SimilaritySource::kCls, noise));
  OrderingConfig cfg;
  const at::Tensor keys = make_keys(cfg, n, g, g, tokens, gen, at::kCPU);
  EXPECT_TRUE(keys_distinct(keys));
  EXPECT_FALSE(float32_distinct) << "the float32 formula no longer collides here; this test lost its point";
}

TEST(SemanticGolden, ClsSimilarityAndCenterMatchReference) {
  for (const char* file : {"reference_d4q4.safetensors", "reference_d4q2.safetensors"}) {
    const auto t = read_safetensors(std::string(SEMAIM_GOLDEN_DIR) + "/" + file);
    const at::Tensor tokens = t.at("expect.encoder_tokens");
    const at::Tensor expected = t.at("expect.cls_similarity");
    ASSERT_EQ(tokens.scalar_type(), at::kDouble);
    const at::Tensor sim = cls_similarity(tokens, SimilaritySource::kCls);
    const double rel = ((sim - expected).abs().max() / expected.abs().max()).item<double>();
    EXPECT_LT(rel, 1e-12) << file;
    const at::Tensor sim32 = cls_similarity(tokens.to(at::kFloat), SimilaritySource::kCls);
    EXPECT_TRUE(at::allclose(sim32.to(at::kDouble), expected, 1e-5, 1e-6)) << file;
    EXPECT_TRUE(at::equal(semantic_center(tokens, SimilaritySource::kCls), t.at("expect.semantic_center")))
        << file;
    // The semantic order of the golden tokens starts at that center.
    OrderingConfig cfg;
    auto gen = seeded(16);
    const Permutation p = order_from_keys(make_keys(cfg, 2, 14, 14, tokens.to(at::kFloat), gen, at::kCPU));
    EXPECT_TRUE(at::equal(p.order.select(1, 0), t.at("expect.semantic_center"))) << file;
  }
}

TEST(OrderingInput, BadTokensThrowInputError) {
  auto gen = seeded(17);
  const at::Tensor good = random_tokens(2, 196, 8, 18);
  const at::Tensor noise = at::zeros({2, 196});
  EXPECT_NO_THROW(semantic_keys(good, 14, 14, SimilaritySource::kCls, noise));
  EXPECT_THROW(semantic_keys(good, 7, 14, SimilaritySource::kCls, noise),
               semaim::InputError);  // grid mismatch
  EXPECT_THROW(semantic_keys(good.select(0, 0), 14, 14, SimilaritySource::kCls, noise), semaim::InputError);
  EXPECT_THROW(semantic_keys(good.to(at::kLong), 14, 14, SimilaritySource::kCls, noise), semaim::InputError);
  EXPECT_THROW(semantic_keys(good, 14, 14, SimilaritySource::kCls, at::zeros({2, 195})), semaim::InputError);
  EXPECT_THROW(similarity_keys(good, SimilaritySource::kGap, at::zeros({3, 196})), semaim::InputError);
  EXPECT_THROW(cls_similarity(at::zeros({2, 1, 8}), SimilaritySource::kCls), semaim::InputError);
  EXPECT_THROW(semantic_center(at::Tensor(), SimilaritySource::kCls), semaim::InputError);
  OrderingConfig cfg;
  EXPECT_THROW(make_keys(cfg, 3, 14, 14, good, gen, at::kCPU), semaim::InputError);  // N mismatch
  EXPECT_THROW(make_keys(cfg, 2, 16, 16, good, gen, at::kCPU), semaim::InputError);  // grid mismatch
  EXPECT_THROW(make_keys(cfg, 2, 14, 14, good.to(at::kInt), gen, at::kCPU), semaim::InputError);
  try {
    semantic_keys(good, 7, 14, SimilaritySource::kCls, noise);
  } catch (const semaim::InputError& e) {
    EXPECT_NE(std::string(e.what()).find("7x14"), std::string::npos) << e.what();
  }
}

}  // namespace
