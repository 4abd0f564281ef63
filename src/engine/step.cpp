// The optimizer step: accumulation, rank averaging, non-finite skip, clipping, update, EMA.
#include "semaim/engine/step.h"

#include "semaim/core/errors.h"
#include "semaim/engine/autocast.h"

#include <cmath>

namespace semaim::engine {

ModelEma::ModelEma(torch::nn::Module& model, torch::nn::Module& ema, double decay)
    : model_(model), ema_(ema), decay_(decay) {
  for (auto& p : ema_.parameters()) p.set_requires_grad(false);
}

void ModelEma::update() {
  at::NoGradGuard ng;
  auto ema_params = ema_.parameters();
  auto model_params = model_.parameters();
  at::_foreach_lerp_(ema_params, model_params, 1.0 - decay_);
}

void ModelEma::reset() {
  at::NoGradGuard ng;
  auto src = model_.named_parameters(true);
  auto dst = ema_.named_parameters(true);
  for (const auto& p : src) dst[p.key()].copy_(p.value());
  auto src_b = model_.named_buffers(true);
  auto dst_b = ema_.named_buffers(true);
  for (const auto& b : src_b) dst_b[b.key()].copy_(b.value());
}

std::unique_ptr<dist::Reducer> make_reducer(const std::vector<std::pair<std::string, at::Tensor>>& params,
                                            const config::Config& cfg, RunContext& ctx) {
  if (ctx.world() == 1) return nullptr;
  dist::check_parameters_match(params, *ctx.comm);
  const double mib = 1024.0 * 1024.0;
  auto reducer = std::make_unique<dist::Reducer>(
      params, *ctx.comm,
      dist::ReducerConfig{static_cast<int64_t>(cfg.get_float("dist.bucket_cap_mb") * mib),
                          static_cast<int64_t>(cfg.get_float("dist.first_bucket_mb") * mib)});
  reducer->broadcast_parameters(0);
  return reducer;
}

StepRunner::StepRunner(std::vector<at::Tensor> params, Optimizer& opt, int64_t accum_steps, double clip_grad,
                       dist::Reducer* reducer, dist::Communicator* comm, ModelEma* ema)
    : params_(std::move(params)),
      opt_(opt),
      accum_(accum_steps),
      clip_(clip_grad),
      reducer_(reducer),
      comm_(comm),
      ema_(ema) {}

void StepRunner::begin_micro(int64_t micro) {
  if (micro == 0) {
    finite_ = true;
    loss_ = 0;
  }
  if (reducer_) reducer_->prepare(/*sync=*/micro == accum_ - 1);
}

void StepRunner::backward(const at::Tensor& loss) {
  const double lv = loss.item<double>();
  if (!std::isfinite(lv)) {
    finite_ = false;
    if (!reducer_) return;
  }
  if (finite_ || reducer_) (loss / static_cast<double>(accum_)).backward();
  if (std::isfinite(lv)) loss_ += lv / accum_;
}

StepResult StepRunner::finish(double lr) {
  if (reducer_) {
    reducer_->finish();
    at::Tensor ok = at::full({1}, finite_ ? 1.0 : 0.0, at::kDouble);
    comm_->all_reduce(ok, dist::ReduceOp::kSum);
    finite_ =
        ok.item<double>() == comm_->world_size();  // one rank's non-finite loss skips the step everywhere
  }
  StepResult r;
  r.loss = loss_;
  if (finite_) {
    r.grad_norm = clip_grad_norm(params_, clip_);
    if (!std::isfinite(r.grad_norm)) finite_ = false;
  }
  if (!finite_) {
    zero_grad();
    return r;
  }
  opt_.set_lr(lr);
  opt_.step();
  zero_grad();
  if (ema_) ema_->update();
  r.applied = true;
  return r;
}

void StepRunner::zero_grad() {
  if (reducer_)
    reducer_->zero_grad();
  else
    opt_.zero_grad();
}

TrainWiring::TrainWiring(torch::nn::Module& model, torch::nn::Module* ema_model,
                         std::unique_ptr<Optimizer> optimizer,
                         const std::vector<std::pair<std::string, at::Tensor>>& params,
                         const TrainSettings& train, const config::Config& cfg, RunContext& ctx,
                         int64_t steps_per_epoch)
    : opt(std::move(optimizer)) {
  if (ema_model) {
    ema.emplace(model, *ema_model, train.ema_decay);
    ema->reset();
  }
  reducer = make_reducer(params, cfg, ctx);
  if (reducer && ema) ema->reset();
  std::vector<at::Tensor> tensors;
  for (const auto& [n, p] : params) tensors.push_back(p);
  runner = std::make_unique<StepRunner>(tensors, *opt, train.accum_steps, train.clip_grad, reducer.get(),
                                        ctx.comm.get(), ema ? &*ema : nullptr);
  state.model = &model;
  state.optimizer = opt.get();
  state.ema = ema_model;
  state.steps_per_epoch = steps_per_epoch;
  state.accum_steps = train.accum_steps;
}

StepResult accumulate_step(TrainWiring& w, data::Loader& data, int64_t accum_steps, at::DeviceType device, bool bf16,
                           double lr, const std::function<at::Tensor(const data::Batch& batch)>& loss_fn) {
  for (int64_t micro = 0; micro < accum_steps; ++micro) {
    auto b = data.next();
    if (!b) throw RuntimeFailure("data loader ended the epoch early (internal error)");
    w.runner->begin_micro(micro);
    at::Tensor loss;
    {
      AutocastGuard ac(device, bf16);
      loss = loss_fn(*b);
    }
    w.runner->backward(loss);
  }
  return w.runner->finish(lr);
}

}  // namespace semaim::engine
