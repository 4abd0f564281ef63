// CPU twin of semaim::permute_rows: row gather (+ fused add of a per-position table), parallel over rows.
// Reference: index_select of the flattened rows, then + add.index_select (permute_rows_reference). x may be
// any strided view: unit-stride rows are gathered in place, and a unit-stride token axis (the patch
// embedding's output) goes through a cache-blocked transpose, so neither pays for a contiguous() copy.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/MemoryOverlap.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#if defined(__SSE2__)
#include <xmmintrin.h>
#endif

#include <sys/mman.h>
#include <unistd.h>

#include "kernels/ops.h"
#include "kernels/permute_rows/core.h"

namespace semaim::kernels {

void check_permute_rows_args(const at::Tensor& x, const at::Tensor& index,
                             const c10::optional<at::Tensor>& add, c10::DeviceType device) {
  TORCH_CHECK(index.defined() && index.dim() == 2 && index.scalar_type() == at::kLong,
              "semaim::permute_rows: index must be (N, L) int64, got ", index.sizes(), " ",
              index.scalar_type());
  const int64_t n = index.size(0), l = index.size(1);
  TORCH_CHECK(
      x.defined() && ((x.dim() == 3 && x.size(0) == n && x.size(1) == l) || (x.dim() == 2 && x.size(0) == l)),
      "semaim::permute_rows: x must be (N, L, D) = (", n, ", ", l, ", D) or a shared (L, D) table, got ",
      x.sizes());
  TORCH_CHECK(at::isFloatingType(x.scalar_type()), "semaim::permute_rows: x must be floating point, got ",
              x.scalar_type());
  TORCH_CHECK(x.device().type() == device && index.device() == x.device(),
              "semaim::permute_rows: x and index must be on one ", c10::DeviceTypeName(device),
              " device, got ", x.device(), " and ", index.device());
  if (add.has_value() && add->defined()) {
    TORCH_CHECK(add->dim() == 2 && add->size(0) == l && add->size(1) == x.size(-1),
                "semaim::permute_rows: add must be (L, D) = (", l, ", ", x.size(-1), "), got ", add->sizes());
    TORCH_CHECK(add->scalar_type() == x.scalar_type() && add->device() == x.device(),
                "semaim::permute_rows: add must have x's dtype and device");
  }
}

namespace {

// Side of the token-major form's transpose blocks: 16 fp32 values are one 64-byte cache line.
constexpr int64_t kTile = 16;
// One thread's token-major buffer: a run of tokens' rows that stays in L2 (about 160 tokens at D = 768).
constexpr int64_t kTokenBufferBytes = 512 * 1024;

// One output row: dst = row (+ arow), element math from core.h.
template <typename scalar_t>
inline void write_row(scalar_t* dst, const scalar_t* row, const scalar_t* arow, int64_t d) {
  if (arow == nullptr) {
    std::memcpy(dst, row, sizeof(scalar_t) * d);
    return;
  }
  for (int64_t i = 0; i < d; ++i) dst[i] = permute_add(row[i], arow[i]);
}

// Row form: every token row of x is unit-stride (contiguous x, or a row-strided view such as a narrow), and
// so is every row of out (element strides on, ol). out[n, k, :] = x[n, index[n, k], :] (+ add[index[n, k],
// :]).
template <typename scalar_t>
void gather_rows(const scalar_t* xp, int64_t sn, int64_t sl, const int64_t* idx, const scalar_t* ap,
                 int64_t n, int64_t l, int64_t d, scalar_t* op, int64_t on, int64_t ol) {
  at::parallel_for(0, n * l, 64, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const int64_t src = idx[r], img = r / l;
      write_row(op + img * on + (r - img * l) * ol, xp + permute_src_offset(img, src, sn, sl),
                ap == nullptr ? nullptr : ap + src * d, d);
    }
  });
}

std::atomic<bool> g_prefault{true};

struct PageRange {
  uintptr_t begin, end, page;
};

// The whole pages inside [data, data + bytes): begin and end page-aligned (end <= begin when there are none).
PageRange whole_pages(const void* data, size_t bytes) {
  const auto page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  return {(reinterpret_cast<uintptr_t>(data) + page - 1) / page * page,
          (reinterpret_cast<uintptr_t>(data) + bytes) / page * page, page};
}

