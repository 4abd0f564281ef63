// Attention on the CPU (issue 20 item 3): ATen's scaled_dot_product_attention against semaim's matmul form
// (models::attention_matmul: q k^T, fp32 softmax, @ v) in one run, same inputs, at the attention shapes of
// the pretraining step's three profiled sizes. Per size four uses: the content stream's sorted-causal
// self-attention (T = L+1) and the query stream's causal cross-attention (Tq = Tk = L), each forward +
// backward (gradients of q, k and v), and the semantic pass's bidirectional self-attention, forward under
// no-grad; plus the checked agreement of the two outputs. fp32 inputs run without autocast; bf16 inputs
// (what the bf16 Linears hand attention) run under CPU bf16 autocast, as in training.
//
// usage: bench_attention [--repeats R] [--precision fp32,bf16] [--sizes fmnist,small,vits]
// Prints a Markdown table: median ms over R alternated runs (after 2 warm-ups each) of SDPA and of the
// matmul form, and SDPA / matmul (> 1: the matmul form is faster); and each form's rate in dense-equivalent
// TFLOP/s (4 N H Tq Tk E per forward, 3x that forward + backward, causal or not) against a GEMM of this
// machine in the same precision, measured in the same run.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>

#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include <torch/csrc/autograd/autograd.h>

#include "bench_common.h"
#include "step_profile.h"
#include "semaim/core/timing.h"
#include "semaim/engine/autocast.h"
#include "semaim/models/vit.h"

namespace {

struct Shape {
  std::string name;
  int64_t n, heads, l, e;  // batch, heads, patches, head dim
};

const std::vector<Shape> kShapes = {
    {"fmnist", 128, 4, 49, 32},  // 28 px, patch 4, D 128, 4 heads, batch 128
    {"small", 64, 3, 196, 64},   // 56 px, patch 4, D 192, 3 heads, batch 64
    {"vits", 16, 6, 196, 64},    // 224 px, patch 16, D 384, 6 heads, batch 16
};

struct Use {
  std::string name;
  int64_t tq_extra, tk_extra;  // Tq = L + tq_extra, Tk = L + tk_extra
  bool causal, backward;
};

const std::vector<Use> kUses = {
    {"content self-attn, causal, fwd+bwd", 1, 1, true, true},
    {"query cross-attn, causal, fwd+bwd", 0, 0, true, true},
    {"semantic pass self-attn, no-grad fwd", 1, 1, false, false},
};

using AttnFn = at::Tensor (*)(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                              const std::optional<at::Tensor>&, bool);

at::Tensor sdpa(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const std::optional<at::Tensor>& m,
                bool causal) {
  return at::scaled_dot_product_attention(q, k, v, m, 0.0, causal);
}

// One timed call: forward (and backward with a fixed upstream gradient) of `fn` on leaves q, k, v.
std::function<void()> step(AttnFn fn, const Use& use, at::Tensor q, at::Tensor k, at::Tensor v,
                           const at::Tensor& grad, bool bf16) {
  return [=]() mutable {
    semaim::engine::AutocastGuard autocast(at::kCPU, bf16);
    if (!use.backward) {
      at::NoGradGuard no_grad;
      (void)fn(q, k, v, std::nullopt, use.causal);
      return;
    }
    for (auto* t : {&q, &k, &v}) t->mutable_grad() = at::Tensor();
    auto out = fn(q, k, v, std::nullopt, use.causal);
    torch::autograd::backward({out}, {grad.to(out.scalar_type())});
  };
}

}  // namespace

int main(int argc, char** argv) {
  return semaim::bench::run_main("bench_attention", [&] {
    int64_t repeats = 7;
    std::vector<std::string> precisions = {"fp32", "bf16"};
    std::string sizes = "fmnist,small,vits";
    semaim::bench::parse_options(argc, argv,
                                 {{"--repeats", &repeats},
                                  {"--precision", semaim::bench::precision_list(&precisions)},
                                  {"--sizes", &sizes}},
                                 nullptr,
                                 "usage: bench_attention [--repeats R] [--precision fp32,bf16] "
                                 "[--sizes fmnist,small,vits]");
    std::printf("threads: %d, repeats: %lld\n", at::get_num_threads(), static_cast<long long>(repeats));
    const double peak_fp32 = ::bench::gemm_peak_tflops(at::kFloat),
                 peak_bf16 = ::bench::gemm_peak_tflops(at::kBFloat16);
    std::printf("GEMM peak, measured now: %.3f TFLOP/s fp32, %.3f TFLOP/s bf16\n\n", peak_fp32, peak_bf16);
    std::printf("| size (N, heads, L, E) | use | precision | SDPA ms | matmul ms | SDPA / matmul | SDPA TFLOP/s (of "
                "peak) | matmul TFLOP/s (of peak) | max |diff| |\n");
    std::printf("|---|---|---|---|---|---|---|---|---|\n");
    int ran = 0;
    for (const auto& s : kShapes) {
      if (("," + sizes + ",").find("," + s.name + ",") == std::string::npos) continue;
      ++ran;
      for (const auto& use : kUses) {
        for (const auto& p : precisions) {
          const bool bf16 = p == "bf16";
          auto gen = at::make_generator<at::CPUGeneratorImpl>(7);
          const auto opts = at::TensorOptions().dtype(bf16 ? at::kBFloat16 : at::kFloat);
          const int64_t tq = s.l + use.tq_extra, tk = s.l + use.tk_extra;
          auto leaf = [&](int64_t t) {
            return at::randn({s.n, s.heads, t, s.e}, gen, at::kFloat).to(opts).requires_grad_(use.backward);
          };
          at::Tensor q = leaf(tq), k = leaf(tk), v = leaf(tk);
          const at::Tensor grad = at::randn({s.n, s.heads, tq, s.e}, gen, at::kFloat);
          double diff = 0;
          {
            at::NoGradGuard no_grad;
            semaim::engine::AutocastGuard autocast(at::kCPU, bf16);
            diff = (sdpa(q, k, v, std::nullopt, use.causal).to(at::kFloat) -
                    semaim::models::attention_matmul(q, k, v, std::nullopt, use.causal).to(at::kFloat))
                       .abs()
                       .max()
                       .item<double>();
          }
          const auto [t_sdpa, t_mm] = semaim::core::paired_median_ms(
              step(&sdpa, use, q, k, v, grad, bf16),
              step(&semaim::models::attention_matmul, use, q, k, v, grad, bf16), static_cast<int>(repeats));
          const double flops = 4.0 * static_cast<double>(s.n * s.heads * tq * tk * s.e) * (use.backward ? 3 : 1);
          const double peak = bf16 ? peak_bf16 : peak_fp32;
          auto rate = [&](double ms) {
            const double tf = flops / (ms * 1e-3) / 1e12;
            char buf[48];
            std::snprintf(buf, sizeof(buf), "%.3f (%.0f%%)", tf, 100 * tf / peak);
            return std::string(buf);
          };
          std::printf("| %s (%lld, %lld, %lld, %lld) | %s | %s | %.2f | %.2f | %.2f | %s | %s | %.1e |\n",
                      s.name.c_str(), static_cast<long long>(s.n), static_cast<long long>(s.heads),
                      static_cast<long long>(s.l), static_cast<long long>(s.e), use.name.c_str(), p.c_str(), t_sdpa,
                      t_mm, t_sdpa / t_mm, rate(t_sdpa).c_str(), rate(t_mm).c_str(), diff);
          std::fflush(stdout);
        }
      }
    }
    if (ran == 0) throw semaim::InputError("--sizes", "names none of fmnist, small, vits: '" + sizes + "'");
    return 0;
  });
}
