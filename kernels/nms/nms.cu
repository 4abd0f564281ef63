// CUDA semaim::nms (torchvision.ops.nms): the classic bitmask NMS, the same core.h IoU and mask words as
// nms_cpu.cpp, then the greedy pass over the mask on the host. Reference: nms_reference (nms.h).
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/from_blob.h>
#include <ATen/ops/index_select.h>
#include <ATen/ops/sort.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "kernels/nms/core.h"
#include "kernels/ops.h"

namespace semaim::kernels {
namespace {

// mask[i, col_block] = the IoU bits of box i against the 64 boxes of col_block, for col_block >= i's block
// (the greedy pass reads no others). boxes: (K, 4) in score order.
// Launch: a (blocks, blocks) grid of 64-thread blocks, blockIdx.x the column block, blockIdx.y the row block;
// blocks below the diagonal return at once. Each block stages its 64 column boxes in shared memory (1 KB
// fp32), then each thread computes one row's word. Bytes: K*blocks/2 blocks read 64*16 B each (L2) and write
// K*blocks*8/2; FLOPs: about 15 per box pair, 15*K^2/2 (2000 boxes: 30 MFLOP), and a K*blocks*8 B copy to the
// host for the pass.
template <typename T>
__global__ void __launch_bounds__(kNmsBlock)
    nms_mask_kernel(const T* __restrict__ boxes, int64_t k, double iou_threshold,
                    uint64_t* __restrict__ mask) {
  const int64_t row_block = blockIdx.y, col_block = blockIdx.x;
  if (row_block > col_block) return;
  const int64_t col_left = k - col_block * kNmsBlock, row_left = k - row_block * kNmsBlock;
  const int64_t col_n = col_left < kNmsBlock ? col_left : kNmsBlock;
  const int64_t row_n = row_left < kNmsBlock ? row_left : kNmsBlock;
  __shared__ T col[kNmsBlock * 4];
  if (threadIdx.x < col_n)
    for (int c = 0; c < 4; ++c)
      col[threadIdx.x * 4 + c] = boxes[(col_block * kNmsBlock + threadIdx.x) * 4 + c];
  __syncthreads();
  if (threadIdx.x >= row_n) return;
  const int64_t i = row_block * kNmsBlock + threadIdx.x;
  const int64_t blocks = gridDim.x;
  mask[i * blocks + col_block] = nms_mask_word(boxes + i * 4, i, col, col_block, col_n, iou_threshold);
}

}  // namespace

// boxes: (K, 4), scores: (K) -> kept indices (int64) on the boxes' device, by decreasing score (ties in index
// order)
at::Tensor nms_cuda(const at::Tensor& boxes, const at::Tensor& scores, double iou_threshold) {
  check_nms_args(boxes, scores, c10::DeviceType::CUDA);
  c10::cuda::CUDAGuard guard(boxes.device());
  const int64_t k = boxes.size(0);
  if (k == 0) return at::empty({0}, boxes.options().dtype(at::kLong));
  const int64_t blocks = (k + kNmsBlock - 1) / kNmsBlock;
  TORCH_CHECK(blocks <= 65535, "semaim::nms: at most ", 65535 * kNmsBlock, " boxes on CUDA, got ", k);
  const at::Tensor order = std::get<1>(at::sort(scores, /*stable=*/true, /*dim=*/0, /*descending=*/true));
  at::Tensor mask = at::empty({k, blocks}, boxes.options().dtype(at::kLong));
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, boxes.scalar_type(), "nms_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const at::Tensor sorted =
        at::index_select(boxes, 0, order).to(c10::CppTypeToScalarType<acc_t>::value).contiguous();
    const dim3 grid(static_cast<unsigned>(blocks), static_cast<unsigned>(blocks));
    nms_mask_kernel<acc_t><<<grid, kNmsBlock, 0, c10::cuda::getCurrentCUDAStream()>>>(
        sorted.data_ptr<acc_t>(), k, iou_threshold, reinterpret_cast<uint64_t*>(mask.data_ptr<int64_t>()));
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  const at::Tensor host = mask.cpu();
  std::vector<int64_t> keep =
      nms_keep_from_mask(reinterpret_cast<const uint64_t*>(host.data_ptr<int64_t>()), k);
  const at::Tensor kept =
      at::from_blob(keep.data(), {static_cast<int64_t>(keep.size())}, at::TensorOptions().dtype(at::kLong))
          .to(boxes.device());
  return at::index_select(order, 0, kept);
}

}  // namespace semaim::kernels
