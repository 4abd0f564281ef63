// Tests of the prefetching loader: determinism across worker counts and resume, sharding, shutdown, errors.
#include <gtest/gtest.h>

#include <set>
#include <stdexcept>

#include "semaim/core/errors.h"
#include "semaim/data/loader.h"

namespace semaim::data {
namespace {

// The first n Fashion-MNIST test images, read once.
ImageSet fashion_subset(int64_t n) {
  static const ImageSet test = load_fashion_mnist(kFashionMnistRoot, "test");
  return take_first(test, n);
}

LoaderConfig small_config(int64_t workers) {
  LoaderConfig cfg;
  cfg.batch_size = 64;
  cfg.num_workers = workers;
  cfg.prefetch = 2;
  cfg.drop_last = false;
  cfg.seed = 7;
  return cfg;
}

std::vector<Batch> run_epoch(Loader& loader, int64_t epoch, int64_t first = 0) {
  loader.start_epoch(epoch, first);
  std::vector<Batch> out;
  while (auto b = loader.next()) out.push_back(std::move(*b));
  return out;
}

void expect_same_batches(const std::vector<Batch>& a, const std::vector<Batch>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].index, b[i].index);
    EXPECT_TRUE(at::equal(a[i].indices, b[i].indices)) << "batch " << i;
    EXPECT_TRUE(at::equal(a[i].labels, b[i].labels)) << "batch " << i;
    EXPECT_TRUE(at::equal(a[i].images, b[i].images)) << "batch " << i;
  }
}

TEST(Loader, BatchesAreBitwiseIdenticalForZeroOneThreeWorkers) {
  const ImageSet data = fashion_subset(1000);
  Loader sync(data, small_config(0)), one(data, small_config(1)), three(data, small_config(3));
  const std::vector<Batch> ref = run_epoch(sync, 2);
  ASSERT_EQ(ref.size(), 16u);  // 15 full batches of 64 and one of 40
  EXPECT_EQ(ref.back().images.size(0), 40);
  EXPECT_EQ(ref[0].images.sizes(), (at::IntArrayRef{64, 1, 28, 28}));
  expect_same_batches(ref, run_epoch(one, 2));
  expect_same_batches(ref, run_epoch(three, 2));
}

TEST(Loader, EpochCoversEverySampleOnceWithItsLabel) {
  const ImageSet data = fashion_subset(1000);
  Loader loader(data, small_config(2));
  const std::vector<Batch> batches = run_epoch(loader, 0);
  std::vector<at::Tensor> idx, lab;
  for (const Batch& b : batches) {
    idx.push_back(b.indices);
    lab.push_back(b.labels);
  }
  const at::Tensor all = at::cat(idx);
  EXPECT_TRUE(at::equal(std::get<0>(all.sort()), at::arange(1000, at::kLong)));
  EXPECT_TRUE(at::equal(at::cat(lab), data.labels.index_select(0, all)));
  EXPECT_FALSE(at::equal(all, at::arange(1000, at::kLong)));  // shuffled
}

TEST(Loader, ResumeAtBatchEqualsTailOfFullEpoch) {
  const ImageSet data = fashion_subset(1000);
  Loader loader(data, small_config(2));
  const std::vector<Batch> full = run_epoch(loader, 3);
  const std::vector<Batch> tail = run_epoch(loader, 3, 9);
  expect_same_batches(std::vector<Batch>(full.begin() + 9, full.end()), tail);
  EXPECT_TRUE(run_epoch(loader, 3, loader.steps_per_epoch()).empty());
}

TEST(Loader, RestartingMidEpochDiscardsPrefetchedBatches) {
  const ImageSet data = fashion_subset(1000);
  Loader loader(data, small_config(3));
  const std::vector<Batch> ref = run_epoch(loader, 1);
  loader.start_epoch(0);
  ASSERT_TRUE(loader.next().has_value());  // epoch 0 batches are in flight when epoch 1 restarts
  expect_same_batches(ref, run_epoch(loader, 1));
}

TEST(Loader, DifferentEpochsGiveDifferentOrderAndAugmentation) {
  const ImageSet data = fashion_subset(1000);
  LoaderConfig cfg = small_config(0);
  cfg.shuffle = false;  // same samples in the same place, so only the augmentation can differ
  Loader fixed(data, cfg);
  fixed.start_epoch(0);
  const Batch e0 = *fixed.next();
  fixed.start_epoch(1);
  const Batch e1 = *fixed.next();
  EXPECT_TRUE(at::equal(e0.indices, e1.indices));
  EXPECT_FALSE(at::equal(e0.images, e1.images));
  Loader shuffled(data, small_config(0));
  EXPECT_FALSE(at::equal(run_epoch(shuffled, 0)[0].indices, run_epoch(shuffled, 1)[0].indices));
}

