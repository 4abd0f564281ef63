// Top-1 / top-5 / loss counts of a classifier on a dataset shard (MAE engine_finetune.evaluate).
#include "semaim/eval/classify.h"

#include <algorithm>

#include "semaim/core/errors.h"

namespace semaim::eval {

std::unique_ptr<data::Loader> eval_loader(std::shared_ptr<const data::Dataset> set,
                                          const data::AugmentConfig& eval_tf, int64_t batch_size,
                                          int64_t num_workers, bool fail_on_bad_image) {
  data::LoaderConfig lc;
  lc.batch_size = batch_size;
  lc.num_workers = num_workers;
  lc.shuffle = false;
  lc.drop_last = false;
  lc.augment = eval_tf;
  lc.augment.random = false;
  lc.fail_on_bad_image = fail_on_bad_image;
  auto loader = std::make_unique<data::Loader>(std::move(set), lc);
  loader->start_epoch(0);
  return loader;
}

// logits: (B, K), labels: (B) -> counts
ClassifyCounts score_batch(const at::Tensor& logits, const at::Tensor& labels) {
  if (logits.dim() != 2 || labels.dim() != 1 || logits.size(0) != labels.size(0))
    throw RuntimeFailure("evaluate: logits " + c10::str(logits.sizes()) + " do not match labels " +
                         c10::str(labels.sizes()));
  const at::Tensor lg = logits.to(at::kCPU, at::kFloat), y = labels.to(at::kCPU, at::kLong);
  const int64_t k = lg.size(1);
  if (y.numel() && (y.min().item<int64_t>() < 0 || y.max().item<int64_t>() >= k))
    throw InputError("evaluate", "a label lies outside the model's " + std::to_string(k) + " classes");
  ClassifyCounts c;
  c.count = y.size(0);
  c.loss_sum = at::cross_entropy_loss(lg, y, {}, at::Reduction::Sum).item<double>();
  const at::Tensor top = std::get<1>(lg.topk(std::min<int64_t>(5, k), 1));  // (B, min(5, K))
  const at::Tensor hit = top.eq(y.unsqueeze(1));
  c.correct1 = hit.select(1, 0).sum().item<int64_t>();
  c.correct5 = hit.any(1).sum().item<int64_t>();
  return c;
}

ClassifyCounts evaluate_classifier(const LogitsFn& logits, std::shared_ptr<const data::Dataset> set,
                                   const data::AugmentConfig& eval_tf, int64_t batch_size,
                                   int64_t num_workers, bool fail_on_bad_image) {
  ClassifyCounts total;
  if (set->size() == 0) return total;
  auto loader = eval_loader(std::move(set), eval_tf, batch_size, num_workers, fail_on_bad_image);
  at::NoGradGuard no_grad;
  while (auto b = loader->next()) {
    const ClassifyCounts c = score_batch(logits(b->images), b->labels);
    total.loss_sum += c.loss_sum;
    total.correct1 += c.correct1;
    total.correct5 += c.correct5;
    total.count += c.count;
  }
  total.bad_images = loader->bad_images();
  return total;
}

}  // namespace semaim::eval