// Faults in the pages of a fresh output with one madvise per thread instead of one page fault per 4 KiB page
// as the writes first touch it: the op writes every byte of its output, and on this VM a fault costs about as
// much as zeroing its page (docs/benchmarks.md). Linux >= 5.14; elsewhere, or on failure, the writes fault
// the pages in as usual. An output whose sampled pages are all resident is taken to exist already and left
// as it is.
void prefault(void* data, size_t bytes) {
#ifdef MADV_POPULATE_WRITE
  const auto [begin, end, page] = whole_pages(data, bytes);
  if (end <= begin || end - begin < (size_t{32} << 20)) return;
  if (sampled_pages_resident(data, bytes)) return;
  const int64_t pages = static_cast<int64_t>((end - begin) / page);
  at::parallel_for(0, pages, 1024, [&](int64_t b, int64_t e) {
    madvise(reinterpret_cast<void*>(begin + static_cast<uintptr_t>(b) * page),
            static_cast<size_t>(e - b) * page, MADV_POPULATE_WRITE);
  });
#else
  (void)data;
  (void)bytes;
#endif
}

// Every index value of the op in [0, l): a clear error naming the op and the value otherwise.
void check_index_range(const int64_t* idx, int64_t count, int64_t l, const char* op) {
  for (int64_t r = 0; r < count; ++r) {
    TORCH_CHECK(idx[r] >= 0 && idx[r] < l, op, ": index ", idx[r], " out of range [0, ", l, ")");
  }
}

// The per-row inverse of idx (inv[n, idx[n, k]] = k), or false when a row of idx is not a permutation.
bool invert_rows(const int64_t* idx, int64_t n, int64_t l, std::vector<int64_t>& inv) {
  inv.assign(static_cast<size_t>(n * l), -1);
  std::atomic<bool> permutation{true};
  at::parallel_for(0, n, 16, [&](int64_t begin, int64_t end) {
    for (int64_t img = begin; img < end; ++img) {
      for (int64_t k = 0; k < l; ++k) {
        int64_t& slot = inv[static_cast<size_t>(img * l + idx[img * l + k])];
        if (slot >= 0) permutation = false;
        slot = k;
      }
    }
  });
  return permutation;
}

// dst[p * ldd + j] = src[j * lds + p] for a kTile x kTile block: fp32 in 4 x 4 SSE transposes (SSE is part of
// x86-64), other types element by element. A data move only: the op's arithmetic stays in core.h.
template <typename scalar_t>
inline void transpose_block(const scalar_t* src, int64_t lds, scalar_t* dst, int64_t ldd) {
#if defined(__SSE2__)
  if constexpr (std::is_same_v<scalar_t, float>) {
    for (int64_t j = 0; j < kTile; j += 4) {
      for (int64_t p = 0; p < kTile; p += 4) {
        __m128 r0 = _mm_loadu_ps(src + (j + 0) * lds + p), r1 = _mm_loadu_ps(src + (j + 1) * lds + p);
        __m128 r2 = _mm_loadu_ps(src + (j + 2) * lds + p), r3 = _mm_loadu_ps(src + (j + 3) * lds + p);
        _MM_TRANSPOSE4_PS(r0, r1, r2, r3);
        _mm_storeu_ps(dst + (p + 0) * ldd + j, r0);
        _mm_storeu_ps(dst + (p + 1) * ldd + j, r1);
        _mm_storeu_ps(dst + (p + 2) * ldd + j, r2);
        _mm_storeu_ps(dst + (p + 3) * ldd + j, r3);
      }
    }
    return;
  }
#endif
  for (int64_t j = 0; j < kTile; ++j) {
    for (int64_t p = 0; p < kTile; ++p) dst[p * ldd + j] = src[j * lds + p];
  }
}

// dst[c * ldd + r] = src[r * lds + c] for r < rows, c < 4: four dst rows written along r together (fp32 in 4
// x 4 SSE transposes), so that a run of a memory-side dst row goes out as one sequential stream.
template <typename scalar_t>
inline void transpose_strip4(const scalar_t* src, int64_t lds, scalar_t* dst, int64_t ldd, int64_t rows) {
  int64_t r = 0;
#if defined(__SSE2__)
  if constexpr (std::is_same_v<scalar_t, float>) {
    for (; r + 4 <= rows; r += 4) {
      __m128 r0 = _mm_loadu_ps(src + (r + 0) * lds), r1 = _mm_loadu_ps(src + (r + 1) * lds);
      __m128 r2 = _mm_loadu_ps(src + (r + 2) * lds), r3 = _mm_loadu_ps(src + (r + 3) * lds);
      _MM_TRANSPOSE4_PS(r0, r1, r2, r3);
      _mm_storeu_ps(dst + r, r0);
      _mm_storeu_ps(dst + ldd + r, r1);
      _mm_storeu_ps(dst + 2 * ldd + r, r2);
      _mm_storeu_ps(dst + 3 * ldd + r, r3);
    }
  }
#endif
  for (; r < rows; ++r) {
    for (int64_t c = 0; c < 4; ++c) dst[c * ldd + r] = src[r * lds + c];
  }
}

