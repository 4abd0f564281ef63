// Classification evaluation (MAE engine_finetune.evaluate, timm's validate): top-1, top-5 and cross-entropy
// over one rank's shard of the validation split under the evaluation transform, as counts so that ranks sum
// them exactly (data::take_shard covers every image once whatever the world size).
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <functional>
#include <memory>

#include "semaim/data/dataset.h"
#include "semaim/data/loader.h"
#include "semaim/data/transforms.h"

namespace semaim::eval {

struct ClassifyCounts {
  double loss_sum = 0;  // summed cross-entropy of the samples
  int64_t correct1 = 0, correct5 = 0, count = 0;
  int64_t bad_images = 0;  // samples replaced because their file did not decode
  double top1() const { return count ? 100.0 * static_cast<double>(correct1) / count : 0.0; }
  double top5() const { return count ? 100.0 * static_cast<double>(correct5) / count : 0.0; }
  double loss() const { return count ? loss_sum / count : 0.0; }
};

// Logits of normalized images: (B, C, H, W) -> (B, K); called under NoGradGuard.
using LogitsFn = std::function<at::Tensor(const at::Tensor& images)>;

// An in-order, unshuffled loader of every sample of `set` under the evaluation transform (eval_tf.random is
// ignored), started at epoch 0: what every evaluation reads.
std::unique_ptr<data::Loader> eval_loader(std::shared_ptr<const data::Dataset> set,
                                          const data::AugmentConfig& eval_tf, int64_t batch_size,
                                          int64_t num_workers, bool fail_on_bad_image);

// Top-1 / top-5 hits and the summed cross-entropy of one batch. logits: (B, K), labels: (B) -> counts
ClassifyCounts score_batch(const at::Tensor& logits, const at::Tensor& labels);

// Every sample of `set` (labelled) through eval_tf in order, in batches of `batch_size`.
ClassifyCounts evaluate_classifier(const LogitsFn& logits, std::shared_ptr<const data::Dataset> set,
                                   const data::AugmentConfig& eval_tf, int64_t batch_size,
                                   int64_t num_workers, bool fail_on_bad_image);

}  // namespace semaim::eval
