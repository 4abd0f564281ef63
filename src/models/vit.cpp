// ViT encoder (timm VisionTransformer names, forward_intermediates, dynamic_img_size) and the MAE sin-cos
// table; method.md §3 architecture and init.
#include "semaim/models/vit.h"

#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>
#include <torch/nn/init.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "semaim/core/errors.h"
#include "semaim/models/recompute.h"

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
  if (!(drop_path_rate >= 0.0 && drop_path_rate < 1.0))
    fail("drop_path_rate", "must be in [0, 1), got " + std::to_string(drop_path_rate));
}

std::vector<int64_t> take_block_indices(int64_t depth, const BlockIndices& indices) {
  const std::string where = "forward_intermediates.indices";
  std::vector<int64_t> take;
  if (std::holds_alternative<std::monostate>(indices)) {
    for (int64_t i = 0; i < depth; ++i) take.push_back(i);
  } else if (const auto* last_n = std::get_if<int64_t>(&indices)) {
    if (*last_n <= 0 || *last_n > depth)
      throw InputError(where, "last-n " + std::to_string(*last_n) + " is out of range (1 to " +
                                  std::to_string(depth) + ")");
    for (int64_t i = depth - *last_n; i < depth; ++i) take.push_back(i);
  } else {
    const auto& list = std::get<std::vector<int64_t>>(indices);
    if (list.empty()) throw InputError(where, "the list of block indices is empty");
    for (int64_t i : list) {
      const int64_t idx = i < 0 ? depth + i : i;
      if (idx < 0 || idx >= depth)
        throw InputError(where, "block index " + std::to_string(i) + " is out of range for depth " +
                                    std::to_string(depth));
      take.push_back(idx);
    }
  }
  return take;
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
at::Tensor linear(const torch::nn::Linear& lin, const at::Tensor& x) { return at::linear(x, lin->weight, lin->bias); }

// x: (..., in) -> (..., out)
at::Tensor MlpImpl::forward(const at::Tensor& x) { return linear(fc2, at::gelu(linear(fc1, x))); }

// q: (N, h, Tq, E), k/v: (N, h, Tk, E) -> (N, h, Tq, E)
at::Tensor attention_matmul(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                            const std::optional<at::Tensor>& mask, bool causal) {
  const int64_t n = q.size(0), h = q.size(1), tq = q.size(2), tk = k.size(2), e = q.size(3);
  const double scale = 1.0 / std::sqrt(static_cast<double>(e));
  const float neg_inf = -std::numeric_limits<float>::infinity();
  // The scale (and a causal mask, as an additive bias) go into the GEMM itself: scores = bias + scale q k^T, with
  // no elementwise pass over the (Tq, Tk) scores forward or backward. beta = 0 leaves the bias unread.
  at::Tensor bias;
  if (causal)
    bias = at::zeros({tq, tk}, q.options()).masked_fill_(at::ones({tq, tk}, q.options().dtype(at::kBool)).triu(1),
                                                         neg_inf);
  else
    bias = at::zeros({1, 1, 1}, q.options());
  auto scores = at::baddbmm(bias, q.reshape({n * h, tq, e}), k.reshape({n * h, tk, e}).transpose(1, 2),
                            /*beta=*/causal ? 1.0 : 0.0, /*alpha=*/scale)
                    .view({n, h, tq, tk});
  if (mask) scores = scores.masked_fill(mask->logical_not(), neg_inf);
  // Softmax in the scores' dtype: ATen's CPU and CUDA kernels keep the row max and sum in fp32 for bf16 input.
  auto probs = scores.softmax(-1);
  return at::bmm(probs.view({n * h, tq, tk}), v.reshape({n * h, tk, e})).view({n, h, tq, e});
}

// q: (N, h, Tq, E), k/v: (N, h, Tk, E) -> (N, h, Tq, E)
at::Tensor attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                     const std::optional<at::Tensor>& mask, bool causal) {
  const bool cpu_bf16 = q.is_cpu() && at::autocast::is_autocast_enabled(at::kCPU) &&
                        at::autocast::get_autocast_dtype(at::kCPU) == at::kBFloat16;
  if (!cpu_bf16) return at::scaled_dot_product_attention(q, k, v, mask, 0.0, causal);
  return attention_matmul(q, k, v, mask, causal);
}