// Tokens per task of the token-major forms: as many (D)-rows as fill kTokenBufferBytes, a multiple of kTile.
int64_t token_run(int64_t l, int64_t d, int64_t elem) {
  const int64_t fit = kTokenBufferBytes / (d * elem);
  return std::min(l, std::max(kTile, fit / kTile * kTile));
}

// dst[c * ldd + r] = src[r * lds + c] for r < rows, c < cols. One side is the task's buffer (in L2), the
// other x or out in memory. Into the buffer: kTile x kTile blocks through transpose_block along src's rows,
// the edges element by element. Out of it: strips of four dst rows written whole (transpose_strip4).
template <typename scalar_t>
void transpose_tiles(const scalar_t* src, int64_t lds, scalar_t* dst, int64_t ldd, int64_t rows, int64_t cols,
                     bool into_buffer) {
  const auto block = [&](int64_t r0, int64_t c0) {
    const int64_t r1 = std::min(rows, r0 + kTile), c1 = std::min(cols, c0 + kTile);
    if (r1 - r0 == kTile && c1 - c0 == kTile) {
      transpose_block(src + r0 * lds + c0, lds, dst + c0 * ldd + r0, ldd);
      return;
    }
    for (int64_t r = r0; r < r1; ++r) {
      for (int64_t c = c0; c < c1; ++c) dst[c * ldd + r] = src[r * lds + c];
    }
  };
  if (into_buffer) {
    for (int64_t r0 = 0; r0 < rows; r0 += kTile) {
      for (int64_t c0 = 0; c0 < cols; c0 += kTile) block(r0, c0);
    }
    return;
  }
  int64_t c0 = 0;
  for (; c0 + 4 <= cols; c0 += 4) transpose_strip4(src + c0, lds, dst + c0 * ldd, ldd, rows);
  for (; c0 < cols; ++c0) {
    for (int64_t r = 0; r < rows; ++r) dst[c0 * ldd + r] = src[r * lds + c0];
  }
}

// Token-major x: the token axis of x is unit-stride, as in the (N, D, gh*gw) output of the patch
// embedding's convolution seen as (N, L, D) through flatten(2).transpose(1, 2). Each task takes a run of
// consecutive source tokens of one image (token_run): a transpose of x[n, p0:p0+run, :] in kTile x kTile
// blocks into a (run, D) buffer, reading each channel's run of tokens sequentially, then each token's row
// goes out whole (+ add) to its place in the order, out[n, inv[n, p]] (inv: the inverse of index; out rows
// unit-stride at element strides on, ol). x is read once and out written once.
template <typename scalar_t>
void scatter_token_major(const scalar_t* xp, int64_t sn, int64_t sd, const int64_t* inv, const scalar_t* ap,
                         int64_t n, int64_t l, int64_t d, scalar_t* op, int64_t on, int64_t ol) {
  const int64_t run = token_run(l, d, sizeof(scalar_t)), blocks = (l + run - 1) / run;
  at::parallel_for(0, n * blocks, 1, [&](int64_t begin, int64_t end) {
    // Rows padded by a cache line: with D * e a multiple of 4 KiB the block's 16 rows would share one L1 set.
    const int64_t ld = d + kTile;
    std::vector<scalar_t> buf(static_cast<size_t>(run * ld));
    for (int64_t t = begin; t < end; ++t) {
      const int64_t img = t / blocks, p0 = t % blocks * run, tokens = std::min(run, l - p0);
      // buf[p * ld + j] = x[img, p0 + p, j] = xp[img * sn + (p0 + p) + j * sd]
      transpose_tiles(xp + permute_src_offset(img, p0, sn, 1), sd, buf.data(), ld, d, tokens,
                      /*into_buffer=*/true);
      for (int64_t p = 0; p < tokens; ++p) {
        write_row(op + img * on + inv[img * l + p0 + p] * ol, buf.data() + p * ld,
                  ap == nullptr ? nullptr : ap + (p0 + p) * d, d);
      }
    }
  });
}

