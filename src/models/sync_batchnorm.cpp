// Synchronized batch normalization (sync_batchnorm.h), the arithmetic of torch.nn.SyncBatchNorm: per-channel
// sums of x and x^2 (float64) summed over ranks give the mean and variance of the global batch; in backward,
// the per-channel sums of dy and dy * x_hat are summed the same way, while the weight and bias gradients stay
// local (the gradient reducer averages them like every other parameter).
#include "semaim/models/sync_batchnorm.h"

#include <torch/autograd.h>

#include <string>

#include "semaim/core/errors.h"

namespace semaim::models {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

at::Tensor per_channel(const at::Tensor& v) { return v.view({1, -1, 1, 1}); }

// The state forward needs besides the differentiable inputs.
struct SyncArgs {
  const SumAcrossRanks* sum;
  at::Tensor running_mean, running_var;
  double eps, momentum;
};

struct SyncBatchNormFn : public torch::autograd::Function<SyncBatchNormFn> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weight,
                            const at::Tensor& bias, const SyncArgs* a) {
    const int64_t c = x.size(1);
    at::Tensor stats = at::cat({x.sum({0, 2, 3}, false, at::kDouble), x.square().sum({0, 2, 3}, false, at::kDouble),
                                at::full({1}, static_cast<double>(x.numel() / c), x.options().dtype(at::kDouble))});
    (*a->sum)(stats);
    const double n = stats[2 * c].item<double>();
    if (n <= 1)
      throw InputError("SyncBatchNorm2d", "needs more than one value per channel over all ranks in training, got " +
                                              std::to_string(static_cast<int64_t>(n)));
    const at::Tensor mean = stats.slice(0, 0, c) / n;
    const at::Tensor var = (stats.slice(0, c, 2 * c) / n - mean.square()).clamp_min(0);
    const at::Tensor invstd = (var + a->eps).rsqrt();
    {
      at::NoGradGuard no_grad;
      a->running_mean.mul_(1 - a->momentum).add_(mean.to(a->running_mean.scalar_type()), a->momentum);
      a->running_var.mul_(1 - a->momentum).add_((var * (n / (n - 1))).to(a->running_var.scalar_type()), a->momentum);
    }
    const at::Tensor mean_x = mean.to(x.scalar_type()), invstd_x = invstd.to(x.scalar_type());
    ctx->save_for_backward({x, weight, mean_x, invstd_x});
    ctx->saved_data["sum"] = reinterpret_cast<int64_t>(a->sum);
    ctx->saved_data["n"] = n;
    return (x - per_channel(mean_x)) * per_channel(invstd_x * weight) + per_channel(bias);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &x = saved[0], &weight = saved[1], &mean = saved[2], &invstd = saved[3];
    const auto* sum = reinterpret_cast<const SumAcrossRanks*>(ctx->saved_data["sum"].toInt());
    const double n = ctx->saved_data["n"].toDouble();
    const at::Tensor& gy = grads[0];
    const int64_t c = x.size(1);
    const at::Tensor x_hat = (x - per_channel(mean)) * per_channel(invstd);
    const at::Tensor local = at::cat({gy.sum({0, 2, 3}, false, at::kDouble), (gy * x_hat).sum({0, 2, 3}, false, at::kDouble)});
    const at::Tensor grad_bias = local.slice(0, 0, c).to(x.scalar_type());
    const at::Tensor grad_weight = local.slice(0, c, 2 * c).to(x.scalar_type());
    at::Tensor global = local.clone();
    (*sum)(global);
    const at::Tensor mean_dy = (global.slice(0, 0, c) / n).to(x.scalar_type());
    const at::Tensor mean_dy_xhat = (global.slice(0, c, 2 * c) / n).to(x.scalar_type());
    const at::Tensor grad_x =
        (gy - per_channel(mean_dy) - x_hat * per_channel(mean_dy_xhat)) * per_channel(weight * invstd);
    return {grad_x, grad_weight, grad_bias, at::Tensor()};
  }
};

}  // namespace

SyncBatchNorm2dImpl::SyncBatchNorm2dImpl(int64_t channels, double eps, double momentum)
    : eps_(eps), momentum_(momentum) {
  weight = register_parameter("weight", at::ones({channels}));
  bias = register_parameter("bias", at::zeros({channels}));
  running_mean = register_buffer("running_mean", at::zeros({channels}));
  running_var = register_buffer("running_var", at::ones({channels}));
  num_batches_tracked = register_buffer("num_batches_tracked", at::zeros({}, at::kLong));
}

at::Tensor SyncBatchNorm2dImpl::forward(const at::Tensor& x) {
  if (x.dim() != 4 || x.size(1) != weight.size(0))
    throw InputError("SyncBatchNorm2d", "expects (N, " + std::to_string(weight.size(0)) + ", H, W), got " +
                                            c10::str(x.sizes()));
  if (is_training()) {
    at::NoGradGuard no_grad;
    num_batches_tracked.add_(1);
  }
  if (!is_training() || !sum_)
    return at::batch_norm(x, weight, bias, running_mean, running_var, is_training(), momentum_, eps_,
                          /*cudnn_enabled=*/true);
  const SyncArgs args{sum_.get(), running_mean, running_var, eps_, momentum_};
  return SyncBatchNormFn::apply(x, weight, bias, &args);
}

int64_t set_sync_batchnorm(torch::nn::Module& module, std::shared_ptr<const SumAcrossRanks> sum) {
  int64_t n = 0;
  for (const auto& m : module.modules(/*include_self=*/true))
    if (auto* bn = m->as<SyncBatchNorm2dImpl>()) {
      bn->set_sum_across_ranks(sum);
      ++n;
    }
  return n;
}

}  // namespace semaim::models
