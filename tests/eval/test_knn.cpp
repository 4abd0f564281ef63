// Tests of weighted k-NN and the classification counts: against a per-sample loop written from the
// definition (DINO eval_knn), chunking, and the error cases.
#include <gtest/gtest.h>

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "semaim/core/errors.h"
#include "semaim/data/dataset.h"
#include "semaim/eval/classify.h"
#include "semaim/eval/knn.h"

namespace semaim::eval {
namespace {

// For one query: cosine similarities, the k most similar, votes exp(sim/T) per class, ranked classes.
// (Random features make every vote distinct, so the ranking has no ties.)
std::vector<int64_t> ranked_classes(const at::Tensor& bank, const at::Tensor& bank_y, const at::Tensor& q,
                                    int64_t k, double t, int64_t classes) {
  const int64_t n = bank.size(0);
  std::vector<double> sim(static_cast<size_t>(n));
  const double qn = q.norm().item<double>();
  for (int64_t i = 0; i < n; ++i)
    sim[static_cast<size_t>(i)] = (bank[i] * q).sum().item<double>() / (bank[i].norm().item<double>() * qn);
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return sim[a] > sim[b]; });
  std::vector<double> votes(static_cast<size_t>(classes), 0.0);
  for (int64_t j = 0; j < k; ++j)
    votes[static_cast<size_t>(bank_y[order[j]].item<int64_t>())] += std::exp(sim[order[j]] / t);
  std::vector<int64_t> cls(static_cast<size_t>(classes));
  std::iota(cls.begin(), cls.end(), 0);
  std::stable_sort(cls.begin(), cls.end(), [&](int64_t a, int64_t b) { return votes[a] > votes[b]; });
  cls.erase(std::remove_if(cls.begin(), cls.end(), [&](int64_t c) { return votes[c] <= 0; }), cls.end());
  return cls;  // the classes that received votes, most voted first
}

TEST(Knn, CountsEqualThePerSampleDefinitionForEveryKAndChunk) {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(3);
  const int64_t n = 60, m = 23, d = 5, classes = 7;
  const at::Tensor bank = at::randn({n, d}, gen), bank_y = at::randint(0, classes, {n}, gen, at::kLong);
  // Queries near training points so the neighbours matter.
  const at::Tensor q = bank.narrow(0, 0, m) + 0.5 * at::randn({m, d}, gen);
  const at::Tensor qy = at::randint(0, classes, {m}, gen, at::kLong);
  const std::vector<int64_t> ks{1, 5, 20};
  for (int64_t chunk : {1, 7, 256}) {
    const KnnCounts c = knn_counts(bank, bank_y, q, qy, ks, 0.07, classes, chunk);
    ASSERT_EQ(c.count, m);
    for (size_t i = 0; i < ks.size(); ++i) {
      int64_t want1 = 0, want5 = 0;
      for (int64_t r = 0; r < m; ++r) {
        const auto cls = ranked_classes(bank, bank_y, q[r], ks[i], 0.07, classes);
        const int64_t y = qy[r].item<int64_t>();
        want1 += cls[0] == y;
        const auto end5 = cls.begin() + std::min<int64_t>(5, static_cast<int64_t>(cls.size()));
        want5 += std::find(cls.begin(), end5, y) != end5;
      }
      EXPECT_EQ(c.correct1[i], want1) << "k=" << ks[i] << " chunk=" << chunk;
      EXPECT_EQ(c.correct5[i], want5) << "k=" << ks[i] << " chunk=" << chunk;
    }
  }
}

TEST(Knn, SeparableClustersAreClassifiedPerfectly) {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(5);
  const at::Tensor centers = at::eye(4).mul(10);
  const at::Tensor y = at::arange(4, at::kLong).repeat({25});
  const at::Tensor x = centers.index_select(0, y) + 0.1 * at::randn({100, 4}, gen);
  const KnnCounts c = knn_counts(x, y, x, y, {10, 20}, 0.07, 4, 16);
  EXPECT_EQ(c.correct1[0], 100);
  EXPECT_EQ(c.correct1[1], 100);
}

