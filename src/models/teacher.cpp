// A frozen ViT teacher for feature targets (method.md §7): the reference's forward_features_clip (OpenAI
// CLIP VisionTransformer: conv1, class_embedding, positional_embedding, ln_pre, resblocks, ln_post on every
// token, then @ proj) and forward_features_dino (timm ViT: every token after the final norm).
#include "semaim/models/teacher.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/grad_mode.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "semaim/core/errors.h"
#include "semaim/core/log.h"
#include "semaim/models/pretrained.h"
#include "semaim/models/weights.h"

namespace semaim::models {
namespace {

constexpr double kClipLnEps = 1e-5;  // open_clip / OpenAI CLIP LayerNorm: torch's default eps
const std::string kVisual = "visual.";

std::string expand_home(const std::string& path) {
  if (path.rfind("~/", 0) != 0) return path;
  const char* home = std::getenv("HOME");
  return home ? std::string(home) + path.substr(1) : path;
}

// Blocks under `prefix` ("blocks." -> blocks.0., blocks.1., ...): one more than the highest index present.
int64_t count_blocks(const std::map<std::string, at::Tensor>& w, const std::string& prefix) {
  int64_t n = 0;
  for (const auto& [k, t] : w)
    if (k.rfind(prefix, 0) == 0) n = std::max<int64_t>(n, std::atoll(k.c_str() + prefix.size()) + 1);
  return n;
}

void check_option(const std::string& path, const std::string& name, int64_t option, int64_t got,
                  const std::string& key) {
  if (option > 0 && option != got)
    throw InputError(path, "target.teacher_" + name + " is " + std::to_string(option) + " but the file's " +
                               name + " is " + std::to_string(got) + " (from '" + key + "')");
}

int64_t heads_for(const std::string& path, const TeacherOptions& opts, int64_t width) {
  const int64_t heads = opts.heads > 0 ? opts.heads : std::max<int64_t>(width / 64, 1);
  if (width % heads != 0)
    throw InputError(path, "the width " + std::to_string(width) + " is not a multiple of " +
                               std::to_string(heads) + " heads (set target.teacher_heads)");
  return heads;
}

// The square grid of a position table with one prefix row. rows = 1 + g*g.
Grid square_grid(const std::string& path, const std::string& key, int64_t rows) {
  const auto g = static_cast<int64_t>(std::llround(std::sqrt(static_cast<double>(rows - 1))));
  if (rows < 2 || g * g != rows - 1)
    throw InputError(path, "'" + key + "' has " + std::to_string(rows) + " rows, not 1 + a square grid");
  return {g, g};
}

// The image tower's tensors under open_clip's names, `visual.` stripped, in float32; every key checked.
std::map<std::string, at::Tensor> clip_tensors(const std::string& path,
                                               const std::map<std::string, at::Tensor>& all,
                                               const TeacherOptions& opts, TeacherArch& a) {
  std::map<std::string, at::Tensor> w;
  for (const auto& [k, t] : all)
    if (k.rfind(kVisual, 0) == 0) w.emplace(k.substr(kVisual.size()), t.to(at::kFloat));
  const at::Tensor& conv = w.at("conv1.weight");
  if (conv.dim() != 4 || conv.size(2) != conv.size(3))
    throw InputError(path, "'visual.conv1.weight' must be (width, C, p, p), got " + c10::str(conv.sizes()));
  a.width = conv.size(0), a.in_chans = conv.size(1), a.patch_size = conv.size(2);
  a.depth = count_blocks(w, "transformer.resblocks.");
  check_option(path, "width", opts.width, a.width, "visual.conv1.weight");
  check_option(path, "depth", opts.depth, a.depth, "visual.transformer.resblocks.*");
  if (a.depth == 0) throw InputError(path, "has no 'visual.transformer.resblocks.0.*' keys");
  a.heads = heads_for(path, opts, a.width);
  const std::string fc = "transformer.resblocks.0.mlp.c_fc.weight";
  a.mlp_hidden = w.count(fc) ? w.at(fc).size(0) : 0;
  a.out_dim = w.count("proj") ? w.at("proj").size(1) : a.width;
  if (!w.count("positional_embedding")) throw InputError(path, "has no 'visual.positional_embedding'");
  a.grid = square_grid(path, "visual.positional_embedding", w.at("positional_embedding").size(0));

  const int64_t d = a.width, h = a.mlp_hidden;
  std::vector<std::pair<std::string, std::vector<int64_t>>> want{
      {"conv1.weight", {d, a.in_chans, a.patch_size, a.patch_size}},
      {"class_embedding", {d}},
      {"positional_embedding", {1 + a.grid.h * a.grid.w, d}},
      {"ln_pre.weight", {d}},
      {"ln_pre.bias", {d}},
      {"ln_post.weight", {d}},
      {"ln_post.bias", {d}}};
  if (w.count("proj")) want.push_back({"proj", {d, a.out_dim}});
  for (int64_t i = 0; i < a.depth; ++i) {
    const std::string b = "transformer.resblocks." + std::to_string(i) + ".";
    for (const char* ln : {"ln_1.", "ln_2."}) {
      want.push_back({b + ln + "weight", {d}});
      want.push_back({b + ln + "bias", {d}});
    }
    want.push_back({b + "attn.in_proj_weight", {3 * d, d}});
    want.push_back({b + "attn.in_proj_bias", {3 * d}});
    want.push_back({b + "attn.out_proj.weight", {d, d}});
    want.push_back({b + "attn.out_proj.bias", {d}});
    want.push_back({b + "mlp.c_fc.weight", {h, d}});
    want.push_back({b + "mlp.c_fc.bias", {h}});
    want.push_back({b + "mlp.c_proj.weight", {d, h}});
    want.push_back({b + "mlp.c_proj.bias", {d}});
  }
  std::set<std::string> known;
  for (const auto& [k, shape] : want) {
    known.insert(k);
    if (!w.count(k)) throw InputError(path, "missing key 'visual." + k + "' of a CLIP image tower");
    if (w.at(k).sizes() != at::IntArrayRef(shape))
      throw InputError(path, "'visual." + k + "' has shape " + c10::str(w.at(k).sizes()) + ", expected " +
                                 c10::str(at::IntArrayRef(shape)) + " (width " + std::to_string(d) +
                                 ", depth " + std::to_string(a.depth) + ")");
  }
  for (const auto& [k, t] : w)
    if (!known.count(k))
      throw InputError(path,
                       "unsupported key 'visual." + k + "' (this CLIP image tower variant is not supported)");
  return w;
}

// A timm ViT encoder holding the file's weights, its position table resampled per input (dynamic_img_size).
std::shared_ptr<VitEncoderImpl> timm_encoder(const std::string& path, const io::NamedTensors& file,
                                             const std::map<std::string, at::Tensor>& all,
                                             const TeacherOptions& opts, TeacherArch& a) {
  const at::Tensor& conv = all.at("patch_embed.proj.weight");
  if (conv.dim() != 4 || conv.size(2) != conv.size(3))
    throw InputError(path,
                     "'patch_embed.proj.weight' must be (width, C, p, p), got " + c10::str(conv.sizes()));
  a.width = conv.size(0), a.in_chans = conv.size(1), a.patch_size = conv.size(2);
  a.depth = count_blocks(all, "blocks.");
  check_option(path, "width", opts.width, a.width, "patch_embed.proj.weight");
  check_option(path, "depth", opts.depth, a.depth, "blocks.*");
  a.heads = heads_for(path, opts, a.width);
  a.out_dim = a.width;
  const std::string fc1 = "blocks.0.mlp.fc1.weight";
  if (!all.count(fc1)) throw InputError(path, "missing key '" + fc1 + "' of a timm ViT");
  a.mlp_hidden = all.at(fc1).size(0);
  if (!all.count("pos_embed")) throw InputError(path, "missing key 'pos_embed' of a timm ViT");
  a.grid = square_grid(path, "pos_embed", all.at("pos_embed").size(1));
  VitConfig c;
  c.patch_size = a.patch_size, c.in_chans = a.in_chans, c.embed_dim = a.width, c.depth = a.depth;
  c.num_heads = a.heads;
  c.img_size = a.grid.h * a.patch_size;
  c.mlp_ratio = static_cast<double>(a.mlp_hidden) / static_cast<double>(a.width);
  c.dynamic_img_size = true;
  auto enc = std::make_shared<VitEncoderImpl>(c);
  io::NamedTensors kept;  // the classifier head and a pooling norm are not part of the token features
  for (const auto& [k, t] : file)
    if (!k.starts_with("head.") && !k.starts_with("fc_norm.")) kept.emplace_back(k, t);
  LoadOptions load;
  load.where = path;
  load_weights(*enc, kept, load);  // strict: another architecture's keys or shapes fail here
  for (auto& p : enc->parameters()) p.set_requires_grad(false);
  enc->eval();
  return enc;
}

}  // namespace

std::string detect_teacher_format(const std::map<std::string, at::Tensor>& weights) {
  if (weights.count("visual.conv1.weight")) return "open_clip";
  if (weights.count("patch_embed.proj.weight") && weights.count("blocks.0.attn.qkv.weight")) return "timm";
  return "";
}

Teacher::Teacher(const std::string& path_in, const TeacherOptions& opts, Grid grid)
    : path_(expand_home(path_in)), grid_(grid) {
  if (path_.empty())
    throw InputError("target.teacher_path", "is empty; target.kind 'teacher' needs a weights file");
  if (!std::filesystem::exists(path_)) throw InputError(path_, "teacher weights file does not exist");
  const io::NamedTensors file = read_pretrained_weights(path_);
  std::map<std::string, at::Tensor> all(file.begin(), file.end());
  const std::string found = detect_teacher_format(all);
  if (found.empty()) {
    std::string some;
    for (auto it = all.begin(); it != all.end() && some.size() < 120; ++it) some += " '" + it->first + "'";
    throw InputError(path_,
                     "keys are neither an open_clip CLIP image tower (visual.conv1.weight, ...) nor a "
                     "timm ViT (patch_embed.proj.weight, blocks.0.attn.qkv.weight, ...); its keys:" +
                         some);
  }
  if (opts.format != "auto" && opts.format != found)
    throw InputError(path_,
                     "target.teacher_format is '" + opts.format + "' but the keys are " + found + "'s");
  arch_.format = found;
  if (found == "open_clip") {
    weights_ = clip_tensors(path_, all, opts, arch_);
    weights_["positional_embedding"] = resample_abs_pos_embed(
        weights_.at("positional_embedding").unsqueeze(0), grid_, arch_.grid);  // (1, 1+L, W)
  } else {
    vit_ = timm_encoder(path_, file, all, opts, arch_);
  }
  arch_.quick_gelu = opts.act == "quick_gelu" || (opts.act == "auto" && found == "open_clip");
  if (arch_.quick_gelu && found == "timm")
    throw InputError(path_, "target.teacher_act quick_gelu is for open_clip teachers; a timm ViT uses gelu");
  core::log_info("teacher " + path_ + ": " + found + " ViT, width " + std::to_string(arch_.width) +
                 ", depth " + std::to_string(arch_.depth) + ", patch " + std::to_string(arch_.patch_size) +
                 ", features " + std::to_string(arch_.out_dim) +
                 (arch_.quick_gelu ? ", QuickGELU" : ", GELU"));
}

void Teacher::to(at::Device device) {
  for (auto& [k, t] : weights_) t = t.to(device);
  if (vit_) vit_->to(device);
}

// x: (N, 1+L, W) -> (N, 1+L, W)
at::Tensor Teacher::clip_block(const at::Tensor& x, int64_t i) const {
  const std::string b = "transformer.resblocks." + std::to_string(i) + ".";
  const int64_t n = x.size(0), t = x.size(1), d = arch_.width, e = d / arch_.heads;
  auto ln = [&](const at::Tensor& v, const std::string& name) {
    return at::layer_norm(v, {d}, w(b + name + ".weight"), w(b + name + ".bias"), kClipLnEps);
  };
  auto qkv = at::linear(ln(x, "ln_1"), w(b + "attn.in_proj_weight"), w(b + "attn.in_proj_bias")).chunk(3, -1);
  auto heads = [&](const at::Tensor& v) { return v.reshape({n, t, arch_.heads, e}).transpose(1, 2); };
  auto att = at::scaled_dot_product_attention(heads(qkv[0]), heads(qkv[1]), heads(qkv[2]));
  auto y = x + at::linear(att.transpose(1, 2).reshape({n, t, d}), w(b + "attn.out_proj.weight"),
                          w(b + "attn.out_proj.bias"));
  auto hdn = at::linear(ln(y, "ln_2"), w(b + "mlp.c_fc.weight"), w(b + "mlp.c_fc.bias"));
  hdn = arch_.quick_gelu ? hdn * at::sigmoid(1.702 * hdn) : at::gelu(hdn);
  return y + at::linear(hdn, w(b + "mlp.c_proj.weight"), w(b + "mlp.c_proj.bias"));
}

// imgs: (N, C, gh*p, gw*p) -> (N, 1+L, out_dim)
at::Tensor Teacher::clip_forward(const at::Tensor& imgs) const {
  const int64_t d = arch_.width;
  auto x = at::conv2d(imgs, w("conv1.weight"), /*bias=*/{}, arch_.patch_size).flatten(2).transpose(1, 2);
  const int64_t n = x.size(0);
  auto cls = w("class_embedding").to(x.scalar_type()).view({1, 1, d}).expand({n, 1, d});
  x = at::cat({cls, x}, 1) + w("positional_embedding").to(x.scalar_type());
  x = at::layer_norm(x, {d}, w("ln_pre.weight"), w("ln_pre.bias"), kClipLnEps);
  for (int64_t i = 0; i < arch_.depth; ++i) x = clip_block(x, i);
  x = at::layer_norm(x, {d}, w("ln_post.weight"), w("ln_post.bias"), kClipLnEps);
  return weights_.count("proj") ? at::matmul(x, w("proj").to(x.scalar_type())) : x;
}

// imgs: (N, C, H, W) -> (N, 1 + grid.h*grid.w, out_dim)
at::Tensor Teacher::forward(const at::Tensor& imgs) {
  torch::NoGradGuard no_grad;
  if (imgs.dim() != 4)
    throw InputError(path_, "teacher input must be (N, C, H, W), got " + c10::str(imgs.sizes()));
  at::Tensor x = imgs;
  if (x.size(1) == 1 && arch_.in_chans == 3) x = x.expand({-1, 3, -1, -1});
  if (x.size(1) != arch_.in_chans)
    throw InputError(path_, "the teacher takes " + std::to_string(arch_.in_chans) +
                                " channels, the images have " + std::to_string(imgs.size(1)));
  const int64_t h = grid_.h * arch_.patch_size, wd = grid_.w * arch_.patch_size;
  if (x.size(2) != h || x.size(3) != wd)
    x = at::upsample_bicubic2d(x.contiguous(), {h, wd}, /*align_corners=*/false);
  return vit_ ? vit_->forward_features(x) : clip_forward(x);
}

}  // namespace semaim::models
