// timm SoftTargetCrossEntropy and LabelSmoothingCrossEntropy as the same ATen ops in the same order.
#include "semaim/models/losses.h"

#include <string>

#include "semaim/core/errors.h"

namespace semaim::models {
namespace {

void check_logits(const at::Tensor& logits, const char* where) {
  if (logits.dim() != 2) throw InputError(where, "logits must be (B, K), got " + c10::str(logits.sizes()));
}

}  // namespace

at::Tensor soft_target_cross_entropy(const at::Tensor& logits, const at::Tensor& soft) {
  check_logits(logits, "soft_target_cross_entropy");
  if (soft.sizes() != logits.sizes())
    throw InputError("soft_target_cross_entropy", "soft targets " + c10::str(soft.sizes()) +
                                                      " do not match the logits " + c10::str(logits.sizes()));
  return at::sum(-soft * at::log_softmax(logits, -1), -1).mean();
}

at::Tensor label_smoothing_cross_entropy(const at::Tensor& logits, const at::Tensor& labels,
                                         double smoothing) {
  check_logits(logits, "label_smoothing_cross_entropy");
  if (!(smoothing >= 0 && smoothing < 1))
    throw InputError("label_smoothing_cross_entropy",
                     "smoothing must be in [0, 1), got " + std::to_string(smoothing));
  if (labels.dim() != 1 || labels.size(0) != logits.size(0))
    throw InputError(
        "label_smoothing_cross_entropy",
        "labels " + c10::str(labels.sizes()) + " do not match the logits " + c10::str(logits.sizes()));
  const at::Tensor logprobs = at::log_softmax(logits, -1);
  const at::Tensor nll = -logprobs.gather(-1, labels.to(at::kLong).unsqueeze(1)).squeeze(1);
  const at::Tensor smooth = -logprobs.mean(-1);
  return (nll * (1.0 - smoothing) + smooth * smoothing).mean();
}

}  // namespace semaim::models
