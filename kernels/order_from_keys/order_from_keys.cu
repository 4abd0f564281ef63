// CUDA semaim::order_from_keys: stable per-row argsort (ties by index) and its inverse, one block per row.
// Same core.h order as order_from_keys_cpu.cpp; reference: src/ordering order_from_keys_reference.
//
// Launch: one block of 256 threads per row (grid N); the row's keys (converted to their math type: fp32 for
// bf16/fp16) and next_pow2(L) int32 slots are bitonic-sorted in shared memory for L <= 4096 (<= 48 KiB),
// with keys read from global memory and slots in a global (N, next_pow2(L)) scratch above.
// Bytes moved: N*L*e key reads + N*L*16 order+inverse writes. FLOPs: none beyond N*P*log2(P)^2/4
// comparisons (P = next_pow2(L)): launch- and sort-latency bound.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <cstdint>
#include <type_traits>

#include "kernels/bitonic.cuh"
#include "kernels/ops.h"
#include "kernels/order_from_keys/core.h"

namespace semaim::kernels {
namespace {

constexpr int kThreads = 256;

template <typename key_t>
struct KeyBefore {
  const key_t* keys;
  __device__ bool operator()(int a, int b) const { return key_before(keys[a], a, keys[b], b); }
};

// Bytes of L keys in shared memory, rounded up so the int32 slots after them are aligned.
template <typename key_t>
__host__ __device__ size_t shared_key_bytes(int l) {
  return (sizeof(key_t) * l + sizeof(int) - 1) / sizeof(int) * sizeof(int);
}

template <typename scalar_t>
__global__ void __launch_bounds__(kThreads)
    order_from_keys_kernel(const scalar_t* __restrict__ keys, int l, int p, bool shared_sort,
                           int* __restrict__ slot_scratch, int64_t* __restrict__ order,
                           int64_t* __restrict__ inverse) {
  using key_t = at::opmath_type<scalar_t>;
  extern __shared__ __align__(16) unsigned char smem[];
  const int n = blockIdx.x;
  const scalar_t* row = keys + static_cast<int64_t>(n) * l;
  int64_t* o = order + static_cast<int64_t>(n) * l;
  int64_t* inv = inverse + static_cast<int64_t>(n) * l;
  if (shared_sort) {
    key_t* sk = reinterpret_cast<key_t*>(smem);
    for (int i = threadIdx.x; i < l; i += kThreads) sk[i] = static_cast<key_t>(row[i]);
    int* slots = reinterpret_cast<int*>(smem + shared_key_bytes<key_t>(l));
    sort_into_order(slots, p, l, KeyBefore<key_t>{sk}, o, inv);
  } else if constexpr (std::is_same_v<key_t, scalar_t>) {  // the host widens bf16/fp16 keys for this path
    sort_into_order(slot_scratch + static_cast<int64_t>(n) * p, p, l, KeyBefore<key_t>{row}, o, inv);
  }
}

}  // namespace

// keys: (N, L) -> order (N, L), inverse (N, L) int64
std::tuple<at::Tensor, at::Tensor> order_from_keys_cuda(const at::Tensor& keys) {
  check_order_from_keys_args(keys, c10::DeviceType::CUDA);
  const int64_t n = keys.size(0), l = keys.size(1);
  TORCH_CHECK(l < (int64_t{1} << 30) && n < (int64_t{1} << 31),
              "semaim::order_from_keys: CUDA kernel needs L < 2^30 and N < 2^31, got ", keys.sizes());
  c10::cuda::CUDAGuard guard(keys.device());
  at::Tensor k = keys.contiguous();
  // Above the shared-memory limit the keys are compared in place, so half keys are widened first.
  if (l > kSharedSortMaxL && at::elementSize(k.scalar_type()) < 4 && at::isFloatingType(k.scalar_type())) {
    k = k.to(at::kFloat);
  }
  auto opts = k.options().dtype(at::kLong);
  at::Tensor order = at::empty({n, l}, opts), inverse = at::empty({n, l}, opts);
  if (n == 0 || l == 0) return {order, inverse};
  const int p = next_pow2(l);
  const bool shared_sort = l <= kSharedSortMaxL;
  at::Tensor slots = at::empty({shared_sort ? 1 : n * p}, k.options().dtype(at::kInt));
  AT_DISPATCH_ALL_TYPES_AND2(at::kHalf, at::kBFloat16, k.scalar_type(), "order_from_keys_cuda", [&] {
    using key_t = at::opmath_type<scalar_t>;
    const size_t smem = shared_sort ? shared_key_bytes<key_t>(static_cast<int>(l)) + sizeof(int) * p : 0;
    auto kernel = order_from_keys_kernel<scalar_t>;
    if (smem > 32 * 1024) {
      C10_CUDA_CHECK(
          cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)));
    }
    kernel<<<static_cast<unsigned>(n), kThreads, smem, c10::cuda::getCurrentCUDAStream()>>>(
        k.data_ptr<scalar_t>(), static_cast<int>(l), p, shared_sort, slots.data_ptr<int>(),
        order.data_ptr<int64_t>(), inverse.data_ptr<int64_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return {order, inverse};
}

}  // namespace semaim::kernels
