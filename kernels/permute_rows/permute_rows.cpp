// semaim::permute_rows with autograd (permute_rows.h): forward and backward both call the op through the
// dispatcher, so the CPU twin or the CUDA kernel runs by the tensors' device.
#include "kernels/permute_rows/permute_rows.h"

#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/csrc/autograd/custom_function.h>

#include "kernels/ops.h"

namespace semaim::kernels {
namespace {

at::Tensor call_op(const at::Tensor& x, const at::Tensor& index, const at::Tensor& add) {
  link_ops();
  static const auto op =
      c10::Dispatcher::singleton()
          .findSchemaOrThrow("semaim::permute_rows", "")
          .typed<at::Tensor(const at::Tensor&, const at::Tensor&, const c10::optional<at::Tensor>&)>();
  return op.call(x, index, add.defined() ? c10::optional<at::Tensor>(add) : c10::nullopt);
}

// Undefined tensors cannot be autograd inputs, so the form without a table takes three inputs.
class PermuteRowsFn : public torch::autograd::Function<PermuteRowsFn> {
 public:
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x,
                            const at::Tensor& index, const at::Tensor& inverse) {
    ctx->save_for_backward({inverse});
    ctx->saved_data["shared"] = x.dim() == 2;
    at::AutoDispatchBelowADInplaceOrView guard;
    return call_op(x, index, at::Tensor());
  }

  // grad: (N, L, D) in the output layout -> grads of x, index, inverse
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    if (!ctx->needs_input_grad(0)) return {at::Tensor(), at::Tensor(), at::Tensor()};
    const at::Tensor natural = call_op(grads[0].contiguous(), ctx->get_saved_variables()[0], at::Tensor());
    return {ctx->saved_data["shared"].toBool() ? natural.sum(0) : natural, at::Tensor(), at::Tensor()};
  }
};

class PermuteRowsAddFn : public torch::autograd::Function<PermuteRowsAddFn> {
 public:
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x,
                            const at::Tensor& index, const at::Tensor& inverse, const at::Tensor& add) {
    ctx->save_for_backward({inverse});
    ctx->saved_data["shared"] = x.dim() == 2;
    at::AutoDispatchBelowADInplaceOrView guard;
    return call_op(x, index, add);
  }

  // grad: (N, L, D) in the output layout -> grads of x, index, inverse, add
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const bool shared = ctx->saved_data["shared"].toBool();
    const bool need_x = ctx->needs_input_grad(0), need_add = ctx->needs_input_grad(3);
    if (!need_x && !need_add) return {at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
    const at::Tensor natural = call_op(grads[0].contiguous(), ctx->get_saved_variables()[0], at::Tensor());
    at::Tensor table_grad;
    if ((need_x && shared) || need_add) table_grad = natural.sum(0);
    at::Tensor x_grad = need_x ? (shared ? table_grad : natural) : at::Tensor();
    return {x_grad, at::Tensor(), at::Tensor(), need_add ? table_grad : at::Tensor()};
  }
};

}  // namespace

at::Tensor permute_rows(const at::Tensor& x, const at::Tensor& index, const at::Tensor& inverse,
                        const at::Tensor& add) {
  TORCH_CHECK(inverse.defined() && inverse.sizes() == index.sizes(),
              "semaim::permute_rows: inverse must have index's shape ", index.sizes());
  if (!add.defined()) return PermuteRowsFn::apply(x, index, inverse);
  if (add.scalar_type() != x.scalar_type()) {
    const auto t = at::result_type(x, add);
    return PermuteRowsAddFn::apply(x.to(t), index, inverse, add.to(t));
  }
  return PermuteRowsAddFn::apply(x, index, inverse, add);
}

at::Tensor permute_rows_reference(const at::Tensor& x, const at::Tensor& index, const at::Tensor& add) {
  const int64_t n = index.size(0), l = index.size(1), d = x.size(-1);
  at::Tensor rows = index;
  if (x.dim() == 3) rows = index + at::arange(n, index.options()).mul_(l).unsqueeze(1);
  at::Tensor out = x.reshape({-1, d}).index_select(0, rows.reshape({-1})).view({n, l, d});
  if (add.defined()) out = out + add.index_select(0, index.reshape({-1})).view({n, l, d});
  return out;
}

}  // namespace semaim::kernels
