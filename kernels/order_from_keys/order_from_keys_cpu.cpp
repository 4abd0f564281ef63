// CPU twin of semaim::order_from_keys, parallel over rows: per row, a stable bucket pass by value then
// per-bucket sorts of core.h's sort bits (32-bit keys), or a stable LSD radix sort of the sort bits (64-bit
// keys); either way the order is core.h's (key, index) order. Reference: src/ordering
// order_from_keys_reference (stable at::argsort + scatter inverse).
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
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

// Buckets up to this size are finished by insertion sort.
constexpr uint32_t kSmallBucket = 16;

// Puts m records in (bits, index) order: by insertion sort (cheap when every record is near its slot), else
// std::sort. Records are distinct (the index is in the low word), so every sort gives the same result.
inline void sort_bucket(uint64_t* r, int64_t m, bool insertion) {
  if (!insertion) {
    std::sort(r, r + m);
    return;
  }
  for (int64_t i = 1; i < m; ++i) {
    const uint64_t x = r[i];
    int64_t j = i;
    for (; j > 0 && r[j - 1] > x; --j) r[j] = r[j - 1];
    r[j] = x;
  }
}

// One row whose keys have 32-bit sort bits. A stable counting pass spreads the records (bits << 32 | index)
// over L buckets linear in the key's value between the row's finite minimum and maximum (-inf in the first
// bucket, +inf and NaN in the last), which never decreases along core.h's order; each bucket is then sorted
// by its records, which is core.h's (key, index) order. Keys spread like ranks or uniforms leave about one
// record per bucket, so a row costs a few passes over L instead of one radix pass per 8 varying bits; keys
// piled into few buckets degrade to std::sort of those buckets, never to a wrong order.
// rec, tmp: L records; bucket, count: L words of scratch.
template <typename key_t>
void sort_row_bucketed(const key_t* keys, int64_t l, uint64_t* rec, uint64_t* tmp, uint32_t* bucket,
                       uint32_t* count, int64_t* o, int64_t* inv) {
  double lo = std::numeric_limits<double>::infinity(), hi = -lo;
  for (int64_t j = 0; j < l; ++j) {
    const double v = static_cast<double>(keys[j]);
    if (std::isfinite(v)) {
      lo = std::min(lo, v);
      hi = std::max(hi, v);
    }
  }
  double scale = hi > lo ? static_cast<double>(l - 1) / (hi - lo) : 0.0;
  if (!std::isfinite(scale)) scale = 0.0;  // a span too wide or too narrow for doubles: one bucket
  const uint32_t last = static_cast<uint32_t>(l - 1);
  std::memset(count, 0, sizeof(uint32_t) * l);
  for (int64_t j = 0; j < l; ++j) {
    const key_t k = keys[j];
    const double v = static_cast<double>(k);
    uint32_t b;
    if (std::isfinite(v)) {
      const double t = (v - lo) * scale;  // >= 0 since v >= lo
      b = t < static_cast<double>(last) ? static_cast<uint32_t>(t) : last;
    } else {
      b = v < 0 ? 0 : last;  // -inf first; +inf and NaN last
    }
    rec[j] = (uint64_t{sort_bits(k)} << 32) | static_cast<uint64_t>(j);
    bucket[j] = b;
    ++count[b];
  }
  uint32_t offset = 0, most = 0;
  for (int64_t b = 0; b < l; ++b) {
    const uint32_t here = count[b];
    count[b] = offset;
    offset += here;
    most = std::max(most, here);
  }
  for (int64_t j = 0; j < l; ++j) tmp[count[bucket[j]]++] = rec[j];
  if (most <= kSmallBucket) {
    // Every record is at most kSmallBucket - 1 places from its sorted slot: one insertion sort over the
    // row finishes all buckets, with no per-bucket branch.
    sort_bucket(tmp, l, /*insertion=*/true);
  } else {
    // Now count[b] is the end of bucket b, and the start of bucket b + 1.
    uint32_t begin = 0;
    for (int64_t b = 0; b < l; ++b) {
      const uint32_t end = count[b];
      if (end - begin > 1) sort_bucket(tmp + begin, end - begin, end - begin <= kSmallBucket);
      begin = end;
    }
  }
  for (int64_t j = 0; j < l; ++j) {
    const int64_t s = static_cast<int64_t>(tmp[j] & 0xFFFFFFFFu);
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

// Rows [begin, end) of keys (N, L) in `scalar_t`, read as key_t (their op-math type), sorted into o/inv.
template <typename scalar_t, typename key_t>
void sort_rows(const scalar_t* kp, int64_t begin, int64_t end, int64_t l, int64_t* o, int64_t* inv) {
  if constexpr (sizeof(sort_bits(key_t{})) == 4) {
    std::vector<key_t> keys(l);
    std::vector<uint64_t> rec(l), tmp(l);
    std::vector<uint32_t> bucket(l), count(l);
    for (int64_t i = begin; i < end; ++i) {
      for (int64_t j = 0; j < l; ++j) keys[j] = static_cast<key_t>(kp[i * l + j]);
      sort_row_bucketed(keys.data(), l, rec.data(), tmp.data(), bucket.data(), count.data(), o + i * l,
                        inv + i * l);
    }
  } else {
    std::vector<uint64_t> bits(l);
    std::vector<Rec64> rec(l), tmp(l);
    for (int64_t i = begin; i < end; ++i) {
      for (int64_t j = 0; j < l; ++j) bits[j] = sort_bits(static_cast<key_t>(kp[i * l + j]));
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
    const scalar_t* kp = k.data_ptr<scalar_t>();
    at::parallel_for(
        0, n, 1, [&](int64_t begin, int64_t end) { sort_rows<scalar_t, key_t>(kp, begin, end, l, o, inv); });
  });
  return {order, inverse};
}

}  // namespace semaim::kernels
