// Weighted k-NN (DINO eval_knn.knn_classifier): one top-max(k) pass per chunk of test features, the votes of
// the first k neighbours for each k.
#include "semaim/eval/knn.h"

#include <algorithm>

#include "semaim/core/errors.h"

namespace semaim::eval {
namespace {

// Rows scaled to unit L2 norm (torch.nn.functional.normalize). x: (N, D) -> (N, D) float32
at::Tensor l2_normalize(const at::Tensor& x) {
  const at::Tensor f = x.to(at::kFloat);
  return f / f.norm(2, {1}, /*keepdim=*/true).clamp_min(1e-12);
}

}  // namespace

KnnCounts knn_counts(const at::Tensor& train_x, const at::Tensor& train_y, const at::Tensor& test_x,
                     const at::Tensor& test_y, const std::vector<int64_t>& ks, double temperature,
                     int64_t num_classes, int64_t chunk_size) {
  const char* where = "knn";
  if (train_x.dim() != 2 || test_x.dim() != 2 || train_x.size(1) != test_x.size(1) ||
      train_y.numel() != train_x.size(0) || test_y.numel() != test_x.size(0))
    throw InputError(where, "features " + c10::str(train_x.sizes()) + " / " + c10::str(test_x.sizes()) +
                                " do not match their labels");
  if (ks.empty()) throw InputError("knn.k", "no neighbour count given");
  const int64_t n = train_x.size(0), kmax = *std::max_element(ks.begin(), ks.end());
  if (*std::min_element(ks.begin(), ks.end()) < 1 || kmax > n)
    throw InputError("knn.k", "every k must lie in [1, " + std::to_string(n) + "] (the training features)");
  if (!(temperature > 0)) throw InputError("knn.temperature", "must be positive");
  if (chunk_size < 1) throw InputError("knn.chunk_size", "must be positive");
  if (n && (train_y.min().item<int64_t>() < 0 || train_y.max().item<int64_t>() >= num_classes))
    throw InputError(where, "a training label lies outside [0, " + std::to_string(num_classes) + ")");

  const at::Tensor bank = l2_normalize(train_x);
  const at::Tensor bank_y = train_y.to(at::kLong);
  KnnCounts c;
  c.ks = ks;
  c.correct1.assign(ks.size(), 0);
  c.correct5.assign(ks.size(), 0);
  at::NoGradGuard ng;
  for (int64_t start = 0; start < test_x.size(0); start += chunk_size) {
    const int64_t m = std::min(chunk_size, test_x.size(0) - start);
    const at::Tensor q = l2_normalize(test_x.narrow(0, start, m));
    const at::Tensor y = test_y.narrow(0, start, m).to(at::kLong);
    auto [sim, idx] = q.matmul(bank.t()).topk(kmax, 1);  // (m, kmax), most similar first
    const at::Tensor weight = (sim / temperature).exp();
    const at::Tensor labels = bank_y.index_select(0, idx.reshape(-1)).view({m, kmax});
    for (size_t i = 0; i < ks.size(); ++i) {
      // (m, C): each class's summed weight among the first k neighbours
      const at::Tensor votes = at::zeros({m, num_classes}, weight.options())
                                   .scatter_add_(1, labels.narrow(1, 0, ks[i]), weight.narrow(1, 0, ks[i]));
      auto [top_votes, top] = votes.topk(std::min<int64_t>(5, num_classes), 1);
      // A class no neighbour voted for is not a prediction (its rank among the zero votes is arbitrary).
      const at::Tensor hit = top.eq(y.unsqueeze(1)).logical_and(top_votes.gt(0));
      c.correct1[i] += hit.select(1, 0).sum().item<int64_t>();
      c.correct5[i] += hit.any(1).sum().item<int64_t>();
    }
    c.count += m;
  }
  return c;
}

}  // namespace semaim::eval
