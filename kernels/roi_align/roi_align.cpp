// semaim::roi_align with autograd (roi_align.h): the entry point checks its arguments with InputError,
// forward and backward call the ops through the dispatcher (CPU twin or CUDA kernel by the tensors' device);
// and roi_align_reference, the ATen composition of torchvision.ops.roi_align the twins are held to.
#include "kernels/roi_align/roi_align.h"

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/csrc/autograd/custom_function.h>

#include <cmath>
#include <string>
#include <vector>

#include "kernels/ops.h"
#include "semaim/core/errors.h"

namespace semaim::kernels {
namespace {

constexpr const char* kWhere = "kernels.roi_align";

std::string shape_str(const at::Tensor& t) {
  if (!t.defined()) return "none";
  std::string s = "(";
  for (int64_t i = 0; i < t.dim(); ++i) s += (i ? ", " : "") + std::to_string(t.size(i));
  return s + ")";
}

void check_entry_args(const at::Tensor& input, const at::Tensor& rois, double spatial_scale, int64_t pooled_h,
                      int64_t pooled_w) {
  if (!input.defined() || input.dim() != 4 || input.size(2) < 1 || input.size(3) < 1)
    throw InputError(kWhere, "input must be (N, C, H, W) with H, W >= 1, got " + shape_str(input));
  if (!at::isFloatingType(input.scalar_type()))
    throw InputError(kWhere,
                     "input must be floating point, got " + std::string(c10::toString(input.scalar_type())));
  if (!rois.defined() || rois.dim() != 2 || rois.size(1) != 5)
    throw InputError(kWhere, "rois must be (K, 5) [batch_index, x1, y1, x2, y2], got " + shape_str(rois));
  if (!at::isFloatingType(rois.scalar_type()))
    throw InputError(kWhere,
                     "rois must be floating point, got " + std::string(c10::toString(rois.scalar_type())));
  if (rois.device() != input.device())
    throw InputError(kWhere,
                     "rois are on " + rois.device().str() + " but input is on " + input.device().str());
  if (!input.is_cpu() && !(input.is_cuda() && cuda_ops_built()))
    throw InputError(kWhere, "input on " + input.device().str() + ": semaim's kernels run on the CPU" +
                                 (cuda_ops_built() ? " and CUDA" : " only (built without the CUDA kernels)"));
  if (pooled_h < 1 || pooled_w < 1)
    throw InputError(
        kWhere, "pooled size must be >= 1, got " + std::to_string(pooled_h) + "x" + std::to_string(pooled_w));
  if (!(spatial_scale > 0) || !std::isfinite(spatial_scale))
    throw InputError(kWhere,
                     "spatial_scale must be positive and finite, got " + std::to_string(spatial_scale));
  // CUDA rois are checked by a device assert: reading them here would synchronize.
  if (rois.is_cpu() && rois.size(0) > 0) {
    const at::Tensor b = rois.select(1, 0).to(at::kDouble).trunc();
    const double lo = b.min().item<double>(), hi = b.max().item<double>();
    if (lo < 0 || hi >= static_cast<double>(input.size(0)))
      throw InputError(kWhere, "roi batch indices must lie in [0, " + std::to_string(input.size(0)) +
                                   "), got [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
  }
}

struct Geometry {
  double spatial_scale;
  int64_t pooled_h, pooled_w, sampling_ratio;
  bool aligned;
};

// input: (N, C, H, W), rois: (K, 5) -> (K, C, ph, pw)
at::Tensor forward_op(const at::Tensor& input, const at::Tensor& rois, const Geometry& g) {
  link_ops();
  static const auto op =
      c10::Dispatcher::singleton()
          .findSchemaOrThrow("semaim::roi_align", "")
          .typed<at::Tensor(const at::Tensor&, const at::Tensor&, double, int64_t, int64_t, int64_t, bool)>();
  return op.call(input, rois, g.spatial_scale, g.pooled_h, g.pooled_w, g.sampling_ratio, g.aligned);
}

// grad: (K, C, ph, pw), rois: (K, 5), sizes: input's (N, C, H, W) -> (N, C, H, W)
at::Tensor backward_op(const at::Tensor& grad, const at::Tensor& rois, const Geometry& g,
                       const std::vector<int64_t>& sizes) {
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("semaim::roi_align_backward", "")
                             .typed<at::Tensor(const at::Tensor&, const at::Tensor&, double, int64_t, int64_t,
                                               int64_t, int64_t, int64_t, int64_t, int64_t, bool)>();
  return op.call(grad, rois, g.spatial_scale, g.pooled_h, g.pooled_w, sizes[0], sizes[1], sizes[2], sizes[3],
                 g.sampling_ratio, g.aligned);
}

// rois get no gradient (torchvision's neither): boxes enter the heads detached.
class RoiAlignFn : public torch::autograd::Function<RoiAlignFn> {
 public:
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& input,
                            const at::Tensor& rois, double spatial_scale, int64_t pooled_h, int64_t pooled_w,
                            int64_t sampling_ratio, bool aligned) {
    ctx->save_for_backward({rois});
    ctx->saved_data["geometry"] =
        std::vector<double>{spatial_scale, static_cast<double>(pooled_h), static_cast<double>(pooled_w),
                            static_cast<double>(sampling_ratio), aligned ? 1.0 : 0.0};
    ctx->saved_data["sizes"] = input.sizes().vec();
    at::AutoDispatchBelowADInplaceOrView guard;
    return forward_op(input, rois, {spatial_scale, pooled_h, pooled_w, sampling_ratio, aligned});
  }

  // grad: (K, C, ph, pw) -> grads of input and of the six other arguments (none)
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    at::Tensor gi;
    if (ctx->needs_input_grad(0)) {
      const auto v = ctx->saved_data["geometry"].toDoubleVector();
      const Geometry g{v[0], static_cast<int64_t>(v[1]), static_cast<int64_t>(v[2]),
                       static_cast<int64_t>(v[3]), v[4] != 0.0};
      gi = backward_op(grads[0], ctx->get_saved_variables()[0], g, ctx->saved_data["sizes"].toIntVector());
    }
    return {gi, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

// The taps of one axis of a roi's samples, (pooled * grid) of each: the low and high pixel and their
// weights, zero where the sample lies more than a pixel outside [0, size).
struct AxisTaps {
  at::Tensor low, high, w_low, w_high;
};

template <typename T>
AxisTaps axis_taps(T start, T bin, int64_t pooled, int64_t grid, int64_t size, at::ScalarType acc) {
  const auto opts = at::TensorOptions().dtype(acc);
  const at::Tensor p = at::arange(pooled, opts).unsqueeze(1), i = at::arange(grid, opts).unsqueeze(0);
  at::Tensor c = ((p * bin + start) + (i + 0.5) * bin / static_cast<double>(grid)).reshape({-1});
  const at::Tensor valid = (c >= -1) & (c <= static_cast<double>(size));
  c = c.clamp_min(0);
  at::Tensor low = c.floor();
  const at::Tensor at_edge = low >= static_cast<double>(size - 1);
  low = at::where(at_edge, at::full_like(low, static_cast<double>(size - 1)), low);
  c = at::where(at_edge, low, c);
  const at::Tensor frac = c - low;
  const at::Tensor high = at::where(at_edge, low, low + 1);
  return {low.to(at::kLong), high.to(at::kLong), (1 - frac) * valid, frac * valid};
}

// One roi of the reference. feat: (C, H, W) in the op-math type -> (C, ph, pw)
template <typename T>
at::Tensor reference_roi(const at::Tensor& feat, const T* roi, T scale, const Geometry& g) {
  const T offset = g.aligned ? T(0.5) : T(0);
  const T start_w = roi[1] * scale - offset, start_h = roi[2] * scale - offset;
  T roi_w = roi[3] * scale - offset - start_w, roi_h = roi[4] * scale - offset - start_h;
  if (!g.aligned) roi_w = std::max(roi_w, T(1)), roi_h = std::max(roi_h, T(1));
  const T bin_h = roi_h / static_cast<T>(g.pooled_h), bin_w = roi_w / static_cast<T>(g.pooled_w);
  const int64_t gh = g.sampling_ratio > 0 ? g.sampling_ratio : static_cast<int64_t>(std::ceil(bin_h));
  const int64_t gw = g.sampling_ratio > 0 ? g.sampling_ratio : static_cast<int64_t>(std::ceil(bin_w));
  const int64_t c = feat.size(0);
  // An empty or inverted roi with adaptive sampling has no samples (grid <= 0): its bins are 0.
  if (gh <= 0 || gw <= 0) return at::zeros({c, g.pooled_h, g.pooled_w}, feat.options());
  const AxisTaps y = axis_taps(start_h, bin_h, g.pooled_h, gh, feat.size(1), feat.scalar_type());
  const AxisTaps x = axis_taps(start_w, bin_w, g.pooled_w, gw, feat.size(2), feat.scalar_type());
  at::Tensor val = at::zeros({c, y.low.size(0), x.low.size(0)}, feat.options());
  for (const auto& [yi, wy] : {std::pair{y.low, y.w_low}, std::pair{y.high, y.w_high}})
    for (const auto& [xi, wx] : {std::pair{x.low, x.w_low}, std::pair{x.high, x.w_high}})
      val = val + wy.unsqueeze(1) * wx.unsqueeze(0) * feat.index_select(1, yi).index_select(2, xi);
  return val.view({c, g.pooled_h, gh, g.pooled_w, gw}).sum({2, 4}) / static_cast<double>(gh * gw);
}

}  // namespace

at::Tensor roi_align(const at::Tensor& input, const at::Tensor& rois, double spatial_scale, int64_t pooled_h,
                     int64_t pooled_w, int64_t sampling_ratio, bool aligned) {
  check_entry_args(input, rois, spatial_scale, pooled_h, pooled_w);
  return RoiAlignFn::apply(input, rois, spatial_scale, pooled_h, pooled_w, sampling_ratio, aligned);
}

at::Tensor roi_align_reference(const at::Tensor& input, const at::Tensor& rois, double spatial_scale,
                               int64_t pooled_h, int64_t pooled_w, int64_t sampling_ratio, bool aligned) {
  const auto acc = at::toOpMathType(input.scalar_type());
  const at::Tensor x = input.to(acc);
  const at::Tensor r = rois.to(acc).contiguous();
  const Geometry g{spatial_scale, pooled_h, pooled_w, sampling_ratio, aligned};
  std::vector<at::Tensor> out;
  AT_DISPATCH_FLOATING_TYPES(acc, "roi_align_reference", [&] {
    const scalar_t* rp = r.data_ptr<scalar_t>();
    for (int64_t k = 0; k < r.size(0); ++k) {
      const auto b = static_cast<int64_t>(rp[k * 5]);
      out.push_back(reference_roi(x[b], rp + k * 5, static_cast<scalar_t>(spatial_scale), g));
    }
  });
  if (out.empty()) return at::empty({0, input.size(1), pooled_h, pooled_w}, x.options());
  return at::stack(out);
}

}  // namespace semaim::kernels
