// Host+device math of semaim::order_from_keys (a stable per-row argsort), shared by order_from_keys.cu
// and order_from_keys_cpu.cpp; reference: src/ordering order_from_keys_reference (at::argsort stable).
#pragma once
#include <c10/macros/Macros.h>

#include <cstdint>
#include <cstring>

namespace semaim::kernels {

// Order-preserving unsigned images of keys ("sort bits"): a < b in torch's sort order (NaN after every
// number, every NaN equal, -0.0 == +0.0) iff sort_bits(a) < sort_bits(b). The CPU twin and the CUDA kernel
// both compare them. Floats: NaN -> all ones, -0.0 -> +0.0, then negative values have
// every bit flipped and non-negative ones the sign bit set. Signed integers: the sign bit flipped.
C10_HOST_DEVICE inline uint32_t sort_bits(float v) {
  if (v != v) return 0xFFFFFFFFu;
  if (v == 0.0f) v = 0.0f;
  uint32_t u;
  memcpy(&u, &v, sizeof(u));
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}
C10_HOST_DEVICE inline uint64_t sort_bits(double v) {
  if (v != v) return ~uint64_t{0};
  if (v == 0.0) v = 0.0;
  uint64_t u;
  memcpy(&u, &v, sizeof(u));
  return (u >> 63) ? ~u : (u | (uint64_t{1} << 63));
}
C10_HOST_DEVICE inline uint32_t sort_bits(int32_t v) { return static_cast<uint32_t>(v) ^ 0x80000000u; }
C10_HOST_DEVICE inline uint32_t sort_bits(int16_t v) { return sort_bits(static_cast<int32_t>(v)); }
C10_HOST_DEVICE inline uint32_t sort_bits(int8_t v) { return sort_bits(static_cast<int32_t>(v)); }
C10_HOST_DEVICE inline uint32_t sort_bits(uint8_t v) { return v; }
C10_HOST_DEVICE inline uint64_t sort_bits(int64_t v) {
  return static_cast<uint64_t>(v) ^ (uint64_t{1} << 63);
}

// order_from_keys' total order: key in torch's sort order (its sort bits), then index (a stable argsort).
template <typename key_t, typename I>
C10_HOST_DEVICE inline bool key_before(key_t ka, I ia, key_t kb, I ib) {
  const auto ba = sort_bits(ka), bb = sort_bits(kb);
  return ba < bb || (ba == bb && ia < ib);
}

}  // namespace semaim::kernels
