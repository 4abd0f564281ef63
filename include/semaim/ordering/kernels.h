// C++ entry points of semaim's fused ordering ops (method.md §6; kernels/): the CPU twin or the CUDA kernel,
// chosen by the dispatcher from the inputs' device. ordering::order_from_keys (ordering.h) is the other op.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <tuple>

namespace semaim::ordering {

// method.md §6 steps 2-5 in one op: L2-normalize (fp32 accumulation for bf16/fp16), cosine of every patch to
// the cls token (source "cls") or to the mean patch ("gap"), center = argmax (NaN first, ties to the lowest
// index, as at::argmax), then patches sorted by exact grid distance from the center, ties by noise
// (NaN last), then by index -- the order of semantic_order_reference.
// tokens: (N, L+1, D) float32/bfloat16/float16/float64, L = gh*gw; noise: (N, L) float32/float64 on the same
// device -> order (N, L), inverse (N, L), center (N), all int64 (order[i][k] = patch visited k-th).
// Bad shapes, dtypes, grids, sources or devices throw InputError.
std::tuple<at::Tensor, at::Tensor, at::Tensor> semantic_order(const at::Tensor& tokens, int64_t gh,
                                                              int64_t gw, const std::string& source,
                                                              const at::Tensor& noise);

// method.md §5 `parts` in one op (CPU twin or CUDA kernel): the order of ordering::parts_keys
// (ordering.h documents the k-means, its init, empty clusters and the total order), bit-exact.
// tokens: (N, L+1, D) float32/bfloat16/float16/float64 (computed in fp32), L = gh*gw; 1 <= k <= L;
// 0 <= iters <= 1000; noise: (N, L) float32/float64 on the same device -> order (N, L), inverse (N, L)
// int64. Bad shapes, dtypes, grids, k, iters or devices throw InputError.
std::tuple<at::Tensor, at::Tensor> parts_order(const at::Tensor& tokens, int64_t gh, int64_t gw, int64_t k,
                                               int64_t iters, const at::Tensor& noise);

// True iff this build registered the CUDA kernels (kernels/*.cu) next to the CPU twins.
bool cuda_kernels_built();

}  // namespace semaim::ordering
