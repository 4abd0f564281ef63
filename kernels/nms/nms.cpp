// Entry points of semaim::nms (nms.h): InputError checks, then the op through the dispatcher; batched_nms by
// torchvision's coordinate trick; and nms_reference, the ATen composition the twins are held to.
#include "kernels/nms/nms.h"

#include <ATen/ATen.h>
#include <ATen/OpMathType.h>
#include <ATen/core/dispatch/Dispatcher.h>

#include <string>
#include <vector>

#include "kernels/ops.h"
#include "semaim/core/errors.h"

namespace semaim::kernels {
namespace {

constexpr const char* kWhere = "kernels.nms";

std::string shape_str(const at::Tensor& t) {
  if (!t.defined()) return "none";
  std::string s = "(";
  for (int64_t i = 0; i < t.dim(); ++i) s += (i ? ", " : "") + std::to_string(t.size(i));
  return s + ")";
}

void check_entry_args(const at::Tensor& boxes, const at::Tensor& scores) {
  if (!boxes.defined() || boxes.dim() != 2 || boxes.size(1) != 4)
    throw InputError(kWhere, "boxes must be (K, 4) xyxy, got " + shape_str(boxes));
  if (!scores.defined() || scores.dim() != 1 || scores.size(0) != boxes.size(0))
    throw InputError(
        kWhere, "scores must be (K) = (" + std::to_string(boxes.size(0)) + "), got " + shape_str(scores));
  if (!at::isFloatingType(boxes.scalar_type()) || !at::isFloatingType(scores.scalar_type()))
    throw InputError(kWhere, "boxes and scores must be floating point, got " +
                                 std::string(c10::toString(boxes.scalar_type())) + " and " +
                                 c10::toString(scores.scalar_type()));
  if (scores.device() != boxes.device())
    throw InputError(kWhere,
                     "scores are on " + scores.device().str() + " but boxes are on " + boxes.device().str());
  if (!boxes.is_cpu() && !(boxes.is_cuda() && cuda_ops_built()))
    throw InputError(kWhere, "boxes on " + boxes.device().str() + ": semaim's kernels run on the CPU" +
                                 (cuda_ops_built() ? " and CUDA" : " only (built without the CUDA kernels)"));
}

}  // namespace

at::Tensor nms(const at::Tensor& boxes, const at::Tensor& scores, double iou_threshold) {
  check_entry_args(boxes, scores);
  link_ops();
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("semaim::nms", "")
                             .typed<at::Tensor(const at::Tensor&, const at::Tensor&, double)>();
  return op.call(boxes, scores, iou_threshold);
}

at::Tensor batched_nms(const at::Tensor& boxes, const at::Tensor& scores, const at::Tensor& idxs,
                       double iou_threshold) {
  check_entry_args(boxes, scores);
  if (!idxs.defined() || idxs.dim() != 1 || idxs.size(0) != boxes.size(0) || idxs.scalar_type() != at::kLong)
    throw InputError(
        kWhere, "idxs must be (K) = (" + std::to_string(boxes.size(0)) + ") int64, got " + shape_str(idxs) +
                    (idxs.defined() ? std::string(" ") + c10::toString(idxs.scalar_type()) : ""));
  if (idxs.device() != boxes.device())
    throw InputError(kWhere,
                     "idxs are on " + idxs.device().str() + " but boxes are on " + boxes.device().str());
  if (boxes.size(0) == 0) return at::empty({0}, boxes.options().dtype(at::kLong));
  // Classes apart by more than the largest coordinate, in the boxes' dtype as torchvision computes them:
  // boxes of different classes then never overlap.
  const at::Tensor max_coordinate = boxes.max();
  const at::Tensor offsets = idxs.to(boxes.scalar_type()) * (max_coordinate + at::ones({}, boxes.options()));
  return nms(boxes + offsets.unsqueeze(1), scores, iou_threshold);
}

at::Tensor nms_reference(const at::Tensor& boxes, const at::Tensor& scores, double iou_threshold) {
  const at::Tensor b = boxes.to(at::toOpMathType(boxes.scalar_type()));
  const at::Tensor lt = at::maximum(b.unsqueeze(1).narrow(2, 0, 2), b.unsqueeze(0).narrow(2, 0, 2));
  const at::Tensor rb = at::minimum(b.unsqueeze(1).narrow(2, 2, 2), b.unsqueeze(0).narrow(2, 2, 2));
  const at::Tensor wh = (rb - lt).clamp_min(0);
  const at::Tensor inter = wh.select(2, 0) * wh.select(2, 1);
  const at::Tensor area = (b.select(1, 2) - b.select(1, 0)) * (b.select(1, 3) - b.select(1, 1));
  const at::Tensor over =
      (inter / (area.unsqueeze(1) + area.unsqueeze(0) - inter)).to(at::kDouble) > iou_threshold;
  const at::Tensor order = std::get<1>(scores.sort(/*stable=*/true, /*dim=*/0, /*descending=*/true));
  const auto ov = over.accessor<bool, 2>();
  const auto ord = order.accessor<int64_t, 1>();
  std::vector<int64_t> keep;
  for (int64_t p = 0; p < order.size(0); ++p) {
    const int64_t i = ord[p];
    bool suppressed = false;
    for (const int64_t j : keep) suppressed = suppressed || ov[j][i];
    if (!suppressed) keep.push_back(i);
  }
  return at::tensor(keep, at::TensorOptions().dtype(at::kLong));
}

}  // namespace semaim::kernels
