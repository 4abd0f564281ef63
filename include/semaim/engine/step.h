// One optimizer step over accumulated micro-batches (MAE's engine loop body): backward of loss / accum,
// gradient averaging across ranks, a step that any rank finds non-finite is skipped everywhere, global-norm
// clipping, the update at the scheduled lr, then the EMA.
#pragma once
#include <ATen/ATen.h>
#include <torch/nn/module.h>

#include <vector>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "semaim/config/config.h"
#include "semaim/data/loader.h"
#include "semaim/dist/reducer.h"
#include "semaim/engine/optimizer.h"
#include "semaim/engine/run.h"
#include "semaim/engine/settings.h"
#include "semaim/engine/train_state.h"

namespace semaim::engine {

// Exponential moving average of a model's parameters in a second module of the same architecture.
class ModelEma {
 public:
  ModelEma(torch::nn::Module& model, torch::nn::Module& ema, double decay);
  // ema = ema + (1 - decay) (model - ema), all parameters at once.
  void update();
  // Copies the model's weights into the EMA (start of training, after a broadcast).
  void reset();
  torch::nn::Module& module() { return ema_; }

 private:
  torch::nn::Module& model_;
  torch::nn::Module& ema_;
  double decay_;
};

struct StepResult {
  bool applied = false;  // false: a non-finite loss or gradient norm skipped the update
  double loss = 0;       // mean of the finite micro-batch losses
  double grad_norm = 0;  // before clipping
};

// With several ranks: checks that every rank holds the same parameters, then a bucketed reducer
// (dist.bucket_cap_mb, dist.first_bucket_mb) with rank 0's parameter values broadcast to all. Null on one
// rank.
std::unique_ptr<dist::Reducer> make_reducer(const std::vector<std::pair<std::string, at::Tensor>>& params,
                                            const config::Config& cfg, RunContext& ctx);

class StepRunner {
 public:
  // params: the trainable parameters in the model's order (the clipping norm sums them in that order).
  // reducer/comm: several ranks (both null on one); ema: optional.
  StepRunner(std::vector<at::Tensor> params, Optimizer& opt, int64_t accum_steps, double clip_grad,
             dist::Reducer* reducer, dist::Communicator* comm, ModelEma* ema);
  // Before micro-batch `micro` of the step's accum_steps: starts a step at micro 0; with several ranks, only
  // the last micro-batch communicates.
  void begin_micro(int64_t micro);
  // The micro-batch's loss: backward of loss / accum. A non-finite loss marks the step to be skipped (with
  // several ranks backward still runs so every rank issues the same collectives).
  void backward(const at::Tensor& loss);
  // Ends the step: averages gradients across ranks, clips, and updates at `lr` unless the step is skipped.
  StepResult finish(double lr);
  void zero_grad();

 private:
  std::vector<at::Tensor> params_;
  Optimizer& opt_;
  int64_t accum_;
  double clip_;
  dist::Reducer* reducer_;
  dist::Communicator* comm_;
  ModelEma* ema_;
  bool finite_ = true;
  double loss_ = 0;
};

// What every task wires the same way around its model once the model (and its EMA copy) exist: the EMA
// updater (the copy reset to the model), the optimizer, with several ranks the reducer (rank 0's weights
// broadcast, the EMA reset again), the step runner, and the train state pointing at them.
struct TrainWiring {
  // ema_model: null without EMA; params: the model's trainable parameters in module order, which `optimizer`
  // updates.
  TrainWiring(torch::nn::Module& model, torch::nn::Module* ema_model, std::unique_ptr<Optimizer> optimizer,
              const std::vector<std::pair<std::string, at::Tensor>>& params, const TrainSettings& train,
              const config::Config& cfg, RunContext& ctx, int64_t steps_per_epoch);
  TrainWiring(const TrainWiring&) = delete;
  TrainWiring& operator=(const TrainWiring&) = delete;

  std::optional<ModelEma> ema;
  std::unique_ptr<Optimizer> opt;
  std::unique_ptr<dist::Reducer> reducer;
  std::unique_ptr<StepRunner> runner;
  TrainState state;
};

// One optimizer step of a supervised task: for each of `accum_steps` micro-batches of `data`, the loss of
// loss_fn(batch) (its forward under bf16 autocast when `bf16`) backpropagated through w.runner; then the update at
// `lr`. A loader that ends early is an internal error (RuntimeFailure).
StepResult accumulate_step(TrainWiring& w, data::Loader& data, int64_t accum_steps, at::DeviceType device, bool bf16,
                           double lr, const std::function<at::Tensor(const data::Batch& batch)>& loss_fn);

}  // namespace semaim::engine