// Token-major out (the backward's gradient in the layout of a token-major x, so that the convolution before
// it gets a contiguous (N, D, gh, gw) gradient): out[n, k, j] at n*on + k + j*od, x in the row form. Each
// task takes a block of channels of one image, as many as fill kTokenBufferBytes for all L tokens: it gathers
// every output token's slice of those channels (+ add) into an (L, width) buffer, then writes the block's
// channel rows of out whole, each one sequential along the tokens (transpose_tiles). With out (N, D, L)
// contiguous, a task's writes are one contiguous span; blocks of tokens instead measured 1.2-1.7x slower at L
// = 1024, their writes touching every 4 KiB page of the image once per block (docs/benchmarks.md).
template <typename scalar_t>
void gather_token_major(const scalar_t* xp, int64_t sn, int64_t sl, const int64_t* idx, const scalar_t* ap,
                        int64_t n, int64_t l, int64_t d, scalar_t* op, int64_t on, int64_t od) {
  const int64_t fit = kTokenBufferBytes / (l * static_cast<int64_t>(sizeof(scalar_t)));
  const int64_t width = std::min(d, std::max(kTile, fit / kTile * kTile)), blocks = (d + width - 1) / width;
  at::parallel_for(0, n * blocks, 1, [&](int64_t begin, int64_t end) {
    const int64_t ld = width + kTile;  // padded as in scatter_token_major
    std::vector<scalar_t> buf(static_cast<size_t>(l * ld));
    for (int64_t t = begin; t < end; ++t) {
      const int64_t img = t / blocks, j0 = t % blocks * width, w = std::min(width, d - j0);
      for (int64_t k = 0; k < l; ++k) {
        const int64_t src = idx[img * l + k];
        write_row(buf.data() + k * ld, xp + permute_src_offset(img, src, sn, sl) + j0,
                  ap == nullptr ? nullptr : ap + src * d + j0, w);
      }
      // out[img, k, j0 + j] = op[img * on + k + (j0 + j) * od] = buf[k * ld + j]
      transpose_tiles(buf.data(), ld, op + img * on + j0 * od, od, l, w, /*into_buffer=*/false);
    }
  });
}

// Writes the op's result into out (checked by the caller: (N, L, D), x's dtype and device, no overlap).
void permute_rows_into(const at::Tensor& x, const at::Tensor& index, const c10::optional<at::Tensor>& add,
                       at::Tensor& out) {
  const at::Tensor ic = index.contiguous();
  const bool has_add = add.has_value() && add->defined();
  const at::Tensor ac = has_add ? add->contiguous() : at::Tensor();
  const int64_t n = ic.size(0), l = ic.size(1), d = x.size(-1);
  if (out.numel() == 0) return;
  const int64_t* idx = ic.data_ptr<int64_t>();
  check_index_range(idx, n * l, l, "semaim::permute_rows");
  // out: unit-stride rows, or a unit-stride token axis (token-major); any other layout gets a contiguous
  // result copied in.
  const bool out_rows = out.stride(2) == 1 || d == 1;
  const bool out_token_major = !out_rows && out.stride(1) == 1 && l > 1;
  if (!out_rows && !out_token_major) {
    out.copy_(permute_rows_cpu(x, index, add));
    return;
  }
  // The token-major x scatters by the inverse, so it needs index to be a permutation of every row, and
  // out's rows unit-stride.
  std::vector<int64_t> inv;
  const bool token_major = out_rows && x.dim() == 3 && x.stride(2) != 1 && x.stride(1) == 1 && l > 1 &&
                           invert_rows(idx, n, l, inv);
  const bool rows = x.dim() == 3 && (x.stride(2) == 1 || d == 1);
  // A shared table or a 3-d x with neither unit-stride rows nor a unit-stride token axis is copied first.
  const at::Tensor xc = token_major || rows ? x : x.contiguous();
  // Per-image strides in elements; a shared (L, D) table is one image for every n (stride 0).
  const int64_t sn = xc.dim() == 3 ? xc.stride(0) : 0, sl = xc.dim() == 3 ? xc.stride(1) : d;
  if (g_prefault.load(std::memory_order_relaxed) && out.is_non_overlapping_and_dense()) {
    prefault(out.data_ptr(), out.nbytes());
  }
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, xc.scalar_type(), "permute_rows_cpu", [&] {
    const scalar_t* xp = xc.data_ptr<scalar_t>();
    const scalar_t* ap = has_add ? ac.data_ptr<scalar_t>() : nullptr;
    scalar_t* op = out.data_ptr<scalar_t>();
    if (out_token_major) {
      gather_token_major(xp, sn, sl, idx, ap, n, l, d, op, out.stride(0), out.stride(2));
    } else if (token_major) {
      scatter_token_major(xp, sn, xc.stride(2), inv.data(), ap, n, l, d, op, out.stride(0), out.stride(1));
    } else {
      gather_rows(xp, sn, sl, idx, ap, n, l, d, op, out.stride(0), out.stride(1));
    }
  });
}

}  // namespace

