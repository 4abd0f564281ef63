// CPU twin of semaim::nms (torchvision.ops.nms): the boxes sorted by score, the 64-box suppression mask
// filled in parallel over boxes with core.h's IoU, then the greedy pass over it. Reference: nms_reference
// (nms.h).
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "kernels/nms/core.h"
#include "kernels/ops.h"

namespace semaim::kernels {

void check_nms_args(const at::Tensor& boxes, const at::Tensor& scores, c10::DeviceType device) {
  TORCH_CHECK(boxes.defined() && boxes.dim() == 2 && boxes.size(1) == 4,
              "semaim::nms: boxes must be (K, 4) xyxy, got ",
              boxes.defined() ? boxes.sizes() : at::IntArrayRef{});
  TORCH_CHECK(scores.defined() && scores.dim() == 1 && scores.size(0) == boxes.size(0),
              "semaim::nms: scores must be (K) = (", boxes.size(0), "), got ",
              scores.defined() ? scores.sizes() : at::IntArrayRef{});
  TORCH_CHECK(at::isFloatingType(boxes.scalar_type()) && at::isFloatingType(scores.scalar_type()),
              "semaim::nms: boxes and scores must be floating point, got ", boxes.scalar_type(), " and ",
              scores.scalar_type());
  TORCH_CHECK(boxes.device().type() == device && scores.device() == boxes.device(),
              "semaim::nms: boxes and scores must be on one ", c10::DeviceTypeName(device), " device, got ",
              boxes.device(), " and ", scores.device());
}

// boxes: (K, 4), scores: (K) -> kept indices (int64), by decreasing score (ties in index order)
at::Tensor nms_cpu(const at::Tensor& boxes, const at::Tensor& scores, double iou_threshold) {
  check_nms_args(boxes, scores, c10::DeviceType::CPU);
  const int64_t k = boxes.size(0);
  if (k == 0) return at::empty({0}, boxes.options().dtype(at::kLong));
  const at::Tensor order = std::get<1>(scores.sort(/*stable=*/true, /*dim=*/0, /*descending=*/true));
  const int64_t blocks = (k + kNmsBlock - 1) / kNmsBlock;
  std::vector<uint64_t> mask(static_cast<size_t>(k * blocks), 0);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, boxes.scalar_type(), "nms_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const at::Tensor sorted =
        boxes.index_select(0, order).to(c10::CppTypeToScalarType<acc_t>::value).contiguous();
    const acc_t* bp = sorted.data_ptr<acc_t>();
    at::parallel_for(0, k, 16, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i)
        for (int64_t w = i / kNmsBlock; w < blocks; ++w)
          mask[i * blocks + w] = nms_mask_word(bp + i * 4, i, bp + w * kNmsBlock * 4, w,
                                               std::min(kNmsBlock, k - w * kNmsBlock), iou_threshold);
    });
  });
  const std::vector<int64_t> keep = nms_keep_from_mask(mask.data(), k);
  return order.index_select(0, at::tensor(keep, order.options()));
}

}  // namespace semaim::kernels
