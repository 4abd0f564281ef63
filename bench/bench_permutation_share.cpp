// The semantic permutation's share of a full pretraining step (method.md §6), at the Fashion-MNIST and
// ViT-B/16 sizes: one step split into its phases, each timed separately and repeated round-robin:
//   semantic pass   no-grad bidirectional encoder pass that produces the tokens (bf16 autocast if on)
//   permutation     ordering::make_order: the fused semantic_order op (CPU twin) -> order, inverse, ranks
//   permutation ATen  the same permutation by the ATen composition (semantic_order_reference), for comparison
//   train step      two-stream forward + backward under that permutation, clip, AdamW
// Share = permutation / (semantic pass + permutation + train step); the ATen row shows what it would be
// without the kernel.
//
// usage: bench_permutation_share [--repeats R] [--fmnist-batch B] [--vitb-batch B]
#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "semaim/config/config.h"
#include "semaim/core/errors.h"
#include "semaim/core/timing.h"
#include "semaim/engine/autocast.h"
#include "semaim/engine/optimizer.h"
#include "semaim/engine/settings.h"
#include "semaim/ordering/ordering.h"
#include "semaim/tasks/models.h"
#include "semaim/tasks/schema.h"

using namespace semaim;

namespace {

struct Size {
  std::string label;
  std::vector<std::string> sets;
};

void run_size(const Size& size, int64_t repeats) {
  auto cfg = config::Config::defaults(tasks::schema());
  cfg.apply_overrides({"pretrain.precision=fp32"});  // the table in docs/benchmarks.md is fp32
  cfg.apply_overrides(size.sets);
  const auto mcfg = tasks::aim_config(cfg);
  const auto ocfg = tasks::ordering_config(cfg);
  const auto tcfg = tasks::target_config(cfg);
  const int64_t batch = cfg.get_int("pretrain.batch_size");
  const bool bf16 = engine::TrainSettings::read(cfg, "pretrain").bf16;
  const auto& v = mcfg.vit;
  models::AimVit model = tasks::build_aim(cfg);
  model->train();
  engine::AdamW opt(engine::make_param_groups(tasks::trainable(*model), engine::GroupRule{}),
                    engine::AdamWOptions{0.9, 0.95, 1e-8});
  opt.set_lr(1e-4);
  const std::vector<at::Tensor> tensors = opt.parameters();
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(0);
  const at::Tensor imgs = at::randn({batch, v.in_chans, v.img_size, v.img_size});

  at::Tensor tokens;
  ordering::Ordering ord;
  auto pass = [&] {
    at::NoGradGuard ng;
    engine::AutocastGuard ac(at::kCPU, bf16);
    tokens = model->encode(imgs).to(at::kFloat);
  };
  auto permute = [&] {
    ord = ordering::make_order(ocfg, batch, v.grid_h(), v.grid_w(), tokens, gen, at::kCPU);
  };
  auto permute_aten = [&] {
    const at::Tensor noise =
        at::rand({batch, v.grid_h() * v.grid_w()}, gen, at::TensorOptions().dtype(at::kDouble));
    ordering::semantic_order_reference(tokens, v.grid_h(), v.grid_w(), ocfg.source, noise);
  };
  auto train_step = [&] {
    at::Tensor loss;
    {
      engine::AutocastGuard ac(at::kCPU, bf16);
      loss = model->forward_loss_ordered(imgs, ord.order, ord.inverse, tcfg);
    }
    loss.backward();
    engine::clip_grad_norm(tensors, 3.0);
    opt.step();
    opt.zero_grad();
  };
  for (int i = 0; i < 2; ++i) pass(), permute(), permute_aten(), train_step();  // warm-up
  std::vector<double> t_pass, t_perm, t_aten, t_train;
  for (int64_t r = 0; r < repeats; ++r) {
    t_pass.push_back(core::time_ms(pass));
    t_perm.push_back(core::time_ms(permute));
    t_aten.push_back(core::time_ms(permute_aten));
    t_train.push_back(core::time_ms(train_step));
  }
  const double p = core::median(t_pass), k = core::median(t_perm), a = core::median(t_aten),
               t = core::median(t_train);
  const double step = p + k + t, step_aten = p + a + t;
  std::printf("| %s | %lld | %.2f | %.3f | %.3f | %.2f | %.2f%% | %.2f%% |\n", size.label.c_str(),
              (long long)batch, p, k, a, t, 100.0 * k / step, 100.0 * a / step_aten);
}

}  // namespace

int main(int argc, char** argv) {
  try {
    int64_t repeats = 5;
    std::string fmnist_batch = "128", vitb_batch = "8";
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      auto next = [&]() -> std::string {
        if (i + 1 >= argc) throw InputError(a, "needs a value");
        return argv[++i];
      };
      if (a == "--repeats")
        repeats = std::max<int64_t>(1, std::stoll(next()));
      else if (a == "--fmnist-batch")
        fmnist_batch = next();
      else if (a == "--vitb-batch")
        vitb_batch = next();
      else if (a == "--help" || a == "-h") {
        std::cout << "usage: bench_permutation_share [--repeats R] [--fmnist-batch B] [--vitb-batch B]\n";
        return 0;
      } else
        throw InputError(a, "unknown option");
    }
    std::printf("threads: %d, median of %lld repeats, semantic ordering (cls), fp32\n\n",
                at::get_num_threads(), (long long)repeats);
    std::printf(
        "| size | batch | semantic pass ms | permutation ms (fused op) | permutation ms (ATen) | train step "
        "ms | "
        "share (fused) | share (ATen) |\n|---|---|---|---|---|---|---|---|\n");
    const std::vector<Size> sizes = {
        {"Fashion-MNIST aim_fmnist_patch4 28/4 (L=49, D=128)",
         {"model.name=aim_fmnist_patch4", "pretrain.batch_size=" + fmnist_batch,
          "ordering.strategy=semantic"}},
        {"ViT-B/16 aim_base_patch16 224/16 (L=196, D=768)",
         {"model.name=aim_base_patch16", "pretrain.batch_size=" + vitb_batch, "ordering.strategy=semantic"}},
    };
    for (const auto& s : sizes) run_size(s, repeats);
    return 0;
  } catch (const InputError& e) {
    std::cerr << "bench_permutation_share: error: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "bench_permutation_share: failed: " << e.what() << "\n";
    return 1;
  }
}