AttentionImpl::AttentionImpl(int64_t dim, int64_t heads) : num_heads(heads) {
  qkv = register_module("qkv", torch::nn::Linear(torch::nn::LinearOptions(dim, 3 * dim).bias(true)));
  proj = register_module("proj", torch::nn::Linear(dim, dim));
  init_linear_(qkv);  // one (3D, D) matrix, as the reference initializes it
  init_linear_(proj);
}

// x: (N, T, D) -> (N, T, D)
at::Tensor AttentionImpl::forward(const at::Tensor& x, const std::optional<at::Tensor>& mask, bool causal) {
  const int64_t n = x.size(0), t = x.size(1), d = x.size(2);
  // (N, T, 3D) -> (3, N, heads, T, E) in one copy: the CPU flash backward is faster on contiguous q/k/v than
  // on strided views.
  auto qkv_t = linear(qkv, x).view({n, t, 3, num_heads, d / num_heads}).permute({2, 0, 3, 1, 4}).contiguous();
  auto out = attention(qkv_t[0], qkv_t[1], qkv_t[2], mask, causal);
  return linear(proj, out.transpose(1, 2).reshape({n, t, d}));
}

BlockImpl::BlockImpl(int64_t dim, int64_t heads, int64_t mlp_hidden, double drop_rate)
    : drop_path_rate(drop_rate) {
  norm1 = register_module("norm1", make_layer_norm(dim));
  attn = register_module("attn", Attention(dim, heads));
  norm2 = register_module("norm2", make_layer_norm(dim));
  mlp = register_module("mlp", Mlp(dim, mlp_hidden, dim));
}

// x: (N, T, D) -> (N, T, D)
at::Tensor BlockImpl::forward(const at::Tensor& x, const std::optional<at::Tensor>& mask, bool causal) {
  if (recompute && recompute_applies(is_training(), {x}))
    return recompute_in_backward(
        [this, mask, causal](const std::vector<at::Tensor>& in) {
          return forward_block(in[0], mask, causal);
        },
        {x});
  return forward_block(x, mask, causal);
}

// x: (N, T, D) -> (N, T, D)
at::Tensor BlockImpl::forward_block(const at::Tensor& x, const std::optional<at::Tensor>& mask, bool causal) {
  // drop_path returns its input untouched at rate 0 or in eval: then this is the plain pre-norm block.
  auto h = x + drop_path(attn(norm1(x), mask, causal), drop_path_rate, is_training());
  return h + drop_path(mlp(norm2(h)), drop_path_rate, is_training());
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
                                  /*requires_grad=*/cfg.learnable_pos_embed);
  patch_embed_ = register_module("patch_embed", PatchEmbed(cfg.in_chans, d, cfg.patch_size));
  blocks_list_ = register_module("blocks", torch::nn::ModuleList());
  const std::vector<double> dpr = drop_path_rates(cfg.drop_path_rate, cfg.depth);
  for (int64_t i = 0; i < cfg.depth; ++i) {
    blocks_.emplace_back(d, cfg.num_heads, cfg.mlp_hidden(), dpr[static_cast<size_t>(i)]);
    blocks_list_->push_back(blocks_.back());
  }
  norm_ = register_module("norm", make_layer_norm(d));
  torch::nn::init::normal_(cls_token_, 0.0, 0.02);
}

void VitEncoderImpl::set_checkpoint_blocks(int64_t n) {
  if (n < 0) throw InputError("checkpoint_blocks", "must be >= 0, got " + std::to_string(n));
  checkpoint_blocks_ = n;
  for (int64_t i = 0; i < depth(); ++i) blocks_[static_cast<size_t>(i)]->recompute = i < n;
}

void VitEncoderImpl::check_images(const at::Tensor& imgs) const {
  const auto& c = vit_cfg_;
  if (imgs.dim() != 4 || imgs.size(1) != c.in_chans || imgs.size(2) != c.height() ||
      imgs.size(3) != c.width())
    throw InputError("model input", "expected images (N, " + std::to_string(c.in_chans) + ", " +
                                        std::to_string(c.height()) + ", " + std::to_string(c.width()) +
                                        "), got " + c10::str(imgs.sizes()));
}

