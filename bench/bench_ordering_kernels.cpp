// Ordering-kernel benchmark (method.md §5-6): each fused op's CPU twin against its ATen reference
// composition (src/ordering *_reference) in one run, same inputs, checking the outputs agree.
//
// usage: bench_ordering_kernels [--repeats R] [--only OP[,OP...]]
//   --only runs just the named ops (semantic_order, order_from_keys, parts_order, permute_rows, roi_align,
//   nms).
// Prints a Markdown table: median wall time over R runs (after a warm-up) of the twin and the reference,
// and reference/twin, for N=256, L=196 (14x14), D=768 and N=64, L=1024 (32x32), D=1024, fp32 and bf16 tokens.
// permute_rows has rows for each of the model's uses (the patch tokens in both layouts, the position queries
// from the shared table, plain gathers), forward and backward, and one for the fused add against adding
// first. The detection ops (kernels/roi_align, kernels/nms) follow: roi_align forward+backward at ViTDet's
// sizes (512 rois, 256 channels, 7x7 from a 64x64 map) and nms on 2000 boxes, against their ATen references;
// their CUDA rows print only with a device.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include <torch/csrc/autograd/autograd.h>
#include <torch/cuda.h>

#include "kernels/nms/nms.h"
#include "kernels/ops.h"
#include "kernels/permute_rows/permute_rows.h"
#include "kernels/roi_align/roi_align.h"
#include "semaim/core/timing.h"
#include "semaim/ordering/kernels.h"
#include "semaim/ordering/ordering.h"

namespace {

struct Size {
  int64_t n, gh, gw, d;
};

// ViTDet's RoI pooling: 512 rois over two images' 64x64 maps of 256 channels (stride 16, 1024 px), 7x7 bins,
// adaptive sampling, aligned. -> input (2, 256, 64, 64), rois (512, 5)
std::pair<at::Tensor, at::Tensor> vitdet_rois(const at::Device& device) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(2);
  const auto opts = at::TensorOptions().dtype(at::kFloat);
  const at::Tensor input = at::randn({2, 256, 64, 64}, gen, opts);
  const at::Tensor xy = at::rand({512, 2}, gen, opts) * 900, wh = at::rand({512, 2}, gen, opts) * 300 + 8;
  const at::Tensor b = at::randint(0, 2, {512, 1}, gen, opts);
  const at::Tensor rois = at::cat({b, xy, (xy + wh).clamp_max(1024)}, 1);
  return {input.to(device), rois.to(device)};
}

// RPN-like boxes for nms: 2000 boxes, many overlapping. -> boxes (2000, 4), scores (2000)
std::pair<at::Tensor, at::Tensor> nms_boxes(const at::Device& device) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(3);
  const auto opts = at::TensorOptions().dtype(at::kFloat);
  const at::Tensor xy = at::rand({2000, 2}, gen, opts) * 800, wh = at::rand({2000, 2}, gen, opts) * 200 + 4;
  return {at::cat({xy, xy + wh}, 1).to(device), at::rand({2000}, gen, opts).to(device)};
}

// The detection ops' rows: the twin (or the CUDA kernel) against the ATen reference on the CPU.
void detection_rows(const at::Device& device, int repeats, bool roi, bool nms) {
  const bool cuda = device.is_cuda();
  const char* backend = cuda ? "CUDA" : "CPU";
  const auto sync = [&] {
    if (cuda) torch::cuda::synchronize();
  };
  if (roi) {
    const auto [input, rois] = vitdet_rois(device);
    const at::Tensor w = at::randn({512, 256, 7, 7}).to(device);
    at::Tensor a = input.clone().requires_grad_(), b = input.cpu().requires_grad_();
    const auto [twin, refm] = semaim::core::paired_median_ms(
        [&] {
          a.mutable_grad() = at::Tensor();
          (semaim::kernels::roi_align(a, rois, 1.0 / 16, 7, 7, 0, true) * w).sum().backward();
          sync();
        },
        [&] {
          b.mutable_grad() = at::Tensor();
          (semaim::kernels::roi_align_reference(b, rois.cpu(), 1.0 / 16, 7, 7, 0, true) * w.cpu())
              .sum()
              .backward();
        },
        repeats);
    std::printf(
        "| roi_align %s (forward+backward, 512 rois, 7x7, adaptive) | 2 | 4096 | 256 | float32 | %.2f | "
        "%.2f | %.2fx | %s |\n",
        backend, twin, refm, refm / twin, at::allclose(a.grad().cpu(), b.grad(), 0, 1e-4) ? "yes" : "NO");
  }
  if (nms) {
    const auto [boxes, scores] = nms_boxes(device);
    at::Tensor kf, kr;
    const auto [twin, refm] = semaim::core::paired_median_ms(
        [&] {
          kf = semaim::kernels::nms(boxes, scores, 0.7);
          sync();
        },
        [&] { kr = semaim::kernels::nms_reference(boxes.cpu(), scores.cpu(), 0.7); }, repeats);
    std::printf("| nms %s (2000 boxes, IoU 0.7) | - | 2000 | - | float32 | %.2f | %.2f | %.2fx | %s |\n",
                backend, twin, refm, refm / twin, at::equal(kf.cpu(), kr) ? "yes" : "NO");
  }
}

}  // namespace

