// Ordering-kernel benchmark (issue 3, SPEC §6): each fused op's CPU twin against its ATen reference
// composition (src/ordering *_reference) in one run, same inputs, checking the outputs agree.
//
// usage: bench_ordering_kernels [--repeats R] [--only OP[,OP...]]
//   --only runs just the named ops (semantic_order, order_from_keys, parts_order, permute_rows).
// Prints a Markdown table: median wall time over R runs (after one warm-up) of the twin and the reference,
// and reference/twin, for N=256, L=196 (14x14), D=768 and N=64, L=1024 (32x32), D=1024, fp32 and bf16 tokens.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include <torch/csrc/autograd/autograd.h>

#include "kernels/ops.h"
#include "kernels/permute_rows/permute_rows.h"
#include "semaim/ordering/kernels.h"
#include "semaim/ordering/ordering.h"

namespace {

double median_ms(const std::function<void()>& fn, int repeats) {
  fn();  // warm-up: allocator and thread pool
  std::vector<double> ms;
  for (int r = 0; r < repeats; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

struct Size {
  int64_t n, gh, gw, d;
};

}  // namespace

int main(int argc, char** argv) {
  int repeats = 3;
  std::string only;
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::string(argv[i]) == "--repeats") repeats = std::max(1, std::atoi(argv[i + 1]));
    if (std::string(argv[i]) == "--only") only = "," + std::string(argv[i + 1]) + ",";
  }
  const auto runs = [&](const char* op) {
    return only.empty() || only.find("," + std::string(op) + ",") != std::string::npos;
  };
  using semaim::ordering::SimilaritySource;
  std::printf("threads: %d, median of %d runs\n\n", at::get_num_threads(), repeats);
  std::printf("| op | N | L | D | dtype | twin ms | reference ms | reference / twin | equal |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|\n");
  for (const Size& s : {Size{256, 14, 14, 768}, Size{64, 32, 32, 1024}}) {
    const int64_t l = s.gh * s.gw;
    auto gen = at::make_generator<at::CPUGeneratorImpl>(1);
    const at::Tensor tokens32 = at::randn({s.n, l + 1, s.d}, gen, at::TensorOptions().dtype(at::kFloat));
    const at::Tensor noise = at::rand({s.n, l}, gen, at::TensorOptions().dtype(at::kDouble));
    for (at::ScalarType dt : {at::kFloat, at::kBFloat16}) {
      if (!runs("semantic_order")) break;
      const at::Tensor tokens = tokens32.to(dt);
      std::tuple<at::Tensor, at::Tensor, at::Tensor> fused, ref;
      const double twin = median_ms(
          [&] { fused = semaim::ordering::semantic_order(tokens, s.gh, s.gw, "cls", noise); }, repeats);
      const double refm = median_ms(
          [&] {
            ref =
                semaim::ordering::semantic_order_reference(tokens, s.gh, s.gw, SimilaritySource::kCls, noise);
          },
          repeats);
      const bool equal =
          at::equal(std::get<0>(fused), std::get<0>(ref)) && at::equal(std::get<2>(fused), std::get<2>(ref));
      std::printf("| semantic_order | %lld | %lld | %lld | %s | %.2f | %.2f | %.2fx | %s |\n", (long long)s.n,
                  (long long)l, (long long)s.d, c10::toString(dt), twin, refm, refm / twin,
                  equal ? "yes" : "NO");
    }
    // Keys as the engine passes them: float32 ranks 0..L-1 (rank_keys: semantic, similarity, parts) and
    // rank / L (stochastic_keys), which varies in almost every bit and takes all four radix passes.
    const at::Tensor ranks = at::argsort(noise, /*stable=*/true, 1).to(at::kFloat);
    const std::pair<const char*, at::Tensor> key_sets[] = {{"float32 ranks", ranks},
                                                           {"float32 rank/L", ranks / static_cast<float>(l)}};
    for (const auto& [what, keys] : key_sets) {
      if (!runs("order_from_keys")) break;
      semaim::ordering::Permutation fp, rp;
      // A sub-millisecond op: each sample times 50 calls, alternating twin and reference, so scheduler and
      // allocator noise averages out instead of deciding the ratio.
      constexpr int kCalls = 50;
      std::vector<double> tw, rf;
      for (int r = 0; r < repeats; ++r) {
        tw.push_back(median_ms(
                         [&] {
                           for (int c = 0; c < kCalls; ++c) fp = semaim::ordering::order_from_keys(keys);
                         },
                         1) /
                     kCalls);
        rf.push_back(median_ms(
                         [&] {
                           for (int c = 0; c < kCalls; ++c)
                             rp = semaim::ordering::order_from_keys_reference(keys);
                         },
                         1) /
                     kCalls);
      }
      std::sort(tw.begin(), tw.end());
      std::sort(rf.begin(), rf.end());
      const double twin = tw[tw.size() / 2], refm = rf[rf.size() / 2];
      std::printf("| order_from_keys | %lld | %lld | - | %s | %.3f | %.3f | %.2fx | %s |\n", (long long)s.n,
                  (long long)l, what, twin, refm, refm / twin,
                  at::equal(fp.order, rp.order) && at::equal(fp.inverse, rp.inverse) ? "yes" : "NO");
    }
    // parts (k = 4, 5 iterations, the config defaults), fp32 only: its reference loops over D and L in ATen.
    if (runs("parts_order")) {
      at::Tensor pinv, pref;
      const double ptwin = median_ms(
          [&] { pinv = std::get<1>(semaim::ordering::parts_order(tokens32, s.gh, s.gw, 4, 5, noise)); }, 1);
      const double pref_ms =
          median_ms([&] { pref = semaim::ordering::parts_keys(tokens32, s.gh, s.gw, 4, 5, noise); }, 1);
      std::printf(
          "| parts_order (k=4, 5 iters) | %lld | %lld | %lld | float32 | %.2f | %.2f | %.2fx | %s |\n",
          (long long)s.n, (long long)l, (long long)s.d, ptwin, pref_ms, pref_ms / ptwin,
          at::equal(pinv, pref.to(at::kLong)) ? "yes" : "NO");
    }
    if (!runs("permute_rows")) continue;
    // permute_rows: the sorted-form gather of patch tokens with the fused position-embedding add, forward
    // and backward, against the ATen form the model used before (x + pos, then index_select of the rows).
    // Two layouts of the tokens: contiguous (N, L, D), and the patch embedding's output as the model hands
    // it over, the convolution's (N, D, L) seen as (N, L, D) through flatten(2).transpose(1, 2).
    const auto [order, inverse] = semaim::ordering::order_from_keys(noise);
    const at::Tensor pos = at::randn({l, s.d}, gen, at::TensorOptions());
    const at::Tensor w = at::randn({s.n, l, s.d}, gen, at::TensorOptions());
    for (const bool token_major : {false, true}) {
      const char* layout = token_major ? "patch-embedding layout" : "contiguous";
      // The leaf holds the memory; view() is what the op and the reference see.
      const at::Tensor leaf = token_major ? tokens32.narrow(1, 1, l).transpose(1, 2).contiguous()
                                          : tokens32.narrow(1, 1, l).contiguous();
      const auto view = [&](const at::Tensor& t) { return token_major ? t.transpose(1, 2) : t; };
      const at::Tensor patches = view(leaf);
      at::Tensor xf = leaf.clone().requires_grad_(), xr = leaf.clone().requires_grad_();
      at::Tensor yf, yr;
      const double fwd_twin =
          median_ms([&] { yf = semaim::kernels::permute_rows(patches, order, inverse, pos); }, repeats);
      const double fwd_ref =
          median_ms([&] { yr = semaim::kernels::permute_rows_reference(patches + pos, order); }, repeats);
      const bool same_fwd = at::equal(yf, yr);
      // The same twin without faulting in its output's pages up front (kernels/ops.h).
      semaim::kernels::set_permute_rows_prefault(false);
      at::Tensor yn;
      const double fwd_no_prefault =
          median_ms([&] { yn = semaim::kernels::permute_rows(patches, order, inverse, pos); }, repeats);
      semaim::kernels::set_permute_rows_prefault(true);
      const double fwd_unfused =
          median_ms([&] { yr = semaim::kernels::permute_rows(patches + pos, order, inverse); }, repeats);
      std::printf(
          "| permute_rows (+pos, forward), %s | %lld | %lld | %lld | float32 | %.2f | %.2f | %.2fx | %s |\n",
          layout, (long long)s.n, (long long)l, (long long)s.d, fwd_twin, fwd_ref, fwd_ref / fwd_twin,
          same_fwd ? "yes" : "NO");
      std::printf(
          "| permute_rows twin without the output prefault vs with it (forward), %s | %lld | %lld | %lld | "
          "float32 | %.2f | %.2f | %.2fx | %s |\n",
          layout, (long long)s.n, (long long)l, (long long)s.d, fwd_twin, fwd_no_prefault,
          fwd_no_prefault / fwd_twin, at::equal(yn, yf) ? "yes" : "NO");
      std::printf(
          "| permute_rows unfused (x+pos, then the op) vs fused, %s | %lld | %lld | %lld | float32 "
          "| %.2f | %.2f | %.2fx | %s |\n",
          layout, (long long)s.n, (long long)l, (long long)s.d, fwd_twin, fwd_unfused, fwd_unfused / fwd_twin,
          at::equal(yf, yr) ? "yes" : "NO");
      const double bwd_twin = median_ms(
          [&] {
            xf.mutable_grad() = at::Tensor();
            (semaim::kernels::permute_rows(view(xf), order, inverse, pos) * w).sum().backward();
          },
          repeats);
      const double bwd_ref = median_ms(
          [&] {
            xr.mutable_grad() = at::Tensor();
            (semaim::kernels::permute_rows_reference(view(xr) + pos, order) * w).sum().backward();
          },
          repeats);
      std::printf(
          "| permute_rows (+pos, forward+backward incl. the *w loss), %s | %lld | %lld | %lld | float32 "
          "| %.2f | %.2f | %.2fx | %s |\n",
          layout, (long long)s.n, (long long)l, (long long)s.d, bwd_twin, bwd_ref, bwd_ref / bwd_twin,
          at::equal(xf.grad(), xr.grad()) ? "yes" : "NO");
      // The backward alone: the gradient of x from a given output gradient, graphs kept between calls (ours:
      // the gather by the inverse; ATen's: index_select's backward, an index_add into zeros).
      const at::Tensor yfb = semaim::kernels::permute_rows(view(xf), order, inverse, pos);
      const at::Tensor yrb = semaim::kernels::permute_rows_reference(view(xr) + pos, order);
      at::Tensor gf, gr;
      const double bo_twin =
          median_ms([&] { gf = torch::autograd::grad({yfb}, {xf}, {w}, /*retain_graph=*/true)[0]; }, repeats);
      const double bo_ref =
          median_ms([&] { gr = torch::autograd::grad({yrb}, {xr}, {w}, /*retain_graph=*/true)[0]; }, repeats);
      std::printf(
          "| permute_rows (backward only), %s | %lld | %lld | %lld | float32 | %.2f | %.2f | %.2fx | %s |\n",
          layout, (long long)s.n, (long long)l, (long long)s.d, bo_twin, bo_ref, bo_ref / bo_twin,
          at::equal(gf, gr) ? "yes" : "NO");
    }
  }
  return 0;
}
