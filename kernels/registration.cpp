// Registers semaim's custom ops (TORCH_LIBRARY(semaim)): CPU twins and CUDA kernels (kernels/README.md).
// The CUDA impls are registered here, not in the .cu files: nothing references a .cu object, so the static
// library would drop its registrar (and nvcc never compiles <torch/library.h>). The C++ entry points call
// link_ops(), which pulls this object out of the library. SEMAIM_WITH_CUDA: set when the .cu files are built.
#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/library.h>

#include "kernels/ops.h"

TORCH_LIBRARY(semaim, m) {
  m.def(
      "semantic_order(Tensor tokens, int gh, int gw, str source, Tensor noise) -> (Tensor, Tensor, Tensor)");
  m.def("order_from_keys(Tensor keys) -> (Tensor, Tensor)");
  m.def("parts_order(Tensor tokens, int gh, int gw, int k, int iters, Tensor noise) -> (Tensor, Tensor)");
  m.def("permute_rows(Tensor x, Tensor index, Tensor? add) -> Tensor");
  m.def("permute_rows_sum(Tensor x, Tensor index) -> Tensor");
  m.def(
      "roi_align(Tensor input, Tensor rois, float spatial_scale, int pooled_h, int pooled_w, "
      "int sampling_ratio, bool aligned) -> Tensor");
  m.def(
      "roi_align_backward(Tensor grad, Tensor rois, float spatial_scale, int pooled_h, int pooled_w, "
      "int batch, int channels, int height, int width, int sampling_ratio, bool aligned) -> Tensor");
  m.def("nms(Tensor boxes, Tensor scores, float iou_threshold) -> Tensor");
}

TORCH_LIBRARY_IMPL(semaim, CPU, m) {
  m.impl("semantic_order", &semaim::kernels::semantic_order_cpu);
  m.impl("order_from_keys", &semaim::kernels::order_from_keys_cpu);
  m.impl("parts_order", &semaim::kernels::parts_order_cpu);
  m.impl("permute_rows", &semaim::kernels::permute_rows_cpu);
  m.impl("permute_rows_sum", &semaim::kernels::permute_rows_sum_cpu);
  m.impl("roi_align", &semaim::kernels::roi_align_cpu);
  m.impl("roi_align_backward", &semaim::kernels::roi_align_backward_cpu);
  m.impl("nms", &semaim::kernels::nms_cpu);
}

#ifdef SEMAIM_WITH_CUDA
TORCH_LIBRARY_IMPL(semaim, CUDA, m) {
  m.impl("semantic_order", &semaim::kernels::semantic_order_cuda);
  m.impl("order_from_keys", &semaim::kernels::order_from_keys_cuda);
  m.impl("parts_order", &semaim::kernels::parts_order_cuda);
  m.impl("permute_rows", &semaim::kernels::permute_rows_cuda);
  m.impl("permute_rows_sum", &semaim::kernels::permute_rows_sum_cuda);
  m.impl("roi_align", &semaim::kernels::roi_align_cuda);
  m.impl("roi_align_backward", &semaim::kernels::roi_align_backward_cuda);
  m.impl("nms", &semaim::kernels::nms_cuda);
}
#endif

namespace semaim::kernels {

bool link_ops() { return true; }

}  // namespace semaim::kernels
