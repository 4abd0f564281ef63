// CPU twins of semaim::roi_align and semaim::roi_align_backward (torchvision.ops.roi_align's forward and
// input gradient): the taps of each roi computed once with core.h's math, then read or scattered channel by
// channel. Reference: roi_align_reference (roi_align.h).
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "kernels/ops.h"
#include "kernels/roi_align/core.h"

namespace semaim::kernels {
namespace {

void check_rois(const char* op, const at::Tensor& rois, const at::Tensor& like, c10::DeviceType device) {
  TORCH_CHECK(rois.defined() && rois.dim() == 2 && rois.size(1) == 5, op,
              ": rois must be (K, 5) [batch_index, x1, y1, x2, y2], got ",
              rois.defined() ? rois.sizes() : at::IntArrayRef{});
  TORCH_CHECK(at::isFloatingType(rois.scalar_type()), op, ": rois must be floating point, got ",
              rois.scalar_type());
  TORCH_CHECK(like.device().type() == device && rois.device() == like.device(), op,
              ": tensors must be on one ", c10::DeviceTypeName(device), " device, got ", like.device(),
              " and ", rois.device());
}

void check_geometry(const char* op, double spatial_scale, int64_t pooled_h, int64_t pooled_w) {
  TORCH_CHECK(pooled_h >= 1 && pooled_w >= 1, op, ": pooled size must be >= 1, got ", pooled_h, "x",
              pooled_w);
  TORCH_CHECK(spatial_scale > 0 && std::isfinite(spatial_scale), op,
              ": spatial_scale must be positive and finite, got ", spatial_scale);
}

// Every roi's batch index in [0, n) (torchvision reads out of bounds otherwise). rois: (K, 5) contiguous
template <typename T>
void check_batch_indices(const char* op, const T* rois, int64_t k, int64_t n) {
  for (int64_t r = 0; r < k; ++r) {
    const auto b = static_cast<int64_t>(rois[r * 5]);
    TORCH_CHECK(b >= 0 && b < n, op, ": roi ", r, " has batch index ", b, " outside [0, ", n, ")");
  }
}

// One roi's layout and the taps of all its samples, bin after bin (ph, pw), each bin's grid_h x grid_w
// samples in row order.
template <typename T>
RoiBins<T> roi_taps(const T* roi, T scale, int64_t ph_n, int64_t pw_n, int64_t sampling_ratio, bool aligned,
                    int64_t height, int64_t width, std::vector<BilinearTaps<T>>& taps) {
  const RoiBins<T> r = roi_bins(roi, scale, ph_n, pw_n, sampling_ratio, aligned);
  taps.clear();
  for (int64_t ph = 0; ph < ph_n; ++ph)
    for (int64_t pw = 0; pw < pw_n; ++pw)
      for (int64_t iy = 0; iy < r.grid_h; ++iy) {
        const T y = roi_sample_coord(r.start_h, r.bin_h, ph, iy, r.grid_h);
        for (int64_t ix = 0; ix < r.grid_w; ++ix)
          taps.push_back(
              bilinear_taps(height, width, y, roi_sample_coord(r.start_w, r.bin_w, pw, ix, r.grid_w)));
      }
  return r;
}

}  // namespace

void check_roi_align_args(const at::Tensor& input, const at::Tensor& rois, double spatial_scale,
                          int64_t pooled_h, int64_t pooled_w, c10::DeviceType device) {
  TORCH_CHECK(input.defined() && input.dim() == 4 && input.size(2) >= 1 && input.size(3) >= 1,
              "semaim::roi_align: input must be (N, C, H, W) with H, W >= 1, got ",
              input.defined() ? input.sizes() : at::IntArrayRef{});
  TORCH_CHECK(at::isFloatingType(input.scalar_type()),
              "semaim::roi_align: input must be floating point, got ", input.scalar_type());
  check_rois("semaim::roi_align", rois, input, device);
  check_geometry("semaim::roi_align", spatial_scale, pooled_h, pooled_w);
}

void check_roi_align_backward_args(const at::Tensor& grad, const at::Tensor& rois, double spatial_scale,
                                   int64_t pooled_h, int64_t pooled_w, int64_t batch, int64_t channels,
                                   int64_t height, int64_t width, c10::DeviceType device) {
  TORCH_CHECK(batch >= 0 && channels >= 0 && height >= 1 && width >= 1,
              "semaim::roi_align_backward: input size must be (N >= 0, C >= 0, H >= 1, W >= 1), got (", batch,
              ", ", channels, ", ", height, ", ", width, ")");
  TORCH_CHECK(grad.defined() && at::isFloatingType(grad.scalar_type()) && grad.dim() == 4 &&
                  grad.size(1) == channels && grad.size(2) == pooled_h && grad.size(3) == pooled_w,
              "semaim::roi_align_backward: grad must be floating (K, ", channels, ", ", pooled_h, ", ",
              pooled_w, "), got ", grad.defined() ? grad.sizes() : at::IntArrayRef{});
  check_rois("semaim::roi_align_backward", rois, grad, device);
  TORCH_CHECK(rois.size(0) == grad.size(0), "semaim::roi_align_backward: ", rois.size(0),
              " rois but grad has ", grad.size(0));
  check_geometry("semaim::roi_align_backward", spatial_scale, pooled_h, pooled_w);
}

// input: (N, C, H, W), rois: (K, 5) -> (K, C, pooled_h, pooled_w)
at::Tensor roi_align_cpu(const at::Tensor& input, const at::Tensor& rois, double spatial_scale,
                         int64_t pooled_h, int64_t pooled_w, int64_t sampling_ratio, bool aligned) {
  check_roi_align_args(input, rois, spatial_scale, pooled_h, pooled_w, c10::DeviceType::CPU);
  const int64_t k = rois.size(0), c = input.size(1), h = input.size(2), w = input.size(3);
  at::Tensor out =
      at::empty({k, c, pooled_h, pooled_w}, input.options().memory_format(at::MemoryFormat::Contiguous));
  if (out.numel() == 0) return out;
  const at::Tensor x = input.contiguous();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "roi_align_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const at::Tensor r = rois.to(c10::CppTypeToScalarType<acc_t>::value).contiguous();
    const acc_t* rp = r.data_ptr<acc_t>();
    check_batch_indices("semaim::roi_align", rp, k, input.size(0));
    const scalar_t* xp = x.data_ptr<scalar_t>();
    scalar_t* op = out.data_ptr<scalar_t>();
    const int64_t bins = pooled_h * pooled_w;
    at::parallel_for(0, k, 1, [&](int64_t begin, int64_t end) {
      std::vector<BilinearTaps<acc_t>> taps;
      for (int64_t roi = begin; roi < end; ++roi) {
        const RoiBins<acc_t> rb = roi_taps(rp + roi * 5, static_cast<acc_t>(spatial_scale), pooled_h,
                                           pooled_w, sampling_ratio, aligned, h, w, taps);
        const int64_t per_bin = rb.grid_h * rb.grid_w;
        for (int64_t ch = 0; ch < c; ++ch) {
          const scalar_t* plane = xp + (rb.batch * c + ch) * h * w;
          scalar_t* dst = op + (roi * c + ch) * bins;
          for (int64_t b = 0; b < bins; ++b) {
            acc_t sum = 0;
            for (int64_t s = b * per_bin; s < (b + 1) * per_bin; ++s) sum += bilinear_value(taps[s], plane);
            dst[b] = static_cast<scalar_t>(sum / rb.count);
          }
        }
      }
    });
  });
  return out;
}

