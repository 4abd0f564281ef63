// Differentiable gather between the natural and the ordered token layouts (method.md §4's sorted form): the
// semaim::permute_rows op (CPU twin or CUDA kernel) inside an autograd function, and its ATen reference.
#pragma once
#include <ATen/core/Tensor.h>

namespace semaim::kernels {

// out[n, k] = x[n, index[n, k]] (+ add[index[n, k]]), with index a per-row permutation and inverse its
// inverse (inverse[n, index[n, k]] = k): the backward of a gather by a permutation is the gather by its
// inverse, so it runs the same op; a shared table's gradient is semaim::permute_rows_sum by the inverse.
// x: (N, L, D) in any strides or a shared (L, D) table, add: (L, D) or undefined, index/inverse: (N, L) int64
// -> (N, L, D) contiguous. A token-major x (the patch embedding's output, unit stride along L) gets its
// gradient in its own layout. When x and add differ in dtype (bf16 autocast output + an fp32 table) both are
// promoted as ATen's add would. Bad shapes, dtypes or devices throw c10::Error naming the fault.
at::Tensor permute_rows(const at::Tensor& x, const at::Tensor& index, const at::Tensor& inverse,
                        const at::Tensor& add = at::Tensor());

// out[p] = sum over n of x[n, index[n, p]], without autograd: the gradient of a shared (L, D) table gathered
// by index's inverse, without an (N, L, D) intermediate. x: (N, L, D) floating, index: (N, L) int64 in [0, L)
// -> (L, D) of x's dtype, the images summed in order in the op-math type (fp32 for bf16/fp16).
at::Tensor permute_rows_sum(const at::Tensor& x, const at::Tensor& index);

// The ATen composition the op is held to: index_select on the flattened rows, + add.index_select.
at::Tensor permute_rows_reference(const at::Tensor& x, const at::Tensor& index,
                                  const at::Tensor& add = at::Tensor());

// permute_rows_sum's: image by image, acc += x[n].index_select(0, index[n]) in the op-math type, then cast.
at::Tensor permute_rows_sum_reference(const at::Tensor& x, const at::Tensor& index);

}  // namespace semaim::kernels
