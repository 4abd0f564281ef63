// UperNet on ViT features (mmseg UPerHead + FCNHead, MAE/BEiT's ViT neck); method as in docs/segmentation.md.
#include "semaim/models/heads/upernet.h"

#include <torch/nn/functional/dropout.h>
#include <torch/nn/init.h>
#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/pooling.h>

#include "semaim/core/errors.h"

namespace semaim::models {
namespace {

// mmseg's resize: bilinear, align_corners false. x: (N, C, h, w) -> (N, C, size)
at::Tensor resize_bilinear(const at::Tensor& x, at::IntArrayRef size) {
  if (x.size(2) == size[0] && x.size(3) == size[1]) return x;
  return at::upsample_bilinear2d(x, size, /*align_corners=*/false);
}

// mmseg BaseDecodeHead.cls_seg: Dropout2d, then the 1x1 classifier.
at::Tensor classify(const at::Tensor& x, double p, bool training, torch::nn::Conv2d& conv_seg) {
  return conv_seg->forward(p > 0 ? at::feature_dropout(x, p, training) : x);
}

torch::nn::Conv2d make_conv_seg(int64_t channels, int64_t num_classes) {
  torch::nn::Conv2d c(torch::nn::Conv2dOptions(channels, num_classes, 1));
  torch::nn::init::normal_(c->weight, 0.0, 0.01);  // mmseg normal_init(conv_seg, std=0.01)
  torch::nn::init::zeros_(c->bias);
  return c;
}

}  // namespace

void UperNetConfig::validate(const std::string& where) const {
  vit.validate(where);
  if (out_indices.size() != 4) throw InputError(where + ".out_indices", "needs exactly four encoder blocks");
  for (size_t k = 0; k < out_indices.size(); ++k) {
    const int64_t i = out_indices[k];
    if (i < 0 || i >= vit.depth)
      throw InputError(where + ".out_indices",
                       "block " + std::to_string(i) + " outside 0.." + std::to_string(vit.depth - 1));
    if (k > 0 && i <= out_indices[k - 1])
      throw InputError(where + ".out_indices", "blocks must be distinct and increasing");
  }
  if (channels < 1 || num_classes < 1 || aux_channels < 1)
    throw InputError(where, "channels, aux_channels and num_classes must be positive");
  if (pool_scales.empty()) throw InputError(where + ".pool_scales", "at least one scale");
  for (int64_t s : pool_scales)
    if (s < 1) throw InputError(where + ".pool_scales", "scales must be positive");
  if (aux_in_index < 0 || aux_in_index > 3) throw InputError(where + ".aux_in_index", "must be 0..3");
  if (dropout < 0 || dropout >= 1) throw InputError(where + ".dropout", "must be in [0, 1)");
}

ConvModuleImpl::ConvModuleImpl(int64_t in, int64_t out, int64_t kernel) {
  conv = register_module("conv", torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, kernel)
                                                       .padding(kernel / 2)
                                                       .bias(false)));
  bn = register_module("bn", SyncBatchNorm2d(out));
  // mmcv ConvModule.init_weights: kaiming normal, fan_out, for ReLU; norm weight 1, bias 0 (libtorch's default).
  torch::nn::init::kaiming_normal_(conv->weight, 0.0, torch::kFanOut, torch::kReLU);
}

at::Tensor ConvModuleImpl::forward(const at::Tensor& x) { return at::relu(bn->forward(conv->forward(x))); }

VitNeckImpl::VitNeckImpl(int64_t dim) {
  auto deconv = [dim] { return torch::nn::ConvTranspose2d(torch::nn::ConvTranspose2dOptions(dim, dim, 2).stride(2)); };
  fpn1 = register_module("fpn1", torch::nn::Sequential(deconv(), SyncBatchNorm2d(dim), torch::nn::GELU(),
                                                        deconv()));
  fpn2 = register_module("fpn2", torch::nn::Sequential(deconv()));
}

std::vector<at::Tensor> VitNeckImpl::forward(const std::vector<at::Tensor>& f) {
  return {fpn1->forward(f.at(0)), fpn2->forward(f.at(1)), f.at(2), at::max_pool2d(f.at(3), {2, 2}, {2, 2})};
}

UperHeadImpl::UperHeadImpl(int64_t in, int64_t channels, const std::vector<int64_t>& pool_scales,
                           int64_t num_classes, double dropout)
    : pool_scales_(pool_scales), dropout_(dropout) {
  psp_modules = register_module("psp_modules", torch::nn::ModuleList());
  for (int64_t s : pool_scales)
    psp_modules->push_back(torch::nn::Sequential(torch::nn::AdaptiveAvgPool2d(s), ConvModule(in, channels, 1)));
  bottleneck = register_module(
      "bottleneck", ConvModule(in + static_cast<int64_t>(pool_scales.size()) * channels, channels, 3));
  lateral_convs = register_module("lateral_convs", torch::nn::ModuleList());
  fpn_convs = register_module("fpn_convs", torch::nn::ModuleList());
  for (int i = 0; i < 3; ++i) {
    lateral_convs->push_back(ConvModule(in, channels, 1));
    fpn_convs->push_back(ConvModule(channels, channels, 3));
  }
  fpn_bottleneck = register_module("fpn_bottleneck", ConvModule(4 * channels, channels, 3));
  conv_seg = register_module("conv_seg", make_conv_seg(channels, num_classes));
}

