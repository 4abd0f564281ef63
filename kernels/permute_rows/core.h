// Host+device math of semaim::permute_rows (natural <-> ordered token layouts, method.md §4's sorted form)
// and semaim::permute_rows_sum, shared by permute_rows_cpu.cpp and permute_rows.cu; references: index_select
// on the flattened rows (+ the add), and index_add into zeros.
#pragma once
#include <ATen/OpMathType.h>
#include <c10/macros/Macros.h>

#include <cstdint>

namespace semaim::kernels {

// Element strides of an (N, L, D) x; a shared (L, D) table has n = 0.
struct RowStrides {
  int64_t n, l, d;
};

// Offset of x[img, src, j].
C10_HOST_DEVICE inline int64_t permute_src_offset(int64_t img, int64_t src, int64_t j, RowStrides s) {
  return img * s.n + src * s.l + j * s.d;
}

// One output element: x (+ add) as ATen adds two tensors of one dtype: in the op-math type, rounded once.
template <typename scalar_t>
C10_HOST_DEVICE inline scalar_t permute_add(scalar_t x, scalar_t a) {
  using acc_t = at::opmath_type<scalar_t>;
  return static_cast<scalar_t>(static_cast<acc_t>(x) + static_cast<acc_t>(a));
}

// One term of semaim::permute_rows_sum (the sum over images of a gather, a shared table's gradient): acc + v
// in the op-math type; the sum runs over the images in order and is rounded to scalar_t once at the end, as
// index_add into zeros adds image after image.
template <typename scalar_t>
C10_HOST_DEVICE inline at::opmath_type<scalar_t> permute_sum_add(at::opmath_type<scalar_t> acc, scalar_t v) {
  return acc + static_cast<at::opmath_type<scalar_t>>(v);
}

}  // namespace semaim::kernels