TEST(Knn, RejectsBadArguments) {
  const at::Tensor x = at::randn({4, 3}), y = at::zeros({4}, at::kLong);
  EXPECT_THROW(knn_counts(x, y, x, y, {5}, 0.07, 2, 8), InputError);                  // k > N
  EXPECT_THROW(knn_counts(x, y, x, y, {0}, 0.07, 2, 8), InputError);                  // k < 1
  EXPECT_THROW(knn_counts(x, y, x, y, {2}, 0.0, 2, 8), InputError);                   // temperature
  EXPECT_THROW(knn_counts(x, y, x.narrow(1, 0, 2), y, {2}, 0.07, 2, 8), InputError);  // widths differ
  EXPECT_THROW(knn_counts(x, y.add(5), x, y, {2}, 0.07, 2, 8), InputError);           // label >= classes
}

TEST(Classify, ScoreBatchCountsTop1Top5AndSummedLoss) {
  // 3 samples, 6 classes: sample 0 right at rank 1, sample 1 right at rank 3, sample 2 right at rank 6.
  const at::Tensor logits = at::tensor({6.f, 5.f, 4.f, 3.f, 2.f, 1.f,  //
                                        6.f, 5.f, 4.f, 3.f, 2.f, 1.f,  //
                                        6.f, 5.f, 4.f, 3.f, 2.f, 1.f})
                                .view({3, 6});
  const at::Tensor labels = at::tensor({0L, 2L, 5L});
  const ClassifyCounts c = score_batch(logits, labels);
  EXPECT_EQ(c.count, 3);
  EXPECT_EQ(c.correct1, 1);
  EXPECT_EQ(c.correct5, 2);
  const double want = at::cross_entropy_loss(logits, labels, {}, at::Reduction::Sum).item<double>();
  EXPECT_NEAR(c.loss_sum, want, 1e-9);
  EXPECT_THROW(score_batch(logits, at::tensor({0L, 2L, 6L})), InputError);
}

TEST(Classify, ShardsCoverEveryImageOnceForAnyWorldSize) {
  data::ImageSet set;
  set.images = at::zeros({10, 1, 4, 4}, at::kByte);
  set.labels = at::arange(10, at::kLong);
  set.name = "ten";
  const auto all = std::make_shared<const data::MemoryDataset>(set);
  for (int64_t world : {1, 3, 4, 7, 10, 12}) {
    std::vector<int64_t> seen;
    for (int64_t r = 0; r < world; ++r) {
      const auto shard = data::take_shard(all, r, world);
      EXPECT_LE(shard->size(), (10 + world - 1) / world);
      for (int64_t i = 0; i < shard->size(); ++i) seen.push_back(shard->label(i));
    }
    std::vector<int64_t> want(10);
    std::iota(want.begin(), want.end(), 0);
    EXPECT_EQ(seen, want) << "world " << world;
  }
  EXPECT_THROW(data::take_shard(all, 3, 3), InputError);
}

TEST(Classify, EvaluateClassifierSeesEveryImageOnce) {
  data::ImageSet set;
  set.images = at::zeros({11, 1, 4, 4}, at::kByte);
  set.labels = at::arange(11, at::kLong).remainder(3);
  set.name = "eleven";
  const auto all = std::make_shared<const data::MemoryDataset>(set);
  data::AugmentConfig tf;
  tf.out_size = 4;
  tf.random = false;
  // A "classifier" that always answers class 1: top-1 counts the images of class 1 (indices 1, 4, 7, 10).
  const LogitsFn one = [](const at::Tensor& imgs) {
    return at::tensor({0.f, 1.f, 0.f}).repeat({imgs.size(0), 1});
  };
  int64_t count = 0, hits = 0;
  for (int64_t r = 0; r < 3; ++r) {
    const ClassifyCounts c = evaluate_classifier(one, data::take_shard(all, r, 3), tf, 2, 0, false);
    count += c.count;
    hits += c.correct1;
  }
  EXPECT_EQ(count, 11);
  EXPECT_EQ(hits, 4);
}

}  // namespace
}  // namespace semaim::eval