bool set_permute_rows_prefault(bool on) { return g_prefault.exchange(on); }

bool sampled_pages_resident(const void* data, size_t bytes) {
  constexpr uintptr_t kSamples = 16;
  const auto [begin, end, page] = whole_pages(data, bytes);
  if (end <= begin) return false;
  const uintptr_t pages = (end - begin) / page;
  for (uintptr_t s = 0; s < kSamples; ++s) {
    unsigned char resident = 0;
    const uintptr_t at = begin + (pages - 1) * s / (kSamples - 1) * page;
    if (mincore(reinterpret_cast<void*>(at), page, &resident) != 0 || (resident & 1) == 0) return false;
  }
  return true;
}

void check_permute_rows_out(const at::Tensor& x, const at::Tensor& index,
                            const c10::optional<at::Tensor>& add, const at::Tensor& out) {
  const int64_t n = index.size(0), l = index.size(1), d = x.size(-1);
  const auto dtype = x.scalar_type();
  TORCH_CHECK(out.defined() && out.dim() == 3 && out.size(0) == n && out.size(1) == l && out.size(2) == d,
              "semaim::permute_rows: out must be (N, L, D) = (", n, ", ", l, ", ", d, "), got ",
              out.defined() ? out.sizes() : c10::IntArrayRef());
  TORCH_CHECK(out.scalar_type() == dtype && out.device() == x.device(),
              "semaim::permute_rows: out must have x's dtype and device (", dtype, ", ", x.device(),
              "), got ", out.scalar_type(), ", ", out.device());
  TORCH_CHECK(at::has_internal_overlap(out) != at::MemOverlap::Yes,
              "semaim::permute_rows: out has elements that share memory");
  const auto apart = [&](const at::Tensor& t, const char* name) {
    const auto status = at::get_overlap_status(out, t);
    TORCH_CHECK(status != at::MemOverlapStatus::Full && status != at::MemOverlapStatus::Partial,
                "semaim::permute_rows: out overlaps ", name);
  };
  apart(x, "x");
  apart(index, "index");
  if (add.has_value() && add->defined()) apart(*add, "add");
}

void check_permute_rows_sum_args(const at::Tensor& x, const at::Tensor& index, c10::DeviceType device) {
  TORCH_CHECK(index.defined() && index.dim() == 2 && index.scalar_type() == at::kLong,
              "semaim::permute_rows_sum: index must be (N, L) int64, got ", index.sizes(), " ",
              index.scalar_type());
  TORCH_CHECK(x.defined() && x.dim() == 3 && x.size(0) == index.size(0) && x.size(1) == index.size(1),
              "semaim::permute_rows_sum: x must be (N, L, D) = (", index.size(0), ", ", index.size(1),
              ", D), got ", x.sizes());
  TORCH_CHECK(at::isFloatingType(x.scalar_type()), "semaim::permute_rows_sum: x must be floating point, got ",
              x.scalar_type());
  TORCH_CHECK(x.device().type() == device && index.device() == x.device(),
              "semaim::permute_rows_sum: x and index must be on one ", c10::DeviceTypeName(device),
              " device, got ", x.device(), " and ", index.device());
}

// x: (N, L, D) with unit-stride rows (else copied), index: (N, L) -> (L, D): out[p] = sum_n x[n, index[n,
// p]], the images summed in order in the op-math type. When index is a permutation of every row, each thread
// takes a range of channels and reads x in memory order, adding row k of image n to acc[p] for the p with
// index[n, p] = k (x read once, sequentially, as index_add reads it). Otherwise each p gathers its N rows.
namespace {

// a[j] += row[j] (core.h's permute_sum_add) for j < w: the inner loop of permute_rows_sum's permutation form,
// which adds rows of x into accumulator rows in L2, so the vector width counts. fp32 gets clones for AVX-512
// and AVX2 (chosen by the CPU at load time; semaim is otherwise built for baseline x86-64): they measured
// 0.83-1.04x index_add against 0.63-0.73x for the SSE2 loop (docs/benchmarks.md).
#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target_clones("avx512f", "avx2", "default")))
#endif
void add_row_f32(float* __restrict__ a, const float* __restrict__ row, int64_t w) {
  for (int64_t j = 0; j < w; ++j) a[j] = permute_sum_add(a[j], row[j]);
}

template <typename acc_t, typename scalar_t>
inline void add_row(acc_t* __restrict__ a, const scalar_t* __restrict__ row, int64_t w) {
  if constexpr (std::is_same_v<scalar_t, float>) {
    add_row_f32(a, row, w);
  } else {
    for (int64_t j = 0; j < w; ++j) a[j] = permute_sum_add(a[j], row[j]);
  }
}

}  // namespace

