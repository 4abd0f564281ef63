// CUDA semaim::roi_align and semaim::roi_align_backward (torchvision.ops.roi_align's forward and input
// gradient), the same core.h math as roi_align_cpu.cpp; reference: roi_align_reference (roi_align.h).
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <algorithm>
#include <cstdint>

#include "kernels/ops.h"
#include "kernels/roi_align/core.h"

namespace semaim::kernels {
namespace {

constexpr int kThreads = 256;

// out[k, c, ph, pw] = the mean of the bin's grid_h x grid_w bilinear samples of input[batch(k), c].
// Launch: a grid-stride loop of 256-thread blocks (grid capped at 65535) over the K*C*PH*PW outputs, one per
// thread and step, pw fastest: the threads of a warp share a roi (its geometry is recomputed per thread, a
// few FLOPs) and read neighbouring pixels of one plane (L1/L2 hits). Bytes: K*C*PH*PW*e writes + K*5*4 rois +
// up to 4*S*e reads per output (S samples per bin; cached, about the roi's footprint once). FLOPs: about 20
// per sample (coordinates, weights, 4 multiply-adds), K*C*PH*PW*S*20 in all (ViTDet's 512 rois x 256 channels
// x 7x7 with S = 4: 0.5 GFLOP).
template <typename scalar_t, typename acc_t>
__global__ void __launch_bounds__(kThreads)
    roi_align_kernel(const scalar_t* __restrict__ input, const acc_t* __restrict__ rois, acc_t scale,
                     int64_t batch, int64_t channels, int64_t height, int64_t width, int64_t pooled_h,
                     int64_t pooled_w, int64_t sampling_ratio, bool aligned, int64_t total,
                     scalar_t* __restrict__ out) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += stride) {
    const int64_t pw = e % pooled_w, ph = (e / pooled_w) % pooled_h,
                  c = (e / (pooled_w * pooled_h)) % channels;
    const int64_t k = e / (pooled_w * pooled_h * channels);
    const RoiBins<acc_t> r = roi_bins(rois + k * 5, scale, pooled_h, pooled_w, sampling_ratio, aligned);
    CUDA_KERNEL_ASSERT(r.batch >= 0 && r.batch < batch);
    const scalar_t* plane = input + (r.batch * channels + c) * height * width;
    acc_t sum = 0;
    for (int64_t iy = 0; iy < r.grid_h; ++iy) {
      const acc_t y = roi_sample_coord(r.start_h, r.bin_h, ph, iy, r.grid_h);
      for (int64_t ix = 0; ix < r.grid_w; ++ix)
        sum += bilinear_value(
            bilinear_taps(height, width, y, roi_sample_coord(r.start_w, r.bin_w, pw, ix, r.grid_w)), plane);
    }
    out[e] = static_cast<scalar_t>(sum / r.count);
  }
}

// grad_input[batch(k), c] += each sample's tap weights * grad[k, c, ph, pw] / count, by atomicAdd into an
// op-math (fp32/fp64) buffer: the order of the additions, and so the last bits, vary from run to run.
// Launch: as the forward, one grad element per thread and step; at least one block per SM is all the
// launch bounds ask, so that the fp64 form keeps its taps in registers.
// Bytes: K*C*PH*PW*e reads + up to 4*S atomics per element into N*C*H*W*4 (zeroed first, + a cast for
// bf16/fp16). FLOPs: about 20 per sample, as the forward.
template <typename scalar_t, typename acc_t>
__global__ void __launch_bounds__(kThreads, 1)
    roi_align_backward_kernel(const scalar_t* __restrict__ grad, const acc_t* __restrict__ rois, acc_t scale,
                              int64_t batch, int64_t channels, int64_t height, int64_t width,
                              int64_t pooled_h, int64_t pooled_w, int64_t sampling_ratio, bool aligned,
                              int64_t total, acc_t* __restrict__ grad_input) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += stride) {
    const int64_t pw = e % pooled_w, ph = (e / pooled_w) % pooled_h,
                  c = (e / (pooled_w * pooled_h)) % channels;
    const int64_t k = e / (pooled_w * pooled_h * channels);
    const RoiBins<acc_t> r = roi_bins(rois + k * 5, scale, pooled_h, pooled_w, sampling_ratio, aligned);
    CUDA_KERNEL_ASSERT(r.batch >= 0 && r.batch < batch);
    acc_t* plane = grad_input + (r.batch * channels + c) * height * width;
    const auto g = static_cast<acc_t>(grad[e]);
    for (int64_t iy = 0; iy < r.grid_h; ++iy) {
      const acc_t y = roi_sample_coord(r.start_h, r.bin_h, ph, iy, r.grid_h);
      for (int64_t ix = 0; ix < r.grid_w; ++ix) {
        const BilinearTaps<acc_t> t =
            bilinear_taps(height, width, y, roi_sample_coord(r.start_w, r.bin_w, pw, ix, r.grid_w));
        if (!t.valid) continue;
#pragma unroll
        for (int i = 0; i < 4; ++i) atomicAdd(plane + t.o[i], roi_tap_grad(g, t.w[i], r.count));
      }
    }
  }
}

