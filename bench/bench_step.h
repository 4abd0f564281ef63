// A task's optimizer step as the step benchmarks time it: one micro-batch, the loss under autocast, backward
// and the update through engine::StepRunner (no clipping, one rank).
#pragma once
#include <functional>
#include <memory>
#include <utility>
#include <vector>

#include "semaim/core/errors.h"
#include "semaim/engine/autocast.h"
#include "semaim/engine/optimizer.h"
#include "semaim/engine/step.h"

namespace semaim::bench {

class OptimizerStep {
 public:
  OptimizerStep(const engine::NamedParams& params, std::unique_ptr<engine::Optimizer> opt, bool bf16)
      : bf16_(bf16), opt_(std::move(opt)) {
    std::vector<at::Tensor> tensors;
    for (const auto& [n, p] : params) tensors.push_back(p);
    runner_ = std::make_unique<engine::StepRunner>(tensors, *opt_, 1, 0.0, nullptr, nullptr, nullptr);
  }
  // One step at lr 1e-4 on the loss `loss_fn` computes (under bf16 autocast when asked).
  void run(const std::function<at::Tensor()>& loss_fn) {
    runner_->begin_micro(0);
    at::Tensor loss;
    {
      engine::AutocastGuard ac(at::kCPU, bf16_);
      loss = loss_fn();
    }
    runner_->backward(loss);
    if (!runner_->finish(1e-4).applied) throw RuntimeFailure("a benchmark step was skipped (non-finite)");
  }

 private:
  bool bf16_;
  std::unique_ptr<engine::Optimizer> opt_;
  std::unique_ptr<engine::StepRunner> runner_;
};

}  // namespace semaim::bench
