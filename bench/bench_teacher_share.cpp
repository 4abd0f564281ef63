// The frozen teacher's share of a pretraining step with teacher feature targets (method.md §7, the
// reference's predict_feature clip), at a small and the ViT-B/16 size. One step split into its phases, each
// timed separately and repeated round-robin:
//   teacher forward   no-grad CLIP image tower (open_clip layout, random weights) -> targets and the order's
//   tokens permutation       ordering::make_order (semantic) on the teacher's tokens train step two-stream
//   forward + feature loss (2 - 2 cos) + backward, clip, AdamW
// Share = teacher / (teacher + permutation + train step). The student's own semantic pass (what the teacher's
// tokens replace in the order) is timed too, for comparison.
//
// usage: bench_teacher_share [--repeats R] [--small-batch B] [--vitb-batch B]
#include <ATen/CPUGeneratorImpl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "semaim/config/config.h"
#include "semaim/core/errors.h"
#include "semaim/core/timing.h"
#include "semaim/engine/autocast.h"
#include "semaim/engine/optimizer.h"
#include "semaim/io/safetensors.h"
#include "semaim/models/teacher.h"
#include "semaim/ordering/ordering.h"
#include "semaim/tasks/models.h"
#include "semaim/tasks/schema.h"

using namespace semaim;

namespace {

struct ClipShape {
  int64_t in_chans, patch, grid, width, depth, proj;
};

struct Size {
  std::string label;
  std::vector<std::string> sets;
  ClipShape teacher;
};

// A random CLIP image tower in open_clip's key names, written to `path`.
void write_random_clip(const std::string& path, const ClipShape& s) {
  const int64_t d = s.width, h = 4 * d;
  auto rnd = [](std::vector<int64_t> shape) { return at::randn(shape) * 0.02; };
  io::NamedTensors w{{"visual.conv1.weight", rnd({d, s.in_chans, s.patch, s.patch})},
                     {"visual.class_embedding", rnd({d})},
                     {"visual.positional_embedding", rnd({1 + s.grid * s.grid, d})},
                     {"visual.ln_pre.weight", at::ones({d})},
                     {"visual.ln_pre.bias", at::zeros({d})},
                     {"visual.ln_post.weight", at::ones({d})},
                     {"visual.ln_post.bias", at::zeros({d})},
                     {"visual.proj", rnd({d, s.proj})}};
  for (int64_t i = 0; i < s.depth; ++i) {
    const std::string b = "visual.transformer.resblocks." + std::to_string(i) + ".";
    for (const char* ln : {"ln_1.", "ln_2."}) {
      w.emplace_back(b + ln + "weight", at::ones({d}));
      w.emplace_back(b + ln + "bias", at::zeros({d}));
    }
    w.emplace_back(b + "attn.in_proj_weight", rnd({3 * d, d}));
    w.emplace_back(b + "attn.in_proj_bias", at::zeros({3 * d}));
    w.emplace_back(b + "attn.out_proj.weight", rnd({d, d}));
    w.emplace_back(b + "attn.out_proj.bias", at::zeros({d}));
    w.emplace_back(b + "mlp.c_fc.weight", rnd({h, d}));
    w.emplace_back(b + "mlp.c_fc.bias", at::zeros({h}));
    w.emplace_back(b + "mlp.c_proj.weight", rnd({d, h}));
    w.emplace_back(b + "mlp.c_proj.bias", at::zeros({d}));
  }
  io::save_safetensors(path, w);
}

void run_size(const Size& size, int64_t repeats) {
  auto cfg = config::Config::defaults(tasks::schema());
  cfg.apply_overrides(size.sets);
  auto mcfg = tasks::aim_config(cfg);
  const auto ocfg = tasks::ordering_config(cfg);
  const int64_t batch = cfg.get_int("pretrain.batch_size");
  const auto& v = mcfg.vit;
  const std::string path = (std::filesystem::temp_directory_path() /
                            ("semaim_bench_teacher_" + std::to_string(getpid()) + ".safetensors"))
                               .string();
  at::manual_seed(0);
  write_random_clip(path, size.teacher);
  models::Teacher teacher(path, {}, v.grid());
  std::filesystem::remove(path);
  mcfg.target_dim = teacher.out_dim();
  at::manual_seed(0);
  models::AimVit model(mcfg);
  model->train();
  engine::AdamW opt(engine::make_param_groups(tasks::trainable(*model), engine::GroupRule{}),
                    engine::AdamWOptions{0.9, 0.95, 1e-8});
  opt.set_lr(1e-4);
  const std::vector<at::Tensor> tensors = opt.parameters();
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(0);
  const at::Tensor imgs = at::randn({batch, v.in_chans, v.img_size, v.img_size});

  at::Tensor targets;
  ordering::Ordering ord;
  auto teach = [&] { targets = teacher.forward(imgs).to(at::kFloat); };
  auto student_pass = [&] {
    at::NoGradGuard ng;
    model->encode(imgs);
  };
  auto permute = [&] {
    ord = ordering::make_order(ocfg, batch, v.grid_h(), v.grid_w(), targets, gen, at::kCPU);
  };
  auto train_step = [&] {
    model->forward_feature_loss_ordered(imgs, ord.order, ord.inverse, targets).backward();
    engine::clip_grad_norm(tensors, 3.0);
    opt.step();
    opt.zero_grad();
  };
  teach(), student_pass(), permute(), train_step();  // warm-up
  std::vector<double> t_teach, t_student, t_perm, t_train;
  for (int64_t r = 0; r < repeats; ++r) {
    t_teach.push_back(core::time_ms(teach));
    t_student.push_back(core::time_ms(student_pass));
    t_perm.push_back(core::time_ms(permute));
    t_train.push_back(core::time_ms(train_step));
  }
  const double te = core::median(t_teach), st = core::median(t_student), pe = core::median(t_perm),
               tr = core::median(t_train);
  const ClipShape& c = size.teacher;
  std::printf(
      "| %s | CLIP-style width %lld, depth %lld, patch %lld, proj %lld | %lld | %.1f | %.1f | %.2f | %.1f | "
      "%.1f%% |\n",
      size.label.c_str(), (long long)c.width, (long long)c.depth, (long long)c.patch, (long long)c.proj,
      (long long)batch, te, st, pe, tr, 100.0 * te / (te + pe + tr));
}

}  // namespace

