// Host+device math of semaim::roi_align (Mask R-CNN's RoIAlign, He et al. 2017 §3;
// torchvision.ops.roi_align's semantics incl. the aligned half-pixel offset), shared by roi_align_cpu.cpp and
// roi_align.cu.
#pragma once
#include <c10/macros/Macros.h>

#include <cmath>
#include <cstdint>

namespace semaim::kernels {

// One roi's sampling layout in feature-map coordinates: bin (ph, pw) averages a grid_h x grid_w grid of
// bilinear samples, the value divided by count.
template <typename T>
struct RoiBins {
  int64_t batch;
  T start_h, start_w, bin_h, bin_w;
  int64_t grid_h, grid_w;
  T count;
};

// roi: [batch_index, x1, y1, x2, y2] in input coordinates. Without `aligned` a roi is at least one feature
// pixel wide and high (the original RoIAlign); with it the -0.5 shift puts sample centers on pixel centers
// and a degenerate roi keeps its zero size. sampling_ratio <= 0: ceil(roi size / pooled size) samples per
// bin side, so an empty or inverted roi gets none (count 1, value 0).
template <typename T>
C10_HOST_DEVICE inline RoiBins<T> roi_bins(const T* roi, T spatial_scale, int64_t pooled_h, int64_t pooled_w,
                                           int64_t sampling_ratio, bool aligned) {
  const T offset = aligned ? T(0.5) : T(0);
  RoiBins<T> r;
  r.batch = static_cast<int64_t>(roi[0]);
  r.start_w = roi[1] * spatial_scale - offset;
  r.start_h = roi[2] * spatial_scale - offset;
  T roi_w = roi[3] * spatial_scale - offset - r.start_w;
  T roi_h = roi[4] * spatial_scale - offset - r.start_h;
  if (!aligned) {
    roi_w = roi_w > T(1) ? roi_w : T(1);
    roi_h = roi_h > T(1) ? roi_h : T(1);
  }
  r.bin_h = roi_h / static_cast<T>(pooled_h);
  r.bin_w = roi_w / static_cast<T>(pooled_w);
  // ceil of a float computed in double is the same integer (every float is a double).
  r.grid_h = sampling_ratio > 0 ? sampling_ratio : static_cast<int64_t>(ceil(static_cast<double>(r.bin_h)));
  r.grid_w = sampling_ratio > 0 ? sampling_ratio : static_cast<int64_t>(ceil(static_cast<double>(r.bin_w)));
  // An inverted roi (x2 < x1) has a negative adaptive grid: no samples, as in torchvision's loops.
  if (r.grid_h < 0) r.grid_h = 0;
  if (r.grid_w < 0) r.grid_w = 0;
  const int64_t n = r.grid_h * r.grid_w;
  r.count = static_cast<T>(n > 1 ? n : 1);
  return r;
}

// Coordinate of sample i (of grid per bin) in bin p along one axis: the centers of grid equal sub-bins.
template <typename T>
C10_HOST_DEVICE inline T roi_sample_coord(T start, T bin, int64_t p, int64_t i, int64_t grid) {
  return start + static_cast<T>(p) * bin + static_cast<T>(i + 0.5) * bin / static_cast<T>(grid);
}

// The four taps of one bilinear sample of an (H, W) plane: offsets y*W + x of (y_low, x_low), (y_low,
// x_high), (y_high, x_low), (y_high, x_high) and their weights. The forward value is w0*v0 + w1*v1 + w2*v2 +
// w3*v3; the backward adds roi_tap_grad(g, wi, count) at each offset. A sample more than one pixel outside
// the plane is invalid (value 0, no gradient); one within a pixel of the border is clamped onto it.
template <typename T>
struct BilinearTaps {
  int64_t o[4];
  T w[4];
  bool valid;
};

template <typename T>
C10_HOST_DEVICE inline BilinearTaps<T> bilinear_taps(int64_t height, int64_t width, T y, T x) {
  BilinearTaps<T> t{{0, 0, 0, 0}, {T(0), T(0), T(0), T(0)}, false};
  if (y < T(-1) || y > static_cast<T>(height) || x < T(-1) || x > static_cast<T>(width)) return t;
  if (y <= T(0)) y = T(0);
  if (x <= T(0)) x = T(0);
  int64_t y_low = static_cast<int64_t>(y), x_low = static_cast<int64_t>(x), y_high, x_high;
  if (y_low >= height - 1) {
    y_high = y_low = height - 1;
    y = static_cast<T>(y_low);
  } else {
    y_high = y_low + 1;
  }
  if (x_low >= width - 1) {
    x_high = x_low = width - 1;
    x = static_cast<T>(x_low);
  } else {
    x_high = x_low + 1;
  }
  const T ly = y - static_cast<T>(y_low), lx = x - static_cast<T>(x_low);
  const T hy = T(1) - ly, hx = T(1) - lx;
  t.o[0] = y_low * width + x_low;
  t.o[1] = y_low * width + x_high;
  t.o[2] = y_high * width + x_low;
  t.o[3] = y_high * width + x_high;
  t.w[0] = hy * hx;
  t.w[1] = hy * lx;
  t.w[2] = ly * hx;
  t.w[3] = ly * lx;
  t.valid = true;
  return t;
}

// The interpolated value of one plane (H*W values of scalar_t) at a sample, in the compute type T.
template <typename T, typename scalar_t>
C10_HOST_DEVICE inline T bilinear_value(const BilinearTaps<T>& t, const scalar_t* plane) {
  if (!t.valid) return T(0);
  return t.w[0] * static_cast<T>(plane[t.o[0]]) + t.w[1] * static_cast<T>(plane[t.o[1]]) +
         t.w[2] * static_cast<T>(plane[t.o[2]]) + t.w[3] * static_cast<T>(plane[t.o[3]]);
}

// One tap's share of a bin's output gradient g: the bin is the mean of count samples.
template <typename T>
C10_HOST_DEVICE inline T roi_tap_grad(T g, T w, T count) {
  return g * w / count;
}

}  // namespace semaim::kernels