int main(int argc, char** argv) {
  using semaim::core::median;
  using semaim::core::median_ms;
  using semaim::core::paired_median_ms;
  int repeats = 3;
  std::string only;
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::string(argv[i]) == "--repeats") repeats = std::max(1, std::atoi(argv[i + 1]));
    if (std::string(argv[i]) == "--only") only.append(",").append(argv[i + 1]).append(",");
  }
  const auto runs = [&](const char* op) {
    return only.empty() || only.find(std::string(",").append(op).append(",")) != std::string::npos;
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
      // Sides interleaved: the reference's (N, L+1, D) intermediates draw on fresh memory like the twin's.
      const auto [twin, refm] = paired_median_ms(
          [&] { fused = semaim::ordering::semantic_order(tokens, s.gh, s.gw, "cls", noise); },
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
    // rank / L (stochastic_keys).
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
      const double twin = median(tw), refm = median(rf);
      std::printf("| order_from_keys | %lld | %lld | - | %s | %.3f | %.3f | %.2fx | %s |\n", (long long)s.n,
                  (long long)l, what, twin, refm, refm / twin,
                  at::equal(fp.order, rp.order) && at::equal(fp.inverse, rp.inverse) ? "yes" : "NO");
    }
    // parts (k = 4, 5 iterations, the config defaults), fp32 only: its reference loops over D and L in ATen.
    if (runs("parts_order")) {
      at::Tensor pinv, pref;
      // Sides interleaved like semantic_order's; one timed round after the two warm-up rounds (the reference
      // takes seconds).
      const auto [ptwin, pref_ms] = paired_median_ms(
          [&] { pinv = std::get<1>(semaim::ordering::parts_order(tokens32, s.gh, s.gw, 4, 5, noise)); },
          [&] { pref = semaim::ordering::parts_keys(tokens32, s.gh, s.gw, 4, 5, noise); }, 1);
      std::printf(
          "| parts_order (k=4, 5 iters) | %lld | %lld | %lld | float32 | %.2f | %.2f | %.2fx | %s |\n",
          (long long)s.n, (long long)l, (long long)s.d, ptwin, pref_ms, pref_ms / ptwin,
          at::equal(pinv, pref.to(at::kLong)) ? "yes" : "NO");
    }
    if (!runs("permute_rows")) continue;
    // permute_rows: the sorted-form gather of patch tokens with the fused position-embedding add, forward
    // and backward, against the ATen form the model used before (x + pos, then index_select of the rows).
    // Two layouts of the tokens: contiguous (N, L, D), and the patch embedding's output as the model hands
    // it over, the convolution's (N, D, L) seen as (N, L, D) through flatten(2).transpose(1, 2). Every row
    // times its two sides interleaved (paired_median_ms), so both see the same state of the machine's memory.
    const auto [order, inverse] = semaim::ordering::order_from_keys(noise);
    const at::Tensor pos = at::randn({l, s.d}, gen, at::TensorOptions());
    const at::Tensor w = at::randn({s.n, l, s.d}, gen, at::TensorOptions());
    // Times the pair, then prints its row; equal() compares the two sides' outputs after the timing.
    const auto row = [&](const std::string& what, const std::function<void()>& a,
                         const std::function<void()>& b, const std::function<bool()>& equal) {
      const auto ms = paired_median_ms(a, b, repeats);
      std::printf("| permute_rows %s | %lld | %lld | %lld | float32 | %.2f | %.2f | %.2fx | %s |\n",
                  what.c_str(), (long long)s.n, (long long)l, (long long)s.d, ms.first, ms.second,
                  ms.second / ms.first, equal() ? "yes" : "NO");
    };
    {
      // The position queries: a plain gather from the shared (L, D) table, whose gradient is the sum over the
      // images (ours: the fused gather-sum by the inverse; ATen's: index_select's backward, an index_add into
      // zeros).
      at::Tensor tf = pos.clone().requires_grad_(), tr = pos.clone().requires_grad_();
      at::Tensor qf, qr;
      row(
          "(shared table, plain gather, forward), position queries",
          [&] { qf = semaim::kernels::permute_rows(tf, order, inverse); },
          [&] { qr = semaim::kernels::permute_rows_reference(tr, order); },
          [&] { return at::equal(qf, qr); });
      const at::Tensor yqf = semaim::kernels::permute_rows(tf, order, inverse);
      const at::Tensor yqr = semaim::kernels::permute_rows_reference(tr, order);
      row(
          "(shared table, backward only), position queries",
          [&] { qf = torch::autograd::grad({yqf}, {tf}, {w}, /*retain_graph=*/true)[0]; },
          [&] { qr = torch::autograd::grad({yqr}, {tr}, {w}, /*retain_graph=*/true)[0]; },
          [&] { return at::equal(qf, qr); });
    }
    for (const bool token_major : {false, true}) {
      const std::string layout = token_major ? "patch-embedding layout" : "contiguous";
      // The leaf holds the memory; view() is what the op and the reference see.
      const at::Tensor leaf = token_major ? tokens32.narrow(1, 1, l).transpose(1, 2).contiguous()
                                          : tokens32.narrow(1, 1, l).contiguous();
      const auto view = [&](const at::Tensor& t) { return token_major ? t.transpose(1, 2) : t; };
      const at::Tensor patches = view(leaf);
      at::Tensor yf, yr;
      const auto same = [&] { return at::equal(yf, yr); };
      const auto twin = [&] { yf = semaim::kernels::permute_rows(patches, order, inverse, pos); };
      row(
          "(+pos, forward), " + layout, twin,
          [&] { yr = semaim::kernels::permute_rows_reference(patches + pos, order); }, same);
      if (!token_major) {
        // A plain gather, as in the model's other two calls (the predictions back to natural order, the
        // position queries from the shared table): the op without add against index_select alone.
        row(
            "(plain gather, forward), " + layout,
            [&] { yf = semaim::kernels::permute_rows(patches, order, inverse); },
            [&] { yr = semaim::kernels::permute_rows_reference(patches, order); }, same);
      }
      row(
          "unfused (x+pos, then the op) vs fused, " + layout, twin,
          [&] { yr = semaim::kernels::permute_rows(patches + pos, order, inverse); }, same);
      at::Tensor xf = leaf.clone().requires_grad_(), xr = leaf.clone().requires_grad_();
      row(
          "(+pos, forward+backward incl. the *w loss), " + layout,
          [&] {
            xf.mutable_grad() = at::Tensor();
            (semaim::kernels::permute_rows(view(xf), order, inverse, pos) * w).sum().backward();
          },
          [&] {
            xr.mutable_grad() = at::Tensor();
            (semaim::kernels::permute_rows_reference(view(xr) + pos, order) * w).sum().backward();
          },
          [&] { return at::equal(xf.grad(), xr.grad()); });
      // The backward alone: the gradient of x from a given output gradient, graphs kept between calls (ours:
      // the gather by the inverse; ATen's: index_select's backward, an index_add into zeros).
      const at::Tensor yfb = semaim::kernels::permute_rows(view(xf), order, inverse, pos);
      const at::Tensor yrb = semaim::kernels::permute_rows_reference(view(xr) + pos, order);
      at::Tensor gf, gr;
      row(
          "(backward only), " + layout,
          [&] { gf = torch::autograd::grad({yfb}, {xf}, {w}, /*retain_graph=*/true)[0]; },
          [&] { gr = torch::autograd::grad({yrb}, {xr}, {w}, /*retain_graph=*/true)[0]; },
          [&] { return at::equal(gf, gr); });
      if (!token_major) continue;
      // The patch embedding's convolution needs the gradient in its own (N, D, L) layout and copies any other
      // (contiguous() here, as its backward does). The twin hands it back in that layout
      // (kernels/permute_rows.h).
      const auto conv_layout = [](const at::Tensor& g) { return g.contiguous(); };
      at::Tensor cf, cr;
      row(
          "(backward only, gradient then in the convolution's layout), " + layout,
          [&] { cf = conv_layout(torch::autograd::grad({yfb}, {xf}, {w}, /*retain_graph=*/true)[0]); },
          [&] { cr = conv_layout(torch::autograd::grad({yrb}, {xr}, {w}, /*retain_graph=*/true)[0]); },
          [&] { return at::equal(cf, cr); });
    }
  }
  // The detection ops (issue 18): the CPU twins, and the CUDA kernels when a device is present.
  if (runs("roi_align") || runs("nms")) {
    detection_rows(at::Device(at::kCPU), repeats, runs("roi_align"), runs("nms"));
    if (torch::cuda::is_available() && semaim::kernels::cuda_ops_built())
      detection_rows(at::Device(at::kCUDA), repeats, runs("roi_align"), runs("nms"));
    else
      std::printf("\n(roi_align / nms CUDA rows skipped: %s)\n",
                  torch::cuda::is_available() ? "built without the CUDA kernels" : "no CUDA device");
  }
  return 0;
}