TEST(Loader, UnshuffledEvalLoaderIsTheEvalTransformInOrder) {
  const ImageSet data = fashion_subset(200);
  LoaderConfig cfg = small_config(1);
  cfg.shuffle = false;
  cfg.augment.random = false;
  Loader loader(data, cfg);
  const std::vector<Batch> batches = run_epoch(loader, 0);
  EXPECT_TRUE(at::equal(batches[0].indices, at::arange(64, at::kLong)));
  EXPECT_TRUE(at::equal(batches[0].images, transform_eval_batch(data.images.narrow(0, 0, 64), cfg.augment)));
}

TEST(Loader, RankShardsAreDisjointWithEqualStepCounts) {
  const ImageSet data = fashion_subset(1001);
  for (bool drop_last : {false, true}) {
    std::vector<std::set<int64_t>> seen(2);
    std::vector<int64_t> steps;
    for (int64_t rank = 0; rank < 2; ++rank) {
      LoaderConfig cfg = small_config(1);
      cfg.drop_last = drop_last;
      cfg.rank = rank;
      cfg.world_size = 2;
      Loader loader(data, cfg);
      EXPECT_EQ(loader.samples_per_rank(), 500);
      steps.push_back(loader.steps_per_epoch());
      const std::vector<Batch> batches = run_epoch(loader, 4);
      EXPECT_EQ(static_cast<int64_t>(batches.size()), loader.steps_per_epoch());
      for (const Batch& b : batches) {
        for (int64_t k = 0; k < b.indices.size(0); ++k) seen[rank].insert(b.indices[k].item<int64_t>());
      }
    }
    EXPECT_EQ(steps[0], steps[1]);
    EXPECT_EQ(steps[0], drop_last ? 7 : 8);
    EXPECT_EQ(seen[0].size(), drop_last ? 448u : 500u);
    EXPECT_EQ(seen[1].size(), seen[0].size());
    for (int64_t i : seen[0]) EXPECT_EQ(seen[1].count(i), 0u) << "sample " << i << " on both ranks";
  }
}

TEST(Loader, DestructionMidEpochDoesNotHang) {
  const ImageSet data = fashion_subset(1000);
  LoaderConfig cfg = small_config(3);
  cfg.prefetch = 4;
  {
    Loader loader(data, cfg);
    loader.start_epoch(0);
    ASSERT_TRUE(loader.next().has_value());
  }  // workers are blocked on a full window here
  {
    Loader loader(data, cfg);
    loader.start_epoch(0);
  }                              // workers are busy building here
  { Loader loader(data, cfg); }  // workers never got work
  SUCCEED();
}

TEST(Loader, WorkerExceptionSurfacesFromNext) {
  const ImageSet data = fashion_subset(640);
  for (int64_t workers : {0, 2}) {
    LoaderConfig cfg = small_config(workers);
    cfg.post_batch = [](Batch& b) {
      if (b.index == 2) throw std::runtime_error("bad batch 2");
    };
    Loader loader(data, cfg);
    loader.start_epoch(0);
    ASSERT_TRUE(loader.next().has_value());
    ASSERT_TRUE(loader.next().has_value());
    try {
      loader.next();
      FAIL() << "no exception with " << workers << " workers";
    } catch (const std::runtime_error& e) {
      EXPECT_STREQ(e.what(), "bad batch 2");
    }
    const std::optional<Batch> after = loader.next();
    ASSERT_TRUE(after.has_value());
    EXPECT_EQ(after->index, 3);
  }
}

TEST(Loader, MisuseAndTooSmallDataAreErrors) {
  const ImageSet data = fashion_subset(100);
  LoaderConfig cfg = small_config(1);
  Loader loader(data, cfg);
  EXPECT_THROW(loader.next(), RuntimeFailure);
  EXPECT_THROW(loader.start_epoch(0, loader.steps_per_epoch() + 1), InputError);
  cfg.batch_size = 256;
  cfg.drop_last = true;
  EXPECT_THROW(Loader(data, cfg), InputError);
  cfg = small_config(1);
  cfg.rank = 2;
  cfg.world_size = 2;
  EXPECT_THROW(Loader(data, cfg), InputError);
  loader.start_epoch(0);
  while (loader.next()) {
  }
  EXPECT_GE(loader.wait_seconds(), 0.0);
}

}  // namespace
}  // namespace semaim::data
