// semaim::permute_rows with autograd (permute_rows.h): forward and backward both call the ops through the
// dispatcher, so the CPU twin or the CUDA kernel runs by the tensors' device.
#include "kernels/permute_rows/permute_rows.h"

#include <ATen/ATen.h>
#include <ATen/OpMathType.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/csrc/autograd/custom_function.h>

#include "kernels/ops.h"

namespace semaim::kernels {
namespace {

// The op through the dispatcher. x: (N, L, D) or (L, D), index: (N, L), add: (L, D) or undefined -> (N, L, D)
at::Tensor call_op(const at::Tensor& x, const at::Tensor& index, const at::Tensor& add) {
  link_ops();
  static const auto op =
      c10::Dispatcher::singleton()
          .findSchemaOrThrow("semaim::permute_rows", "")
          .typed<at::Tensor(const at::Tensor&, const at::Tensor&, const c10::optional<at::Tensor>&)>();
  return op.call(x, index, add.defined() ? c10::optional<at::Tensor>(add) : c10::nullopt);
}

// The gradient of a shared table from the output's, the sum over images of the gather by the inverse.
// grad: (N, L, D), inverse: (N, L) -> (L, D)
at::Tensor table_grad(const at::Tensor& grad, const at::Tensor& inverse) {
  link_ops();
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("semaim::permute_rows_sum", "")
                             .typed<at::Tensor(const at::Tensor&, const at::Tensor&)>();
  return op.call(grad, inverse);
}

// Records x's layout for the backward when x is token-major (unit stride along the tokens, dense: the patch
// embedding's output seen as (N, L, D)), so that x's gradient comes back in it and the convolution before it
// gets its gradient in its own (N, D, gh, gw) layout instead of copying a row-major one.
void save_input_layout(torch::autograd::AutogradContext* ctx, const at::Tensor& x) {
  if (x.dim() == 3 && x.size(1) > 1 && x.size(2) > 1 && x.stride(1) == 1 && x.stride(2) != 1 &&
      x.is_non_overlapping_and_dense()) {
    ctx->saved_data["strides"] = x.strides().vec();
  }
}

// The gradient of x (N, L, D) from the output's: the gather by the inverse, copied into x's layout when
// recorded. The op reads grad through its strides (in the model, a slice of the gradient of the [cls,
// patches] concatenation), so it is not made contiguous first.
at::Tensor natural_grad(torch::autograd::AutogradContext* ctx, const at::Tensor& grad) {
  const at::Tensor g = call_op(grad, ctx->get_saved_variables()[0], at::Tensor());
  const auto strides = ctx->saved_data.find("strides");
  if (strides == ctx->saved_data.end()) return g;
  return at::empty_strided(g.sizes(), strides->second.toIntVector(), g.options()).copy_(g);
}

// An absent add is no autograd input (its gradient slot stays undefined), so one function serves both forms.
class PermuteRowsFn : public torch::autograd::Function<PermuteRowsFn> {
 public:
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x,
                            const at::Tensor& index, const at::Tensor& inverse,
                            const c10::optional<at::Tensor>& add) {
    ctx->save_for_backward({inverse});
    ctx->saved_data["shared"] = x.dim() == 2;
    ctx->saved_data["has_add"] = add.has_value();
    save_input_layout(ctx, x);
    at::AutoDispatchBelowADInplaceOrView guard;
    return call_op(x, index, add.value_or(at::Tensor()));
  }

  // grad: (N, L, D) in the output layout -> grads of x, index, inverse, add
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const at::Tensor inverse = ctx->get_saved_variables()[0];
    const bool shared = ctx->saved_data["shared"].toBool();
    // needs_input_grad counts autograd inputs only: add's is 3 when present.
    const bool need_x = ctx->needs_input_grad(0);
    const bool need_add = ctx->saved_data["has_add"].toBool() && ctx->needs_input_grad(3);
    at::Tensor table;  // the table's gradient, for a shared x and for add
    if ((need_x && shared) || need_add) table = table_grad(grads[0], inverse);
    const at::Tensor x_grad = need_x ? (shared ? table : natural_grad(ctx, grads[0])) : at::Tensor();
    return {x_grad, at::Tensor(), at::Tensor(), need_add ? table : at::Tensor()};
  }
};

}  // namespace

at::Tensor permute_rows_sum(const at::Tensor& x, const at::Tensor& index) { return table_grad(x, index); }

at::Tensor permute_rows(const at::Tensor& x, const at::Tensor& index, const at::Tensor& inverse,
                        const at::Tensor& add) {
  TORCH_CHECK(inverse.defined() && inverse.sizes() == index.sizes(),
              "semaim::permute_rows: inverse must have index's shape ", index.sizes());
  if (!add.defined()) return PermuteRowsFn::apply(x, index, inverse, c10::nullopt);
  if (add.scalar_type() != x.scalar_type()) {
    const auto t = at::result_type(x, add);
    return PermuteRowsFn::apply(x.to(t), index, inverse, add.to(t));
  }
  return PermuteRowsFn::apply(x, index, inverse, add);
}

at::Tensor permute_rows_reference(const at::Tensor& x, const at::Tensor& index, const at::Tensor& add) {
  const int64_t n = index.size(0), l = index.size(1), d = x.size(-1);
  at::Tensor rows = index;
  if (x.dim() == 3) rows = index + at::arange(n, index.options()).mul_(l).unsqueeze(1);
  at::Tensor out = x.reshape({-1, d}).index_select(0, rows.reshape({-1})).view({n, l, d});
  if (add.defined()) out = out + add.index_select(0, index.reshape({-1})).view({n, l, d});
  return out;
}

at::Tensor permute_rows_sum_reference(const at::Tensor& x, const at::Tensor& index) {
  const auto acc_type = at::toOpMathType(x.scalar_type());
  at::Tensor acc = at::zeros({x.size(1), x.size(2)}, x.options().dtype(acc_type));
  for (int64_t n = 0; n < x.size(0); ++n) acc.add_(x[n].index_select(0, index[n]).to(acc_type));
  return acc.to(x.scalar_type());
}

}  // namespace semaim::kernels
