// Batch normalization whose training statistics cover every rank's batch (torch.nn.SyncBatchNorm), for the
// segmentation heads. With one rank (no reduction set) it is exactly torch::nn::BatchNorm2d; it keeps the same
// parameter and buffer names (weight, bias, running_mean, running_var, num_batches_tracked), so checkpoints
// do not depend on the rank count.
#pragma once
#include <ATen/ATen.h>
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include <cstdint>
#include <functional>
#include <memory>

namespace semaim::models {

// Sums a contiguous float64 CPU or device tensor over the training ranks, in place (an all-reduce). Every rank
// calls it in the same order: once per synchronized layer in forward, once in backward.
using SumAcrossRanks = std::function<void(at::Tensor&)>;

class SyncBatchNorm2dImpl : public torch::nn::Module {
 public:
  explicit SyncBatchNorm2dImpl(int64_t channels, double eps = 1e-5, double momentum = 0.1);
  // x: (N, C, H, W) -> (N, C, H, W). Training with a reduction: mean and biased variance over N*H*W of every
  // rank (the running variance gets the unbiased one); the backward pass sums its two reductions over ranks.
  // Training without one, or eval: at::batch_norm.
  at::Tensor forward(const at::Tensor& x);
  // nullptr: plain BatchNorm. Layers of one model share the function (set_sync_batchnorm).
  void set_sum_across_ranks(std::shared_ptr<const SumAcrossRanks> sum) { sum_ = std::move(sum); }
  bool synchronized() const { return sum_ != nullptr; }

  at::Tensor weight, bias, running_mean, running_var, num_batches_tracked;

 private:
  double eps_, momentum_;
  std::shared_ptr<const SumAcrossRanks> sum_;
};
TORCH_MODULE(SyncBatchNorm2d);

// Sets the reduction of every SyncBatchNorm2d in `module`'s tree; returns how many there are.
int64_t set_sync_batchnorm(torch::nn::Module& module, std::shared_ptr<const SumAcrossRanks> sum);

}  // namespace semaim::models