unsigned grid_for(int64_t work) {
  return static_cast<unsigned>(std::min<int64_t>((work + kThreads - 1) / kThreads, 65535));
}

}  // namespace

// input: (N, C, H, W), rois: (K, 5) -> (K, C, pooled_h, pooled_w). A batch index outside [0, N) trips a
// device assert (checking it here would synchronize with the device).
at::Tensor roi_align_cuda(const at::Tensor& input, const at::Tensor& rois, double spatial_scale,
                          int64_t pooled_h, int64_t pooled_w, int64_t sampling_ratio, bool aligned) {
  check_roi_align_args(input, rois, spatial_scale, pooled_h, pooled_w, c10::DeviceType::CUDA);
  c10::cuda::CUDAGuard guard(input.device());
  const int64_t k = rois.size(0), c = input.size(1), h = input.size(2), w = input.size(3);
  at::Tensor out =
      at::empty({k, c, pooled_h, pooled_w}, input.options().memory_format(at::MemoryFormat::Contiguous));
  const int64_t total = out.numel();
  if (total == 0) return out;
  const at::Tensor x = input.contiguous();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "roi_align_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const at::Tensor r = rois.to(c10::CppTypeToScalarType<acc_t>::value).contiguous();
    roi_align_kernel<scalar_t, acc_t><<<grid_for(total), kThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(
        x.data_ptr<scalar_t>(), r.data_ptr<acc_t>(), static_cast<acc_t>(spatial_scale), input.size(0), c, h,
        w, pooled_h, pooled_w, sampling_ratio, aligned, total, out.data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

// grad: (K, C, pooled_h, pooled_w), rois: (K, 5) -> (batch, channels, height, width)
at::Tensor roi_align_backward_cuda(const at::Tensor& grad, const at::Tensor& rois, double spatial_scale,
                                   int64_t pooled_h, int64_t pooled_w, int64_t batch, int64_t channels,
                                   int64_t height, int64_t width, int64_t sampling_ratio, bool aligned) {
  check_roi_align_backward_args(grad, rois, spatial_scale, pooled_h, pooled_w, batch, channels, height, width,
                                c10::DeviceType::CUDA);
  c10::cuda::CUDAGuard guard(grad.device());
  at::Tensor gi =
      at::zeros({batch, channels, height, width}, grad.options().dtype(at::toOpMathType(grad.scalar_type())));
  const int64_t total = grad.numel();
  if (total == 0 || gi.numel() == 0) return gi.to(grad.scalar_type());
  const at::Tensor g = grad.contiguous();
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, grad.scalar_type(), "roi_align_backward_cuda", [&] {
        using acc_t = at::opmath_type<scalar_t>;
        const at::Tensor r = rois.to(c10::CppTypeToScalarType<acc_t>::value).contiguous();
        roi_align_backward_kernel<scalar_t, acc_t>
            <<<grid_for(total), kThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(
                g.data_ptr<scalar_t>(), r.data_ptr<acc_t>(), static_cast<acc_t>(spatial_scale), batch,
                channels, height, width, pooled_h, pooled_w, sampling_ratio, aligned, total,
                gi.data_ptr<acc_t>());
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      });
  return gi.to(grad.scalar_type());
}

}  // namespace semaim::kernels