int main(int argc, char** argv) {
  try {
    int64_t repeats = 3;
    std::string small_batch = "128", vitb_batch = "8";
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      auto next = [&]() -> std::string {
        if (i + 1 >= argc) throw InputError(a, "needs a value");
        return argv[++i];
      };
      if (a == "--repeats") {
        repeats = std::max<int64_t>(1, std::stoll(next()));
      } else if (a == "--small-batch") {
        small_batch = next();
      } else if (a == "--vitb-batch") {
        vitb_batch = next();
      } else if (a == "--help" || a == "-h") {
        std::cout << "usage: bench_teacher_share [--repeats R] [--small-batch B] [--vitb-batch B]\n";
        return 0;
      } else {
        throw InputError(a, "unknown option");
      }
    }
    std::printf("threads: %d, median of %lld repeats, semantic ordering from the teacher's tokens, fp32\n\n",
                at::get_num_threads(), (long long)repeats);
    std::printf(
        "| student | teacher | batch | teacher forward ms | student semantic pass ms (replaced) | "
        "permutation ms "
        "| train step ms | teacher share |\n|---|---|---|---|---|---|---|---|\n");
    const std::vector<Size> sizes = {
        {"aim_fmnist_patch4 28/4 (L=49, D=128)",
         {"model.name=aim_fmnist_patch4", "pretrain.batch_size=" + small_batch, "ordering.strategy=semantic"},
         {1, 4, 7, 128, 4, 64}},
        {"aim_base_patch16 224/16 (L=196, D=768)",
         {"model.name=aim_base_patch16", "pretrain.batch_size=" + vitb_batch, "ordering.strategy=semantic"},
         {3, 16, 14, 768, 12, 512}},  // CLIP ViT-B/16's image tower
    };
    for (const auto& s : sizes) run_size(s, repeats);
    return 0;
  } catch (const InputError& e) {
    std::cerr << "bench_teacher_share: error: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "bench_teacher_share: failed: " << e.what() << "\n";
    return 1;
  }
}