at::Tensor permute_rows_sum_cpu(const at::Tensor& x, const at::Tensor& index) {
  check_permute_rows_sum_args(x, index, c10::DeviceType::CPU);
  const at::Tensor ic = index.contiguous();
  const int64_t n = ic.size(0), l = ic.size(1), d = x.size(2);
  const int64_t* idx = ic.data_ptr<int64_t>();
  check_index_range(idx, n * l, l, "semaim::permute_rows_sum");
  const at::Tensor xc = x.stride(2) == 1 || d == 1 ? x : x.contiguous();
  at::Tensor out = at::empty({l, d}, xc.options().memory_format(at::MemoryFormat::Contiguous));
  if (out.numel() == 0) return out;
  const int64_t sn = xc.stride(0), sl = xc.stride(1);
  std::vector<int64_t> inv;  // inv[n, k] = p with index[n, p] = k
  const bool permutation = invert_rows(idx, n, l, inv);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, xc.scalar_type(), "permute_rows_sum_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const scalar_t* xp = xc.data_ptr<scalar_t>();
    scalar_t* op = out.data_ptr<scalar_t>();
    if (permutation) {
      at::parallel_for(0, d, kTile, [&](int64_t j0, int64_t j1) {
        const int64_t w = j1 - j0;
        std::vector<acc_t> acc(static_cast<size_t>(l * w), acc_t(0));
        for (int64_t img = 0; img < n; ++img) {
          for (int64_t k = 0; k < l; ++k) {
            const scalar_t* row = xp + permute_src_offset(img, k, sn, sl) + j0;
            acc_t* a = acc.data() + inv[static_cast<size_t>(img * l + k)] * w;
            add_row(a, row, w);
          }
        }
        for (int64_t p = 0; p < l; ++p) {
          for (int64_t j = 0; j < w; ++j) op[p * d + j0 + j] = static_cast<scalar_t>(acc[p * w + j]);
        }
      });
      return;
    }
    at::parallel_for(0, l, 1, [&](int64_t begin, int64_t end) {
      std::vector<acc_t> acc(static_cast<size_t>(d));
      for (int64_t p = begin; p < end; ++p) {
        std::fill(acc.begin(), acc.end(), acc_t(0));
        for (int64_t img = 0; img < n; ++img) {
          const scalar_t* row = xp + permute_src_offset(img, idx[img * l + p], sn, sl);
          for (int64_t j = 0; j < d; ++j) acc[j] = permute_sum_add(acc[j], row[j]);
        }
        for (int64_t j = 0; j < d; ++j) op[p * d + j] = static_cast<scalar_t>(acc[j]);
      }
    });
  });
  return out;
}

// x: (N, L, D) of any strides or (L, D), index: (N, L), add: (L, D) or none -> (N, L, D) contiguous
at::Tensor permute_rows_cpu(const at::Tensor& x, const at::Tensor& index,
                            const c10::optional<at::Tensor>& add) {
  check_permute_rows_args(x, index, add, c10::DeviceType::CPU);
  at::Tensor out = at::empty({index.size(0), index.size(1), x.size(-1)},
                             x.options().memory_format(at::MemoryFormat::Contiguous));
  permute_rows_into(x, index, add, out);
  return out;
}

// As permute_rows_cpu, written into out: (N, L, D) of x's dtype in any non-overlapping layout
at::Tensor& permute_rows_out_cpu(const at::Tensor& x, const at::Tensor& index,
                                 const c10::optional<at::Tensor>& add, at::Tensor& out) {
  check_permute_rows_args(x, index, add, c10::DeviceType::CPU);
  check_permute_rows_out(x, index, add, out);
  permute_rows_into(x, index, add, out);
  return out;
}

}  // namespace semaim::kernels
