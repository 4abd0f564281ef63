// Classification losses for fine-tuning: timm's SoftTargetCrossEntropy (mixup / cutmix soft targets) and
// LabelSmoothingCrossEntropy (hard labels when mixing is off), timm/loss/cross_entropy.py.
#pragma once
#include <ATen/ATen.h>

namespace semaim::models {

// Mean over the batch of -sum_k soft[k] * log_softmax(logits)[k]. logits: (B, K), soft: (B, K) -> ()
at::Tensor soft_target_cross_entropy(const at::Tensor& logits, const at::Tensor& soft);

// Mean over the batch of (1 - smoothing) * nll(label) + smoothing * mean_k(-log_softmax(logits)[k]).
// logits: (B, K), labels: (B) int64 -> ()
at::Tensor label_smoothing_cross_entropy(const at::Tensor& logits, const at::Tensor& labels,
                                         double smoothing);

}  // namespace semaim::models
