// Host+device math of semaim::nms (greedy non-maximum suppression, torchvision.ops.nms's semantics), shared
// by nms_cpu.cpp and nms.cu: the IoU of two boxes and the 64-box suppression mask words both backends fill.
#pragma once
#include <c10/macros/Macros.h>

#include <cstdint>
#include <vector>

namespace semaim::kernels {

// Boxes per mask word: bit j of word (i, b) says box i (in score order) suppresses box 64*b + j.
constexpr int64_t kNmsBlock = 64;

// IoU of two xyxy boxes, a: 4 values, b: 4 values. Degenerate boxes give 0/0 = NaN, which suppresses nothing.
template <typename T>
C10_HOST_DEVICE inline T box_iou(const T* a, const T* b) {
  const T left = a[0] > b[0] ? a[0] : b[0], right = a[2] < b[2] ? a[2] : b[2];
  const T top = a[1] > b[1] ? a[1] : b[1], bottom = a[3] < b[3] ? a[3] : b[3];
  const T w = right - left > T(0) ? right - left : T(0), h = bottom - top > T(0) ? bottom - top : T(0);
  const T inter = w * h;
  const T area_a = (a[2] - a[0]) * (a[3] - a[1]), area_b = (b[2] - b[0]) * (b[3] - b[1]);
  return inter / (area_a + area_b - inter);
}

// Word `block` of box i's mask: bit j set when box i overlaps box 64*block + j (a later box in score order)
// by more than the threshold. box: box i (4 values), col: the block's n <= 64 boxes (n x 4 values), from
// global memory or a CUDA block's shared copy.
template <typename T>
C10_HOST_DEVICE inline uint64_t nms_mask_word(const T* box, int64_t i, const T* col, int64_t block, int64_t n,
                                              double iou_threshold) {
  uint64_t bits = 0;
  const int64_t first = i + 1 - block * kNmsBlock;  // later boxes only
  for (int64_t j = first > 0 ? first : 0; j < n; ++j)
    if (static_cast<double>(box_iou(box, col + j * 4)) > iou_threshold) bits |= uint64_t(1) << j;
  return bits;
}

// The greedy pass over a filled (K, blocks) mask in score order: a box is kept unless a kept box before it
// suppresses it. -> the kept positions in score order
inline std::vector<int64_t> nms_keep_from_mask(const uint64_t* mask, int64_t k) {
  const int64_t blocks = (k + kNmsBlock - 1) / kNmsBlock;
  std::vector<uint64_t> removed(static_cast<size_t>(blocks), 0);
  std::vector<int64_t> keep;
  for (int64_t i = 0; i < k; ++i) {
    const int64_t b = i / kNmsBlock;
    if (removed[b] >> (i % kNmsBlock) & 1) continue;
    keep.push_back(i);
    for (int64_t w = b; w < blocks; ++w) removed[w] |= mask[i * blocks + w];
  }
  return keep;
}

}  // namespace semaim::kernels