at::Tensor UperHeadImpl::forward(const std::vector<at::Tensor>& levels) {
  // Pyramid pooling on the coarsest level, fused by the bottleneck.
  const at::Tensor& top = levels.at(3);
  std::vector<at::Tensor> psp{top};
  for (const auto& m : *psp_modules)
    psp.push_back(resize_bilinear(m->as<torch::nn::SequentialImpl>()->forward(top), top.sizes().slice(2)));
  std::vector<at::Tensor> lat;
  for (int i = 0; i < 3; ++i) lat.push_back(lateral_convs[i]->as<ConvModuleImpl>()->forward(levels.at(i)));
  lat.push_back(bottleneck->forward(at::cat(psp, 1)));
  // Top-down: each level gains the upsampled coarser one.
  for (int i = 3; i > 0; --i) lat[i - 1] = lat[i - 1] + resize_bilinear(lat[i], lat[i - 1].sizes().slice(2));
  std::vector<at::Tensor> outs;
  for (int i = 0; i < 3; ++i) outs.push_back(fpn_convs[i]->as<ConvModuleImpl>()->forward(lat[i]));
  outs.push_back(lat[3]);
  for (int i = 1; i < 4; ++i) outs[i] = resize_bilinear(outs[i], outs[0].sizes().slice(2));
  return classify(fpn_bottleneck->forward(at::cat(outs, 1)), dropout_, is_training(), conv_seg);
}

FcnHeadImpl::FcnHeadImpl(int64_t in, int64_t channels, int64_t num_classes, double dropout) : dropout_(dropout) {
  convs = register_module("convs", torch::nn::Sequential(ConvModule(in, channels, 3)));
  conv_seg = register_module("conv_seg", make_conv_seg(channels, num_classes));
}

at::Tensor FcnHeadImpl::forward(const at::Tensor& x) {
  return classify(convs->forward(x), dropout_, is_training(), conv_seg);
}

UperNetImpl::UperNetImpl(const UperNetConfig& cfg) : cfg_(cfg) {
  cfg_.vit.dynamic_img_size = true;
  cfg_.validate();
  backbone = register_module("backbone", VitEncoder(cfg_.vit));
  backbone->unregister_module("norm");  // the heads read the blocks' outputs, never the final norm
  const int64_t d = cfg_.vit.embed_dim;
  neck = register_module("neck", VitNeck(d));
  decode_head =
      register_module("decode_head", UperHead(d, cfg_.channels, cfg_.pool_scales, cfg_.num_classes, cfg_.dropout));
  if (cfg_.aux_head)
    auxiliary_head =
        register_module("auxiliary_head", FcnHead(d, cfg_.aux_channels, cfg_.num_classes, cfg_.dropout));
}

SegOutput UperNetImpl::forward(const at::Tensor& imgs) {
  IntermediatesOptions o;
  o.indices = cfg_.out_indices;
  o.intermediates_only = true;
  o.stop_early = true;
  const auto levels = neck->forward(backbone->forward_intermediates(imgs, o).intermediates);
  SegOutput out;
  out.logits = decode_head->forward(levels);
  if (cfg_.aux_head && is_training()) out.aux_logits = auxiliary_head->forward(levels.at(cfg_.aux_in_index));
  return out;
}

at::Tensor UperNetImpl::predict_logits(const at::Tensor& imgs) {
  return resize_bilinear(forward(imgs).logits, imgs.sizes().slice(2));
}

at::Tensor UperNetImpl::loss(const SegOutput& out, const at::Tensor& labels) const {
  at::Tensor l = seg_cross_entropy(out.logits, labels, cfg_.ignore_index, cfg_.avg_non_ignore);
  if (out.aux_logits.defined())
    l = l + cfg_.aux_weight * seg_cross_entropy(out.aux_logits, labels, cfg_.ignore_index, cfg_.avg_non_ignore);
  return l;
}

at::Tensor seg_cross_entropy(const at::Tensor& logits, const at::Tensor& labels, int64_t ignore_index,
                             bool avg_non_ignore) {
  const at::Tensor up = resize_bilinear(logits.to(at::kFloat), labels.sizes().slice(1));
  const at::Tensor per_pixel =
      at::cross_entropy_loss(up, labels, /*weight=*/{}, at::Reduction::None, ignore_index);
  if (!avg_non_ignore) return per_pixel.mean();
  return per_pixel.sum() / (labels != ignore_index).sum().clamp_min(1);
}

}  // namespace semaim::models
