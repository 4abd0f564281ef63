// ViTDet's region proposal network: detectron2 proposal_generator/rpn.py (RPN, StandardRPNHead) and
// proposal_utils.py find_top_rpn_proposals.
#include "semaim/models/heads/rpn.h"

#include <torch/nn/init.h>
#include <torch/nn/modules/activation.h>

#include "kernels/nms/nms.h"
#include "semaim/core/errors.h"

namespace semaim::models {
namespace {

// The per-image anchor labels and matched boxes of detectron2 RPN.label_and_sample_anchors.
struct AnchorTargets {
  at::Tensor labels;    // (R) int64: 1 positive, 0 negative, -1 ignored
  at::Tensor gt_boxes;  // (R, 4) the matched ground truth (zeros without ground truth)
};

}  // namespace

void RpnConfig::validate(const std::string& where) const {
  if (in_channels < 1) throw InputError(where + ".in_channels", "must be positive");
  if (conv_dims.empty()) throw InputError(where + ".conv_dims", "needs at least one conv");
  for (int64_t d : conv_dims)
    if (d != -1 && d < 1) throw InputError(where + ".conv_dims", "each must be -1 (keep) or positive");
  if (anchor_sizes.size() != strides.size())
    throw InputError(where + ".anchor_sizes", "needs one size per level (" + std::to_string(strides.size()) + ")");
  for (double s : anchor_sizes)
    if (!(s > 0)) throw InputError(where + ".anchor_sizes", "sizes must be positive");
  if (aspect_ratios.empty()) throw InputError(where + ".aspect_ratios", "needs at least one ratio");
  for (double r : aspect_ratios)
    if (!(r > 0)) throw InputError(where + ".aspect_ratios", "ratios must be positive");
  for (int64_t s : strides)
    if (s < 1) throw InputError(where + ".strides", "strides must be positive");
  det::Matcher{iou_thresholds, iou_labels, allow_low_quality_matches}.validate(where + ".iou_thresholds");
  if (batch_size_per_image < 1) throw InputError(where + ".batch_size_per_image", "must be positive");
  if (positive_fraction < 0 || positive_fraction > 1) throw InputError(where + ".positive_fraction", "must be in [0, 1]");
  if (pre_nms_topk_train < 1 || pre_nms_topk_test < 1 || post_nms_topk_train < 1 || post_nms_topk_test < 1)
    throw InputError(where, "pre/post NMS top-k must be positive");
  if (nms_thresh <= 0 || nms_thresh > 1) throw InputError(where + ".nms_thresh", "must be in (0, 1]");
  if (min_box_size < 0 || smooth_l1_beta < 0) throw InputError(where, "min_box_size and smooth_l1_beta must be >= 0");
}

RpnHeadImpl::RpnHeadImpl(int64_t in_channels, const std::vector<int64_t>& conv_dims, int64_t num_anchors) {
  conv = register_module("conv", torch::nn::Sequential());
  int64_t channels = in_channels;
  for (size_t k = 0; k < conv_dims.size(); ++k) {
    const int64_t out = conv_dims[k] == -1 ? channels : conv_dims[k];
    // detectron2 keeps the ReLU inside its Conv2d, so only the convs carry keys (conv.conv0, conv.conv1, ...).
    conv->push_back("conv" + std::to_string(k), torch::nn::Conv2d(torch::nn::Conv2dOptions(channels, out, 3).padding(1)));
    conv->push_back("relu" + std::to_string(k), torch::nn::ReLU());
    channels = out;
  }
  objectness_logits = register_module("objectness_logits", torch::nn::Conv2d(torch::nn::Conv2dOptions(channels, num_anchors, 1)));
  anchor_deltas = register_module("anchor_deltas", torch::nn::Conv2d(torch::nn::Conv2dOptions(channels, 4 * num_anchors, 1)));
  for (auto& p : named_parameters()) {
    if (p.key().ends_with("weight")) torch::nn::init::normal_(p.value(), 0.0, 0.01);
    else torch::nn::init::zeros_(p.value());
  }
}

std::pair<at::Tensor, at::Tensor> RpnHeadImpl::forward(const at::Tensor& x) {
  const at::Tensor t = conv->forward(x);
  return {objectness_logits->forward(t), anchor_deltas->forward(t)};
}

RpnImpl::RpnImpl(const RpnConfig& cfg) : cfg_(cfg) {
  cfg_.validate();
  std::vector<std::vector<double>> sizes;
  for (double s : cfg_.anchor_sizes) sizes.push_back({s});
  anchors_ = det::AnchorGenerator(sizes, cfg_.aspect_ratios, cfg_.strides, cfg_.anchor_offset);
  matcher_ = det::Matcher{cfg_.iou_thresholds, cfg_.iou_labels, cfg_.allow_low_quality_matches};
  rpn_head = register_module("rpn_head", RpnHead(cfg_.in_channels, cfg_.conv_dims, anchors_.num_cell_anchors()));
}

namespace {

// detectron2 RPN.label_and_sample_anchors for one image. anchors: (R, 4) -> labels and matched boxes
AnchorTargets label_anchors(const at::Tensor& anchors, const det::ImageTargets& t, const det::Matcher& matcher,
                            const RpnConfig& cfg) {
  const at::Tensor gt = t.boxes.to(anchors.device(), at::kFloat);
  auto [matched, match_labels] = matcher(det::box_iou(gt, anchors));
  at::Tensor labels = match_labels.to(at::kLong);
  auto [pos, neg] = det::subsample_labels(labels, cfg.batch_size_per_image, cfg.positive_fraction, 0);
  labels = at::full_like(labels, -1).index_fill_(0, pos, 1).index_fill_(0, neg, 0);
  const at::Tensor gt_boxes = gt.size(0) == 0 ? at::zeros_like(anchors) : gt.index_select(0, matched);
  return {labels, gt_boxes};
}

}  // namespace

RpnOutput RpnImpl::forward(const std::vector<at::Tensor>& features, const std::vector<det::ImageSize>& sizes,
                           const std::vector<det::ImageTargets>* targets) {
  if (features.empty()) throw InputError("rpn", "no feature levels");
  const int64_t n = features[0].size(0);
  if (static_cast<int64_t>(sizes.size()) != n) throw InputError("rpn", "one image size per image needed");
  if (targets && static_cast<int64_t>(targets->size()) != n) throw InputError("rpn", "one target per image needed");
  std::vector<std::pair<int64_t, int64_t>> grids;
  std::vector<at::Tensor> logits, deltas;  // per level (N, H*W*A), (N, H*W*A, 4), ordered (y, x, anchor)
  for (const auto& f : features) {
    grids.emplace_back(f.size(2), f.size(3));
    auto [obj, del] = rpn_head->forward(f);
    logits.push_back(obj.permute({0, 2, 3, 1}).flatten(1));
    deltas.push_back(del.view({n, -1, 4, f.size(2), f.size(3)}).permute({0, 3, 4, 1, 2}).flatten(1, -2));
  }
  const std::vector<at::Tensor> anchors = anchors_.grid_anchors(grids, features[0].device());

  RpnOutput out;
  if (targets) {
    const at::Tensor all_anchors = at::cat(anchors, 0);
    const at::Tensor all_logits = at::cat(logits, 1), all_deltas = at::cat(deltas, 1);
    at::Tensor cls = all_logits.new_zeros({}), loc = all_logits.new_zeros({});
    for (int64_t i = 0; i < n; ++i) {
      const AnchorTargets at_i = label_anchors(all_anchors, (*targets)[i], matcher_, cfg_);
      const at::Tensor valid = at::nonzero(at_i.labels >= 0).select(1, 0);
      cls = cls + at::binary_cross_entropy_with_logits(all_logits[i].index_select(0, valid),
                                                       at_i.labels.index_select(0, valid).to(all_logits.dtype()),
                                                       {}, {}, at::Reduction::Sum);
      const at::Tensor pos = at::nonzero(at_i.labels == 1).select(1, 0);
      const at::Tensor gt_deltas =
          transform_.get_deltas(all_anchors.index_select(0, pos), at_i.gt_boxes.index_select(0, pos));
      loc = loc + det::smooth_l1_sum(all_deltas[i].index_select(0, pos), gt_deltas, cfg_.smooth_l1_beta);
    }
    const auto normalizer = static_cast<double>(cfg_.batch_size_per_image * n);
    out.losses["loss_rpn_cls"] = cls * (cfg_.loss_weight_cls / normalizer);
    out.losses["loss_rpn_loc"] = loc * (cfg_.loss_weight_loc / normalizer);
  }

  // Proposals are not differentiated through (detectron2 predict_proposals runs under no_grad).
  std::vector<at::Tensor> boxes, scores;
  for (size_t l = 0; l < anchors.size(); ++l) {
    const at::Tensor d = deltas[l].detach();
    const int64_t r = anchors[l].size(0);
    const at::Tensor a = anchors[l].unsqueeze(0).expand({n, r, 4}).reshape({-1, 4});
    boxes.push_back(transform_.apply_deltas(d.reshape({-1, 4}), a).view({n, r, 4}));
    scores.push_back(logits[l].detach());
  }
  const bool train = is_training();
  out.proposals = find_top_rpn_proposals(boxes, scores, sizes, cfg_.nms_thresh,
                                         train ? cfg_.pre_nms_topk_train : cfg_.pre_nms_topk_test,
                                         train ? cfg_.post_nms_topk_train : cfg_.post_nms_topk_test,
                                         cfg_.min_box_size, train);
  return out;
}

std::vector<at::Tensor> find_top_rpn_proposals(const std::vector<at::Tensor>& proposals,
                                               const std::vector<at::Tensor>& logits,
                                               const std::vector<det::ImageSize>& sizes, double nms_thresh,
                                               int64_t pre_nms_topk, int64_t post_nms_topk, double min_box_size,
                                               bool training) {
  std::vector<at::Tensor> top_boxes, top_scores, level_ids;
  for (size_t l = 0; l < proposals.size(); ++l) {
    const int64_t k = std::min(pre_nms_topk, logits[l].size(1));
    auto [s, idx] = logits[l].topk(k, 1);  // (N, k) sorted, best first
    top_scores.push_back(s);
    top_boxes.push_back(at::take_along_dim(proposals[l], idx.unsqueeze(2), 1));
    level_ids.push_back(at::full({k}, static_cast<int64_t>(l), idx.options()));
  }
  const at::Tensor all_boxes = at::cat(top_boxes, 1), all_scores = at::cat(top_scores, 1);
  const at::Tensor all_levels = at::cat(level_ids, 0);
  std::vector<at::Tensor> out;
  for (size_t i = 0; i < sizes.size(); ++i) {
    at::Tensor b = all_boxes[static_cast<int64_t>(i)], s = all_scores[static_cast<int64_t>(i)], lvl = all_levels;
    const at::Tensor valid = at::isfinite(b).all(1) & at::isfinite(s);
    if (!valid.all().item<bool>()) {
      if (training) throw RuntimeFailure("rpn: predicted boxes or scores are not finite; training has diverged");
      b = b.index({valid}), s = s.index({valid}), lvl = lvl.index({valid});
    }
    b = det::clip_boxes(b, sizes[i]);
    const at::Tensor keep = det::nonempty_boxes(b, min_box_size);
    b = b.index({keep}), s = s.index({keep}), lvl = lvl.index({keep});
    const at::Tensor kept = kernels::batched_nms(b, s, lvl, nms_thresh).slice(0, 0, post_nms_topk);
    out.push_back(b.index_select(0, kept));
  }
  return out;
}

}  // namespace semaim::models