// grad: (K, C, pooled_h, pooled_w), rois: (K, 5) -> (batch, channels, height, width). Each channel scatters
// its rois in order into a zeroed op-math buffer: the result does not depend on the thread count.
at::Tensor roi_align_backward_cpu(const at::Tensor& grad, const at::Tensor& rois, double spatial_scale,
                                  int64_t pooled_h, int64_t pooled_w, int64_t batch, int64_t channels,
                                  int64_t height, int64_t width, int64_t sampling_ratio, bool aligned) {
  check_roi_align_backward_args(grad, rois, spatial_scale, pooled_h, pooled_w, batch, channels, height, width,
                                c10::DeviceType::CPU);
  const auto acc_type = at::toOpMathType(grad.scalar_type());
  at::Tensor gi = at::zeros({batch, channels, height, width}, grad.options().dtype(acc_type));
  const int64_t k = rois.size(0);
  if (k == 0 || gi.numel() == 0) return gi.to(grad.scalar_type());
  const at::Tensor g = grad.contiguous();
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, grad.scalar_type(), "roi_align_backward_cpu", [&] {
        using acc_t = at::opmath_type<scalar_t>;
        const at::Tensor r = rois.to(c10::CppTypeToScalarType<acc_t>::value).contiguous();
        const acc_t* rp = r.data_ptr<acc_t>();
        check_batch_indices("semaim::roi_align_backward", rp, k, batch);
        const scalar_t* gp = g.data_ptr<scalar_t>();
        acc_t* gip = gi.data_ptr<acc_t>();
        const int64_t bins = pooled_h * pooled_w;
        at::parallel_for(0, channels, 1, [&](int64_t begin, int64_t end) {
          std::vector<BilinearTaps<acc_t>> taps;
          for (int64_t roi = 0; roi < k; ++roi) {
            const RoiBins<acc_t> rb = roi_taps(rp + roi * 5, static_cast<acc_t>(spatial_scale), pooled_h,
                                               pooled_w, sampling_ratio, aligned, height, width, taps);
            const int64_t per_bin = rb.grid_h * rb.grid_w;
            for (int64_t ch = begin; ch < end; ++ch) {
              acc_t* plane = gip + (rb.batch * channels + ch) * height * width;
              const scalar_t* src = gp + (roi * channels + ch) * bins;
              for (int64_t b = 0; b < bins; ++b) {
                const auto gb = static_cast<acc_t>(src[b]);
                for (int64_t s = b * per_bin; s < (b + 1) * per_bin; ++s) {
                  const BilinearTaps<acc_t>& t = taps[s];
                  if (!t.valid) continue;
                  for (int i = 0; i < 4; ++i) plane[t.o[i]] += roi_tap_grad(gb, t.w[i], rb.count);
                }
              }
            }
          }
        });
      });
  return gi.to(grad.scalar_type());
}

}  // namespace semaim::kernels
