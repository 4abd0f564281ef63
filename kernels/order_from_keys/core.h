// Host+device math of semaim::order_from_keys (a stable per-row argsort), shared by order_from_keys.cu
// and order_from_keys_cpu.cpp; reference: src/ordering order_from_keys_reference (at::argsort stable).
#pragma once
#include <c10/macros/Macros.h>

#include <cstdint>

namespace semaim::kernels {

// torch's sort order for one key: NaN after every number, otherwise <. Returns -1, 0, 1.
template <typename key_t>
C10_HOST_DEVICE inline int key_cmp(key_t a, key_t b) {
  const bool na = a != a, nb = b != b;
  if (na || nb) return na == nb ? 0 : (na ? 1 : -1);
  return a < b ? -1 : (b < a ? 1 : 0);
}

// order_from_keys' total order: key, then index (a stable argsort).
template <typename key_t, typename I>
C10_HOST_DEVICE inline bool key_before(key_t ka, I ia, key_t kb, I ib) {
  const int c = key_cmp(ka, kb);
  return c < 0 || (c == 0 && ia < ib);
}

// Smallest power of two >= n (n >= 1): the bitonic sort's slot count.
C10_HOST_DEVICE inline int64_t next_pow2(int64_t n) {
  int64_t p = 1;
  while (p < n) p <<= 1;
  return p;
}

// Sort slot comparison with padding: slots a, b >= l are padding and go last, by index.
template <typename key_t, typename I>
C10_HOST_DEVICE inline bool slot_before(const key_t* keys, I a, I b, I l) {
  if (a >= l || b >= l) return a < b;
  return key_before(keys[a], a, keys[b], b);
}

}  // namespace semaim::kernels
