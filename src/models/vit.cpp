// ViT encoder (timm VisionTransformer names) and the MAE sin-cos table; SPEC §3 architecture and init.
#include "semaim/models/vit.h"

#include <ATen/ATen.h>
#include <torch/nn/init.h>

#include <cmath>
#include <string>

#include "semaim/config/errors.h"

namespace semaim::models {

void VitConfig::validate(const std::string& where) const {
  auto fail = [&](const std::string& key, const std::string& fault) {
    throw InputError(where + "." + key, fault);
  };
  if (patch_size <= 0) fail("patch_size", "must be positive, got " + std::to_string(patch_size));
  if (height() <= 0 || width() <= 0) fail("img_size", "must be positive");
  if (height() % patch_size != 0 || width() % patch_size != 0)
    fail("img_size", "image " + std::to_string(height()) + "x" + std::to_string(width()) +
                         " is not a multiple of patch_size " + std::to_string(patch_size));
  if (in_chans <= 0) fail("in_chans", "must be positive, got " + std::to_string(in_chans));
  if (depth <= 0) fail("depth", "must be positive, got " + std::to_string(depth));
  if (num_heads <= 0) fail("num_heads", "must be positive, got " + std::to_string(num_heads));
  // The sin-cos table splits the width into 4 equal parts (sin/cos x row/col).
  if (embed_dim <= 0 || embed_dim % 4 != 0)
    fail("embed_dim", "must be a positive multiple of 4, got " + std::to_string(embed_dim));
  if (embed_dim % num_heads != 0)
    fail("num_heads", "embed_dim " + std::to_string(embed_dim) + " is not divisible by num_heads " +
                          std::to_string(num_heads));
  if (!(mlp_ratio > 0.0) || mlp_hidden() <= 0) fail("mlp_ratio", "must be positive");
}

// -> (1, 1 + gh*gw, dim)
at::Tensor sincos_pos_embed_2d(int64_t dim, int64_t gh, int64_t gw, at::ScalarType dtype) {
  if (dim <= 0 || dim % 4 != 0) throw InputError("pos_embed", "dim must be a positive multiple of 4");
  if (gh <= 0 || gw <= 0) throw InputError("pos_embed", "grid must be positive");
  const auto f64 = at::TensorOptions().dtype(at::kDouble);
  const int64_t quarter = dim / 4;
  // omega_k = 10000^(-k / (dim/4))
  auto omega = at::pow(10000.0, -at::arange(quarter, f64) / static_cast<double>(quarter));
  auto rows = at::arange(gh, f64).repeat_interleave(gw);  // (L,) row index of patch j
  auto cols = at::arange(gw, f64).repeat({gh});           // (L,) col index of patch j
  auto half = [&](const at::Tensor& pos) {                // (L,) -> (L, dim/2)
    auto out = at::outer(pos, omega);
    return at::cat({at::sin(out), at::cos(out)}, 1);
  };
  auto table = at::cat({half(cols), half(rows)}, 1);  // (L, dim)
  table = at::cat({at::zeros({1, dim}, f64), table}, 0);
  return table.unsqueeze(0).to(dtype);
}

torch::nn::LayerNorm make_layer_norm(int64_t dim) {
  return torch::nn::LayerNorm(torch::nn::LayerNormOptions({dim}).eps(1e-6));
}

void init_linear_(torch::nn::Linear& lin) {
  torch::nn::init::xavier_uniform_(lin->weight);
  if (lin->bias.defined()) torch::nn::init::zeros_(lin->bias);
}

MlpImpl::MlpImpl(int64_t in, int64_t hidden, int64_t out) {
  fc1 = register_module("fc1", torch::nn::Linear(in, hidden));
  fc2 = register_module("fc2", torch::nn::Linear(hidden, out));
  init_linear_(fc1);
  init_linear_(fc2);
}

// x: (..., in) -> (..., out)
at::Tensor MlpImpl::forward(const at::Tensor& x) { return fc2(at::gelu(fc1(x))); }

AttentionImpl::AttentionImpl(int64_t dim, int64_t heads) : num_heads(heads) {
  qkv = register_module("qkv", torch::nn::Linear(torch::nn::LinearOptions(dim, 3 * dim).bias(true)));
  proj = register_module("proj", torch::nn::Linear(dim, dim));
  init_linear_(qkv);  // one (3D, D) matrix, as the reference initializes it
  init_linear_(proj);
}

// x: (N, T, D) -> (N, T, D)
at::Tensor AttentionImpl::forward(const at::Tensor& x, const std::optional<at::Tensor>& mask, bool causal) {
  const int64_t n = x.size(0), t = x.size(1), d = x.size(2);
  // (N, T, 3D) -> (3, N, heads, T, E) in one copy: contiguous q/k/v make the CPU flash backward ~10% faster
  // than strided views.
  auto qkv_t = qkv(x).view({n, t, 3, num_heads, d / num_heads}).permute({2, 0, 3, 1, 4}).contiguous();
  auto out = at::scaled_dot_product_attention(qkv_t[0], qkv_t[1], qkv_t[2], mask, 0.0, causal);
  return proj(out.transpose(1, 2).reshape({n, t, d}));
}

BlockImpl::BlockImpl(int64_t dim, int64_t heads, int64_t mlp_hidden) {
  norm1 = register_module("norm1", make_layer_norm(dim));
  attn = register_module("attn", Attention(dim, heads));
  norm2 = register_module("norm2", make_layer_norm(dim));
  mlp = register_module("mlp", Mlp(dim, mlp_hidden, dim));
}

// x: (N, T, D) -> (N, T, D)
at::Tensor BlockImpl::forward(const at::Tensor& x, const std::optional<at::Tensor>& mask, bool causal) {
  auto h = x + attn(norm1(x), mask, causal);
  return h + mlp(norm2(h));
}

PatchEmbedImpl::PatchEmbedImpl(int64_t in_chans, int64_t dim, int64_t patch) {
  proj = register_module("proj",
                         torch::nn::Conv2d(torch::nn::Conv2dOptions(in_chans, dim, patch).stride(patch)));
  // Xavier on the (D, C*p*p) view, like a Linear (MAE); the bias keeps the conv default.
  torch::NoGradGuard no_grad;
  torch::nn::init::xavier_uniform_(proj->weight.view({dim, -1}));
}

// imgs: (N, C, H, W) -> (N, L, D)
at::Tensor PatchEmbedImpl::forward(const at::Tensor& imgs) { return proj(imgs).flatten(2).transpose(1, 2); }

VitEncoderImpl::VitEncoderImpl(const VitConfig& cfg) : vit_cfg_(cfg) {
  cfg.validate();
  const int64_t d = cfg.embed_dim;
  // timm's registration order, so named_parameters() lists keys as timm's state_dict does.
  cls_token_ = register_parameter("cls_token", at::zeros({1, 1, d}));
  pos_embed_ = register_parameter("pos_embed", sincos_pos_embed_2d(d, cfg.grid_h(), cfg.grid_w()),
                                  /*requires_grad=*/false);
  patch_embed_ = register_module("patch_embed", PatchEmbed(cfg.in_chans, d, cfg.patch_size));
  blocks_list_ = register_module("blocks", torch::nn::ModuleList());
  for (int64_t i = 0; i < cfg.depth; ++i) {
    blocks_.emplace_back(d, cfg.num_heads, cfg.mlp_hidden());
    blocks_list_->push_back(blocks_.back());
  }
  norm_ = register_module("norm", make_layer_norm(d));
  torch::nn::init::normal_(cls_token_, 0.0, 0.02);
}

void VitEncoderImpl::check_images(const at::Tensor& imgs) const {
  const auto& c = vit_cfg_;
  if (imgs.dim() != 4 || imgs.size(1) != c.in_chans || imgs.size(2) != c.height() ||
      imgs.size(3) != c.width())
    throw InputError("model input", "expected images (N, " + std::to_string(c.in_chans) + ", " +
                                        std::to_string(c.height()) + ", " + std::to_string(c.width()) +
                                        "), got " + c10::str(imgs.sizes()));
}

// imgs: (N, C, H, W) -> (N, L, D)
at::Tensor VitEncoderImpl::embed_patches(const at::Tensor& imgs) {
  check_images(imgs);
  return patch_embed_(imgs) + pos_embed_.narrow(1, 1, vit_cfg_.num_patches());
}

// -> (1, 1, D)
at::Tensor VitEncoderImpl::cls_with_pos() const { return cls_token_ + pos_embed_.narrow(1, 0, 1); }

// imgs: (N, C, H, W) -> (N, L+1, D)
at::Tensor VitEncoderImpl::embed(const at::Tensor& imgs) {
  auto x = embed_patches(imgs);
  auto cls = cls_with_pos().expand({x.size(0), 1, x.size(2)}).to(x.scalar_type());
  return at::cat({cls, x}, 1);
}

// imgs: (N, C, H, W) -> (N, L+1, D)
at::Tensor VitEncoderImpl::forward_features(const at::Tensor& imgs) {
  auto h = embed(imgs);
  for (auto& blk : blocks_) h = blk(h);
  return norm_(h);
}

}  // namespace semaim::models
