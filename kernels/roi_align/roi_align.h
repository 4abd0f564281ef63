// RoIAlign (Mask R-CNN, He et al. 2017 §3; torchvision.ops.roi_align's semantics): the semaim::roi_align op
// (CPU twin or CUDA kernel) inside an autograd function, and the ATen composition it is held to.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>

namespace semaim::kernels {

// torchvision.ops.roi_align: input (N, C, H, W) float/double, rois (K, 5) [batch_index, x1, y1, x2, y2] in
// input coordinates before spatial_scale -> (K, C, pooled_h, pooled_w); differentiable w.r.t. input
// (autograd). sampling_ratio <= 0: adaptive (ceil(roi_size / pooled_size)); aligned: the half-pixel offset
// (ROIAlignV2). bf16/fp16 input (autocast) is computed in fp32 and returned in its dtype; rois of any
// floating dtype. Bad shapes, dtypes, devices, sizes or batch indices throw InputError.
at::Tensor roi_align(const at::Tensor& input, const at::Tensor& rois, double spatial_scale, int64_t pooled_h,
                     int64_t pooled_w, int64_t sampling_ratio, bool aligned);

// The same from ATen ops, roi by roi (separable bilinear weights, index_select of the taps), differentiable
// by ATen's autograd. input (N, C, H, W), rois (K, 5) on the CPU -> (K, C, ph, pw) in the op-math type (fp32
// for bf16/fp16)
at::Tensor roi_align_reference(const at::Tensor& input, const at::Tensor& rois, double spatial_scale,
                               int64_t pooled_h, int64_t pooled_w, int64_t sampling_ratio, bool aligned);

}  // namespace semaim::kernels
