// The sorted-causal fast form equals the reference dense masks (method.md §4), and both are autoregressive:
// a patch's prediction never depends on patches at or after it in the order.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <string>

#include "semaim/models/aim.h"
#include "semaim/models/targets.h"

namespace {

using semaim::models::AimConfig;
using semaim::models::AimVit;

AimConfig small_config(int64_t img_h, int64_t img_w, int64_t dim, int64_t heads, int64_t depth, int64_t dec,
                       const std::string& head) {
  AimConfig c;
  c.vit.img_size = img_h;
  c.vit.img_h = img_h;
  c.vit.img_w = img_w;
  c.vit.patch_size = 4;
  c.vit.in_chans = 3;
  c.vit.embed_dim = dim;
  c.vit.num_heads = heads;
  c.vit.depth = depth;
  c.decoder_depth = dec;
  c.head = head;
  return c;
}

double rel_err(const at::Tensor& got, const at::Tensor& want) {
  return (got - want).norm().item<double>() / want.norm().item<double>();
}

// Both attention forms of one config with identical parameters, perturbed so biases and LN affine count.
std::pair<AimVit, AimVit> twin_models(AimConfig cfg) {
  cfg.attention = "causal";
  AimVit fast(cfg);
  cfg.attention = "dense";
  AimVit dense(cfg);
  torch::NoGradGuard no_grad;
  auto src = fast->named_parameters();
  for (auto& p : src) {
    if (p.key() != "pos_embed") p.value().add_(at::randn_like(p.value()) * 0.05);
  }
  for (auto& p : dense->named_parameters()) p.value().copy_(src[p.key()]);
  return {fast, dense};
}

void expect_paths_equal(const AimConfig& cfg) {
  torch::manual_seed(7);
  auto [fast, dense] = twin_models(cfg);
  const int64_t n = 3, l = cfg.vit.num_patches();
  auto imgs = at::randn({n, 3, cfg.vit.height(), cfg.vit.width()});
  auto keys = at::rand({n, l});
  semaim::models::TargetConfig tcfg;
  auto loss_fast = fast->forward_loss(imgs, keys, tcfg);
  auto loss_dense = dense->forward_loss(imgs, keys, tcfg);
  loss_fast.backward();
  loss_dense.backward();
  {
    torch::NoGradGuard no_grad;
    auto pred_fast = fast->forward(imgs, keys), pred_dense = dense->forward(imgs, keys);
    ASSERT_EQ(pred_fast.sizes(), pred_dense.sizes());
    EXPECT_LE(rel_err(pred_fast, pred_dense), 1e-5);
  }
  EXPECT_LE(rel_err(loss_fast, loss_dense), 1e-5);
  auto dense_params = dense->named_parameters();
  int compared = 0;
  for (auto& p : fast->named_parameters()) {
    if (!p.value().requires_grad()) continue;
    SCOPED_TRACE(p.key());
    const auto& g_dense = dense_params[p.key()].grad();
    ASSERT_TRUE(p.value().grad().defined());
    ASSERT_TRUE(g_dense.defined());
    const std::string suffix = "attn.k.bias";
    if (p.key().ends_with(suffix)) {
      // Analytically zero (softmax ignores a per-query constant q.b_k): only rounding noise, in both forms,
      // measured against the key weight's gradient.
      const std::string weight = p.key().substr(0, p.key().size() - 4) + "weight";
      const double scale = dense_params[weight].grad().norm().item<double>();
      EXPECT_LE(p.value().grad().norm().item<double>(), 1e-5 * scale);
      EXPECT_LE(g_dense.norm().item<double>(), 1e-5 * scale);
    } else {
      EXPECT_LE(rel_err(p.value().grad(), g_dense), 1e-5);
    }
    ++compared;
  }
  EXPECT_EQ(compared, static_cast<int>(fast->parameters().size()) - 1);  // all but the frozen pos_embed
}

TEST(AimPaths, SortedCausalEqualsDenseMasksStep1) {
  expect_paths_equal(small_config(32, 32, 32, 4, 4, 4, "mlp"));
}

TEST(AimPaths, SortedCausalEqualsDenseMasksStep2NonSquareLinearHead) {
  expect_paths_equal(small_config(24, 32, 48, 3, 4, 2, "linear"));
}

TEST(AimPaths, SortedCausalEqualsDenseMasksStep3) {
  expect_paths_equal(small_config(16, 20, 32, 2, 6, 2, "mlp"));
}

TEST(AimPaths, ForwardOrderedEqualsForward) {
  torch::manual_seed(3);
  AimVit model(small_config(16, 16, 32, 4, 2, 2, "mlp"));
  auto imgs = at::randn({2, 3, 16, 16});
  auto keys = at::rand({2, 16});
  auto [order, inverse] = semaim::models::order_from_keys(keys);
  EXPECT_TRUE(at::equal(order, at::argsort(keys, true, 1)));
  EXPECT_TRUE(at::equal(order.gather(1, inverse), at::arange(16).expand({2, 16})));
  torch::NoGradGuard no_grad;
  EXPECT_TRUE(at::equal(model->forward(imgs, keys), model->forward_ordered(imgs, keys, order, inverse)));
}

// Perturb the patch at order position m: predictions at positions <= m must not move, position m+1 must.
void expect_autoregressive(const std::string& attention) {
  torch::manual_seed(11);
  AimConfig cfg = small_config(16, 24, 32, 4, 2, 2, "mlp");
  cfg.attention = attention;
  AimVit model(cfg);
  const int64_t l = cfg.vit.num_patches(), gw = cfg.vit.grid_w(), p = cfg.vit.patch_size;
  auto imgs = at::randn({1, 3, 16, 24});
  auto keys = at::rand({1, l});
  auto order = at::argsort(keys, true, 1)[0];
  torch::NoGradGuard no_grad;
  auto base = model->forward(imgs, keys)[0];
  for (int64_t m : {int64_t{0}, l / 2, l - 1}) {
    SCOPED_TRACE("order position " + std::to_string(m));
    const int64_t j = order[m].item<int64_t>();
    auto changed = imgs.clone();
    changed.narrow(2, (j / gw) * p, p).narrow(3, (j % gw) * p, p).add_(3.0);
    auto pred = model->forward(changed, keys)[0];
    for (int64_t k = 0; k < l; ++k) {
      const int64_t patch = order[k].item<int64_t>();
      const double diff = (pred[patch] - base[patch]).abs().max().item<double>();
      if (k <= m) {
        EXPECT_LE(diff, 1e-6) << "position " << k;
      } else if (k == m + 1) {
        EXPECT_GT(diff, 1e-4) << "position " << k;
      }
    }
  }
}

TEST(AimPaths, CausalPredictionIgnoresPatchesAtOrAfterIt) { expect_autoregressive("causal"); }
TEST(AimPaths, DensePredictionIgnoresPatchesAtOrAfterIt) { expect_autoregressive("dense"); }

// Mh: cls row sees only cls, every row sees cls, key_j <= key_i; Mg the same with strict <.
TEST(AimPaths, DenseMasksFollowReferenceRules) {
  auto keys = at::tensor({0.3, 0.1, 0.2}).view({1, 3});
  auto [mh, mg] = semaim::models::dense_masks(keys);
  ASSERT_EQ(mh.sizes(), (at::IntArrayRef{1, 1, 4, 4}));
  auto want_h = at::tensor({1, 0, 0, 0,   // cls
                            1, 1, 1, 1,   // key 0.3 sees all
                            1, 0, 1, 0,   // key 0.1 sees itself
                            1, 0, 1, 1})  // key 0.2 sees 0.1 and itself
                    .to(at::kBool)
                    .view({1, 1, 4, 4});
  auto want_g = at::tensor({1, 0, 0, 0,  //
                            1, 0, 1, 1,  //
                            1, 0, 0, 0,  //
                            1, 0, 1, 0})
                    .to(at::kBool)
                    .view({1, 1, 4, 4});
  EXPECT_TRUE(at::equal(mh, want_h));
  EXPECT_TRUE(at::equal(mg, want_g));
}

}  // namespace

namespace {

// The engine's entry point (a precomputed permutation) gives forward_loss's value and gradients in both
// attention forms.
TEST(AimPaths, ForwardLossOrderedEqualsForwardLoss) {
  for (const std::string attention : {"causal", "dense"}) {
    torch::manual_seed(5);
    AimConfig cfg = small_config(16, 16, 32, 4, 2, 2, "mlp");
    cfg.attention = attention;
    AimVit model(cfg);
    auto imgs = at::randn({3, 3, 16, 16});
    auto keys = at::argsort(at::rand({3, 16}), true, 1).argsort(/*stable=*/true, 1).to(at::kFloat);
    auto [order, inverse] = semaim::models::order_from_keys(keys);
    semaim::models::TargetConfig tcfg;
    auto a = model->forward_loss(imgs, keys, tcfg);
    const at::Tensor w = model->named_parameters()["patch_embed.proj.weight"];
    auto ga = torch::autograd::grad({a}, {w});
    auto b = model->forward_loss_ordered(imgs, order, inverse, tcfg);
    auto gb = torch::autograd::grad({b}, {w});
    EXPECT_TRUE(at::equal(a, b)) << attention;
    EXPECT_TRUE(at::equal(ga[0], gb[0])) << attention;
  }
}

}  // namespace
