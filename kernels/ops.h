// Backend entry points of semaim's custom ops (kernels/README.md), registered in registration.cpp.
// Light includes only: the .cu files include this header too.
#pragma once
#include <ATen/core/Tensor.h>
#include <c10/util/Optional.h>
#include <c10/util/string_view.h>

#include <cstdint>
#include <tuple>

namespace semaim::kernels {

// Defined next to the op registrations (registration.cpp): calling it links them into the binary.
bool link_ops();
// True iff this build compiled and registered the CUDA kernels (kernels/*.cu).
constexpr bool cuda_ops_built() {
#ifdef SEMAIM_WITH_CUDA
  return true;
#else
  return false;
#endif
}

// semaim::semantic_order (method.md §6 steps 2-5). tokens: (N, L+1, D) fp32/bf16/fp16/fp64, noise: (N, L)
// fp32/fp64 on the tokens' device -> order (N, L), inverse (N, L), center (N), all int64.
std::tuple<at::Tensor, at::Tensor, at::Tensor> semantic_order_cpu(const at::Tensor& tokens, int64_t gh,
                                                                  int64_t gw, c10::string_view source,
                                                                  const at::Tensor& noise);
std::tuple<at::Tensor, at::Tensor, at::Tensor> semantic_order_cuda(const at::Tensor& tokens, int64_t gh,
                                                                   int64_t gw, c10::string_view source,
                                                                   const at::Tensor& noise);
// The ops validate their arguments with TORCH_CHECK (they can be called directly, bypassing the C++ entry
// points' InputError checks). Shared by semantic_order and parts_order: tokens (N, L+1, D)
// fp32/bf16/fp16/fp64 on `device`, gh*gw = L, noise (N, L) fp32/fp64 on the tokens' device.
void check_token_op_args(const char* op, const at::Tensor& tokens, int64_t gh, int64_t gw,
                         const at::Tensor& noise, c10::DeviceType device);
// Returns true for source "gap", false for "cls".
bool check_semantic_order_args(const at::Tensor& tokens, int64_t gh, int64_t gw, c10::string_view source,
                               const at::Tensor& noise, c10::DeviceType device);

// semaim::order_from_keys: stable argsort per row and its inverse. keys: (N, L) real -> (N, L), (N, L) int64
std::tuple<at::Tensor, at::Tensor> order_from_keys_cpu(const at::Tensor& keys);
std::tuple<at::Tensor, at::Tensor> order_from_keys_cuda(const at::Tensor& keys);
void check_order_from_keys_args(const at::Tensor& keys, c10::DeviceType device);

// semaim::parts_order (method.md §5 `parts`). tokens: (N, L+1, D) fp32/bf16/fp16/fp64 (computed in fp32),
// noise: (N, L) fp32/fp64 on the tokens' device, 1 <= k <= L, 0 <= iters <= 1000 -> order, inverse (N, L)
// int64.
std::tuple<at::Tensor, at::Tensor> parts_order_cpu(const at::Tensor& tokens, int64_t gh, int64_t gw,
                                                   int64_t k, int64_t iters, const at::Tensor& noise);
std::tuple<at::Tensor, at::Tensor> parts_order_cuda(const at::Tensor& tokens, int64_t gh, int64_t gw,
                                                    int64_t k, int64_t iters, const at::Tensor& noise);
void check_parts_order_args(const at::Tensor& tokens, int64_t gh, int64_t gw, int64_t k, int64_t iters,
                            const at::Tensor& noise, c10::DeviceType device);

// semaim::permute_rows: out[n, k] = x[n, index[n, k]] (+ add[index[n, k]]). x: (N, L, D) or a shared (L, D)
// table, index: (N, L) int64 in [0, L), add: (L, D) of x's dtype or none -> (N, L, D) (kernels/permute_rows).
at::Tensor permute_rows_cpu(const at::Tensor& x, const at::Tensor& index,
                            const c10::optional<at::Tensor>& add);
at::Tensor permute_rows_cuda(const at::Tensor& x, const at::Tensor& index,
                             const c10::optional<at::Tensor>& add);
void check_permute_rows_args(const at::Tensor& x, const at::Tensor& index,
                             const c10::optional<at::Tensor>& add, c10::DeviceType device);
// semaim::permute_rows_sum: out[p] = sum over n of x[n, index[n, p]], in image order with op-math
// accumulation (the gradient of a shared table gathered by index's inverse). x: (N, L, D) floating, index:
// (N, L) int64 in [0, L) -> (L, D) of x's dtype.
at::Tensor permute_rows_sum_cpu(const at::Tensor& x, const at::Tensor& index);
at::Tensor permute_rows_sum_cuda(const at::Tensor& x, const at::Tensor& index);
void check_permute_rows_sum_args(const at::Tensor& x, const at::Tensor& index, c10::DeviceType device);

// semaim::roi_align (kernels/roi_align): input (N, C, H, W) floating, rois (K, 5) floating [batch_index, x1,
// y1, x2, y2] on input's device, pooled_h, pooled_w >= 1, spatial_scale > 0 -> (K, C, pooled_h, pooled_w) of
// input's dtype, computed in the op-math type (fp32 for bf16/fp16).
at::Tensor roi_align_cpu(const at::Tensor& input, const at::Tensor& rois, double spatial_scale,
                         int64_t pooled_h, int64_t pooled_w, int64_t sampling_ratio, bool aligned);
at::Tensor roi_align_cuda(const at::Tensor& input, const at::Tensor& rois, double spatial_scale,
                          int64_t pooled_h, int64_t pooled_w, int64_t sampling_ratio, bool aligned);
void check_roi_align_args(const at::Tensor& input, const at::Tensor& rois, double spatial_scale,
                          int64_t pooled_h, int64_t pooled_w, c10::DeviceType device);
// semaim::roi_align_backward: grad (K, C, pooled_h, pooled_w) floating, rois (K, 5) -> the input's gradient
// (batch, channels, height, width) of grad's dtype, accumulated in the op-math type.
at::Tensor roi_align_backward_cpu(const at::Tensor& grad, const at::Tensor& rois, double spatial_scale,
                                  int64_t pooled_h, int64_t pooled_w, int64_t batch, int64_t channels,
                                  int64_t height, int64_t width, int64_t sampling_ratio, bool aligned);
at::Tensor roi_align_backward_cuda(const at::Tensor& grad, const at::Tensor& rois, double spatial_scale,
                                   int64_t pooled_h, int64_t pooled_w, int64_t batch, int64_t channels,
                                   int64_t height, int64_t width, int64_t sampling_ratio, bool aligned);
void check_roi_align_backward_args(const at::Tensor& grad, const at::Tensor& rois, double spatial_scale,
                                   int64_t pooled_h, int64_t pooled_w, int64_t batch, int64_t channels,
                                   int64_t height, int64_t width, c10::DeviceType device);

// semaim::nms (kernels/nms): boxes (K, 4) xyxy floating, scores (K) floating on boxes' device -> kept indices
// (int64) by decreasing score, ties in the boxes' order.
at::Tensor nms_cpu(const at::Tensor& boxes, const at::Tensor& scores, double iou_threshold);
at::Tensor nms_cuda(const at::Tensor& boxes, const at::Tensor& scores, double iou_threshold);
void check_nms_args(const at::Tensor& boxes, const at::Tensor& scores, c10::DeviceType device);

}  // namespace semaim::kernels
