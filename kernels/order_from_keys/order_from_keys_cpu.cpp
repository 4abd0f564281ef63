// CPU twin of semaim::order_from_keys: per-row stable LSD radix sort of core.h's sort bits (so the order is
// core.h's (key, index) order), parallel over rows. Reference: src/ordering order_from_keys_reference (stable
// at::argsort + scatter inverse).
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>
#include <utility>
#include <vector>

#include "kernels/ops.h"
#include "kernels/order_from_keys/core.h"

namespace semaim::kernels {

void check_order_from_keys_args(const at::Tensor& keys, c10::DeviceType device) {
  TORCH_CHECK(keys.defined() && keys.dim() == 2, "semaim::order_from_keys: keys must be (N, L), got ",
              keys.defined() ? keys.sizes() : at::IntArrayRef{});
  const auto st = keys.scalar_type();
  TORCH_CHECK(at::isFloatingType(st) || (at::isIntegralType(st, /*includeBool=*/false)),
              "semaim::order_from_keys: keys must be a real floating or integer type, got ", st);
  TORCH_CHECK(keys.device().type() == device, "semaim::order_from_keys: keys must be on a ",
              c10::DeviceTypeName(device), " device, got ", keys.device());
}

namespace {

// Stable LSD radix sort of one row's records by their keys, 8 bits per pass, skipping the passes whose digit
// is the same for the whole row. Stability gives the index tie-break, so the result is core.h's (key, index)
// order. hist[p] holds pass p's digit counts (the caller builds them while writing the records, so the row is
// read once before the scatters). rec is sorted in place; tmp is scratch of the same size.
template <int kPasses, typename rec_t, typename Key>
void radix_passes(rec_t* rec, rec_t* tmp, int64_t l, uint32_t (&hist)[kPasses][256], const Key& key) {
  rec_t* src = rec;
  rec_t* dst = tmp;
  const uint64_t k0 = key(rec[0]);
  for (int pass = 0; pass < kPasses; ++pass) {
    uint32_t* c = hist[pass];
    const int shift = 8 * pass;
    if (c[(k0 >> shift) & 0xFF] == static_cast<uint32_t>(l)) continue;  // one digit for the whole row
    uint32_t offset = 0;
    for (int d = 0; d < 256; ++d) {
      const uint32_t here = c[d];
      c[d] = offset;
      offset += here;
    }
    for (int64_t j = 0; j < l; ++j) dst[c[(key(src[j]) >> shift) & 0xFF]++] = src[j];
    std::swap(src, dst);
  }
  if (src != rec) std::copy(src, src + l, rec);
}

// One row of 32-bit sort bits: records pack (bits << 32 | index) into one word.
void sort_row_bits32(const uint32_t* bits, int64_t l, uint64_t* rec, uint64_t* tmp, int64_t* o,
                     int64_t* inv) {
  uint32_t hist[4][256] = {};
  for (int64_t j = 0; j < l; ++j) {
    const uint32_t b = bits[j];
    rec[j] = (uint64_t{b} << 32) | static_cast<uint64_t>(j);
    ++hist[0][b & 0xFF];
    ++hist[1][(b >> 8) & 0xFF];
    ++hist[2][(b >> 16) & 0xFF];
    ++hist[3][b >> 24];
  }
  radix_passes<4>(rec, tmp, l, hist, [](uint64_t r) { return r >> 32; });
  for (int64_t j = 0; j < l; ++j) {
    const int64_t s = static_cast<int64_t>(rec[j] & 0xFFFFFFFFu);
    o[j] = s;
    inv[s] = j;
  }
}

struct Rec64 {
  uint64_t bits;
  int64_t index;
};

// One row of 64-bit sort bits (float64 and int64 keys).
void sort_row_bits64(const uint64_t* bits, int64_t l, Rec64* rec, Rec64* tmp, int64_t* o, int64_t* inv) {
  uint32_t hist[8][256] = {};
  for (int64_t j = 0; j < l; ++j) {
    rec[j] = {bits[j], j};
    for (int pass = 0; pass < 8; ++pass) ++hist[pass][(bits[j] >> (8 * pass)) & 0xFF];
  }
  radix_passes<8>(rec, tmp, l, hist, [](const Rec64& r) { return r.bits; });
  for (int64_t j = 0; j < l; ++j) {
    o[j] = rec[j].index;
    inv[rec[j].index] = j;
  }
}

// Rows [begin, end): fill(i, bits) writes row i's sort bits, then the row is sorted into o/inv.
template <typename bits_t, typename Fill>
void sort_rows(int64_t begin, int64_t end, int64_t l, const Fill& fill, int64_t* o, int64_t* inv) {
  std::vector<bits_t> bits(l);
  if constexpr (sizeof(bits_t) == 4) {
    std::vector<uint64_t> rec(l), tmp(l);
    for (int64_t i = begin; i < end; ++i) {
      fill(i, bits.data());
      sort_row_bits32(bits.data(), l, rec.data(), tmp.data(), o + i * l, inv + i * l);
    }
  } else {
    std::vector<Rec64> rec(l), tmp(l);
    for (int64_t i = begin; i < end; ++i) {
      fill(i, bits.data());
      sort_row_bits64(bits.data(), l, rec.data(), tmp.data(), o + i * l, inv + i * l);
    }
  }
}

}  // namespace

// keys: (N, L) -> order (N, L), inverse (N, L) int64
std::tuple<at::Tensor, at::Tensor> order_from_keys_cpu(const at::Tensor& keys) {
  check_order_from_keys_args(keys, c10::DeviceType::CPU);
  const at::Tensor k = keys.contiguous();
  const int64_t n = k.size(0), l = k.size(1);
  TORCH_CHECK(l < (int64_t{1} << 32), "semaim::order_from_keys: rows longer than 2^32 - 1, got ", l);
  auto opts = k.options().dtype(at::kLong);
  at::Tensor order = at::empty({n, l}, opts), inverse = at::empty({n, l}, opts);
  if (n == 0 || l == 0) return {order, inverse};
  int64_t* o = order.data_ptr<int64_t>();
  int64_t* inv = inverse.data_ptr<int64_t>();
  AT_DISPATCH_ALL_TYPES_AND2(at::kHalf, at::kBFloat16, k.scalar_type(), "order_from_keys_cpu", [&] {
    using key_t = at::opmath_type<scalar_t>;
    using bits_t = decltype(sort_bits(key_t{}));
    const scalar_t* kp = k.data_ptr<scalar_t>();
    at::parallel_for(0, n, 1, [&](int64_t begin, int64_t end) {
      sort_rows<bits_t>(
          begin, end, l,
          [&](int64_t i, bits_t* bits) {
            for (int64_t j = 0; j < l; ++j) bits[j] = sort_bits(static_cast<key_t>(kp[i * l + j]));
          },
          o, inv);
    });
  });
  return {order, inverse};
}

}  // namespace semaim::kernels
