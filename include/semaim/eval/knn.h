// Weighted k-NN classification on frozen features (Wu et al. 2018 as DINO's eval_knn implements it): cosine
// similarity to every training feature, the top k neighbours vote with weight exp(sim / T), several k from
// one top-k pass; the test features go through in chunks so the similarity matrix stays chunk x N.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

namespace semaim::eval {

struct KnnCounts {
  std::vector<int64_t> ks;
  std::vector<int64_t> correct1, correct5;  // per k
  int64_t count = 0;
};

// train_x: (N, D), train_y: (N) int64 in [0, num_classes), test_x: (M, D), test_y: (M) -> hits per k.
// Features are L2-normalized here. InputError for k > N, a bad temperature or mismatched shapes.
KnnCounts knn_counts(const at::Tensor& train_x, const at::Tensor& train_y, const at::Tensor& test_x,
                     const at::Tensor& test_y, const std::vector<int64_t>& ks, double temperature,
                     int64_t num_classes, int64_t chunk_size);

}  // namespace semaim::eval
