// Activation checkpointing of one transformer block (PyTorch's reentrant torch.utils.checkpoint, which
// LibTorch lacks): the forward keeps only the block's inputs, the backward recomputes the block and
// backpropagates.
#pragma once
#include <ATen/core/Tensor.h>

#include <functional>
#include <vector>

namespace semaim::models {

// A block's forward as a function of its differentiable inputs; everything else (masks, flags, the module) is
// captured. It must return a new tensor, and the captured module must outlive the backward pass.
using RecomputeFn = std::function<at::Tensor(const std::vector<at::Tensor>&)>;

// Whether a block marked for checkpointing is checkpointed in this call: in training, with grad mode on and
// some input requiring grad. Otherwise the block runs normally (with no input requiring grad the recomputed
// graph would never be reached and its parameters would get no gradient).
bool recompute_applies(bool training, const std::vector<at::Tensor>& inputs);

// fn(inputs) run without grad, keeping only the inputs, the default generators' states (CPU, and each other
// device the inputs live on) and the autocast state. Its backward restores those (the generators are put back
// afterwards, so the random stream after the backward is the one without checkpointing), reruns fn with grad
// on inputs detached to fresh leaves and backpropagates the output's gradient through it: parameter
// gradients accumulate into .grad during that inner backward, the inputs' gradients flow on.
// inputs: tensors of any shape -> fn(inputs)
at::Tensor recompute_in_backward(const RecomputeFn& fn, const std::vector<at::Tensor>& inputs);

}  // namespace semaim::models
