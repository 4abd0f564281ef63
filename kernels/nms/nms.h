// Greedy non-maximum suppression (torchvision.ops.nms and batched_nms' semantics): the semaim::nms op (CPU
// twin or CUDA kernel), the per-class form by coordinate offsets, and the ATen composition the op is held to.
#pragma once
#include <ATen/core/Tensor.h>

namespace semaim::kernels {

// torchvision.ops.nms: boxes (K, 4) xyxy, scores (K) -> kept indices (int64), by decreasing score.
// Equal scores keep the boxes' order; a box is dropped when its IoU with a kept higher-scored box exceeds
// iou_threshold (boxes of zero area suppress nothing). bf16/fp16 boxes are compared in fp32. Bad shapes,
// dtypes or devices throw InputError.
at::Tensor nms(const at::Tensor& boxes, const at::Tensor& scores, double iou_threshold);
// torchvision.ops.batched_nms: per class (idxs (K) int64) by offsetting every class's boxes apart, then nms.
at::Tensor batched_nms(const at::Tensor& boxes, const at::Tensor& scores, const at::Tensor& idxs,
                       double iou_threshold);

// The same from ATen ops: the (K, K) IoU matrix by broadcasting, then the greedy loop in score order.
// boxes (K, 4), scores (K) on the CPU -> kept indices (int64)
at::Tensor nms_reference(const at::Tensor& boxes, const at::Tensor& scores, double iou_threshold);

}  // namespace semaim::kernels