Grid VitEncoderImpl::input_grid(const at::Tensor& imgs) const {
  const auto& c = vit_cfg_;
  if (!c.dynamic_img_size) {
    check_images(imgs);
    return c.grid();
  }
  const int64_t p = c.patch_size;
  if (imgs.dim() != 4 || imgs.size(1) != c.in_chans || imgs.size(2) < p || imgs.size(3) < p ||
      imgs.size(2) % p != 0 || imgs.size(3) % p != 0)
    throw InputError("model input", "expected images (N, " + std::to_string(c.in_chans) +
                                        ", H, W) with H and W positive multiples of patch_size " +
                                        std::to_string(p) + ", got " + c10::str(imgs.sizes()));
  return {imgs.size(2) / p, imgs.size(3) / p};
}

// -> (1, 1 + g.h*g.w, D)
at::Tensor VitEncoderImpl::pos_embed_for(Grid g) const {
  return resample_abs_pos_embed(pos_embed_, g, vit_cfg_.grid());
}

// imgs: (N, C, H, W) -> (N, L, D)
at::Tensor VitEncoderImpl::embed_patches(const at::Tensor& imgs) {
  const Grid g = input_grid(imgs);
  return patch_embed_(imgs) + pos_embed_for(g).narrow(1, 1, g.h * g.w);
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

// imgs: (N, C, H, W) -> features (N, L+1, D), intermediates (N, D, gh, gw) or (N, L, D) each
Intermediates VitEncoderImpl::forward_intermediates(const at::Tensor& imgs,
                                                    const IntermediatesOptions& opts) {
  const std::vector<int64_t> take = take_block_indices(depth(), opts.indices);
  const int64_t stop = opts.stop_early ? *std::max_element(take.begin(), take.end()) + 1 : depth();
  const Grid g = input_grid(imgs);
  Intermediates out;
  auto x = embed(imgs);
  for (int64_t i = 0; i < stop; ++i) {
    x = blocks_[static_cast<size_t>(i)](x);
    // As timm: one output per taken block, in block order, whatever order the indices came in.
    if (std::find(take.begin(), take.end(), i) != take.end())
      out.intermediates.push_back(opts.norm ? norm_(x) : x);
  }
  const int64_t n = x.size(0), d = x.size(2);
  for (auto& y : out.intermediates) {
    if (opts.return_prefix_tokens) out.prefix_tokens.push_back(y.narrow(1, 0, 1));
    y = y.narrow(1, 1, g.h * g.w);
    if (opts.output_fmt == FeatureFormat::kNCHW)
      y = y.reshape({n, g.h, g.w, d}).permute({0, 3, 1, 2}).contiguous();
  }
  if (!opts.intermediates_only) out.features = norm_(x);
  return out;
}

// x: (N, T, D) -> (N, heads, T, T)
at::Tensor AttentionImpl::probabilities(const at::Tensor& x) {
  const int64_t n = x.size(0), t = x.size(1), e = x.size(2) / num_heads;
  auto qkv_t = linear(qkv, x).view({n, t, 3, num_heads, e}).permute({2, 0, 3, 1, 4});
  auto scores = at::matmul(qkv_t[0], qkv_t[1].transpose(-2, -1)) * (1.0 / std::sqrt(static_cast<double>(e)));
  return at::softmax(scores, -1);
}

// imgs: (N, C, H, W) -> tokens (N, L+1, D), probabilities (N, heads, L+1, L+1)
std::pair<at::Tensor, at::Tensor> VitEncoderImpl::encode_with_attention(const at::Tensor& imgs) {
  auto h = embed(imgs);
  for (int64_t i = 0; i + 1 < depth(); ++i) h = blocks_[static_cast<size_t>(i)](h);
  Block& last = blocks_.back();
  at::Tensor probs = last->attn->probabilities(last->norm1(h));
  return {norm_(last(h)), probs};
}

}  // namespace semaim::models
