// ViTDet's RoI heads: detectron2 roi_heads.py StandardROIHeads (label_and_sample_proposals, _forward_box,
// _forward_mask), fast_rcnn.py (losses, fast_rcnn_inference) and mask_head.py (mask_rcnn_loss / _inference).
#include "semaim/models/heads/roi_heads.h"

#include "kernels/nms/nms.h"
#include "kernels/roi_align/roi_align.h"
#include "semaim/core/errors.h"

namespace semaim::models {

void RoiHeadsConfig::validate(const std::string& where) const {
  if (num_classes < 1) throw InputError(where + ".num_classes", "must be positive");
  if (in_channels < 1 || conv_dim < 1 || fc_dim < 1) throw InputError(where, "channel widths must be positive");
  if (num_box_convs < 0 || num_mask_convs < 0) throw InputError(where, "conv counts must be >= 0");
  if (strides.empty()) throw InputError(where + ".strides", "needs at least one level");
  for (size_t l = 0; l < strides.size(); ++l) {
    const int64_t s = strides[l];
    if (s < 1 || (s & (s - 1)) != 0) throw InputError(where + ".strides", "strides must be powers of two");
    if (l > 0 && s != 2 * strides[l - 1]) throw InputError(where + ".strides", "strides must double level to level");
  }
  if (iou_threshold < 0 || iou_threshold > 1) throw InputError(where + ".iou_threshold", "must be in [0, 1]");
  if (batch_size_per_image < 1) throw InputError(where + ".batch_size_per_image", "must be positive");
  if (positive_fraction < 0 || positive_fraction > 1) throw InputError(where + ".positive_fraction", "must be in [0, 1]");
  if (box_pooler_resolution < 1 || mask_pooler_resolution < 1 || pooler_sampling_ratio < 0)
    throw InputError(where, "pooler resolutions must be positive and the sampling ratio >= 0");
  for (double w : bbox_reg_weights)
    if (!(w > 0)) throw InputError(where + ".bbox_reg_weights", "weights must be positive");
  if (smooth_l1_beta < 0) throw InputError(where + ".smooth_l1_beta", "must be >= 0");
  if (test_score_thresh < 0 || test_score_thresh >= 1) throw InputError(where + ".test_score_thresh", "must be in [0, 1)");
  if (test_nms_thresh <= 0 || test_nms_thresh > 1) throw InputError(where + ".test_nms_thresh", "must be in (0, 1]");
  if (test_detections_per_img < 1) throw InputError(where + ".test_detections_per_img", "must be positive");
}

RoiHeadsImpl::RoiHeadsImpl(const RoiHeadsConfig& cfg) : cfg_(cfg) {
  cfg_.validate();
  box_pooler_ = det::RoiPooler(cfg_.box_pooler_resolution, cfg_.strides, cfg_.pooler_sampling_ratio, true);
  mask_pooler_ = det::RoiPooler(cfg_.mask_pooler_resolution, cfg_.strides, cfg_.pooler_sampling_ratio, true);
  matcher_ = det::Matcher{{cfg_.iou_threshold}, {0, 1}, false};
  transform_.weights = cfg_.bbox_reg_weights;
  box_head = register_module("box_head", BoxHead(cfg_.in_channels, cfg_.box_pooler_resolution, cfg_.num_box_convs,
                                                 cfg_.conv_dim, cfg_.fc_dim));
  box_predictor = register_module("box_predictor", BoxPredictor(cfg_.fc_dim, cfg_.num_classes));
  if (cfg_.mask_on)
    mask_head = register_module("mask_head", MaskHead(cfg_.in_channels, cfg_.num_mask_convs, cfg_.conv_dim,
                                                      cfg_.num_classes));
}

RoiHeadsImpl::Sampled RoiHeadsImpl::label_and_sample(const at::Tensor& proposals,
                                                     const det::ImageTargets& t) const {
  const int64_t k = cfg_.num_classes;
  const at::Tensor gt = t.boxes.to(proposals.device(), at::kFloat);
  const at::Tensor props = cfg_.proposal_append_gt ? at::cat({proposals, gt}, 0) : proposals;
  auto [matched, match_labels] = matcher_(det::box_iou(gt, props));
  at::Tensor classes;
  if (gt.size(0) > 0) {
    classes = t.classes.to(props.device(), at::kLong).index_select(0, matched);
    classes.masked_fill_(match_labels == 0, k).masked_fill_(match_labels == -1, -1);
  } else {
    classes = at::full({props.size(0)}, k, matched.options());
  }
  auto [fg, bg] = det::subsample_labels(classes, cfg_.batch_size_per_image, cfg_.positive_fraction, k);
  const at::Tensor idx = at::cat({fg, bg});
  Sampled s{props.index_select(0, idx), classes.index_select(0, idx), {}, matched.index_select(0, idx)};
  s.gt_boxes = gt.size(0) > 0 ? gt.index_select(0, s.gt_indices) : at::zeros_like(s.boxes);
  return s;
}

det::LossMap RoiHeadsImpl::box_losses(const std::vector<at::Tensor>& features, const std::vector<Sampled>& sampled) {
  std::vector<at::Tensor> boxes, classes, gt_boxes;
  for (const auto& s : sampled) boxes.push_back(s.boxes), classes.push_back(s.classes), gt_boxes.push_back(s.gt_boxes);
  auto [scores, deltas] = box_predictor->forward(box_head->forward(box_pooler_.forward(features, boxes)));
  const at::Tensor cls = at::cat(classes), props = at::cat(boxes), gts = at::cat(gt_boxes);
  det::LossMap losses;
  losses["loss_cls"] = cls.numel() == 0 ? scores.sum() * 0.0 : at::cross_entropy_loss(scores, cls);
  // Class-specific regression: each foreground RoI regresses only the deltas of its ground-truth class.
  const at::Tensor fg = at::nonzero((cls >= 0) & (cls < cfg_.num_classes)).select(1, 0);
  const at::Tensor fg_cls = cls.index_select(0, fg);
  const at::Tensor fg_deltas = deltas.view({-1, cfg_.num_classes, 4}).index_select(0, fg)
                                   .gather(1, fg_cls.view({-1, 1, 1}).expand({-1, 1, 4})).squeeze(1);
  const at::Tensor gt_deltas = transform_.get_deltas(props.index_select(0, fg), gts.index_select(0, fg));
  losses["loss_box_reg"] = det::smooth_l1_sum(fg_deltas, gt_deltas, cfg_.smooth_l1_beta) /
                           static_cast<double>(std::max<int64_t>(cls.numel(), 1));
  return losses;
}

at::Tensor RoiHeadsImpl::mask_loss(const std::vector<at::Tensor>& features, const std::vector<Sampled>& sampled,
                                   const std::vector<det::ImageTargets>& targets) {
  std::vector<at::Tensor> boxes, classes, gt_masks;
  const int64_t m = 2 * cfg_.mask_pooler_resolution;
  for (size_t i = 0; i < sampled.size(); ++i) {
    const Sampled& s = sampled[i];
    const at::Tensor fg = at::nonzero((s.classes >= 0) & (s.classes < cfg_.num_classes)).select(1, 0);
    const at::Tensor b = s.boxes.index_select(0, fg);
    boxes.push_back(b);
    classes.push_back(s.classes.index_select(0, fg));
    if (fg.numel() == 0) continue;
    if (!targets[i].masks.defined()) throw InputError("roi_heads", "mask_on needs ground-truth masks in the targets");
    // detectron2 BitMasks.crop_and_resize: RoIAlign (aligned, adaptive sampling) of the binary mask, then >= 0.5.
    const at::Tensor gm = targets[i].masks.to(b.device(), at::kFloat).unsqueeze(1);
    const at::Tensor rois = at::cat({s.gt_indices.index_select(0, fg).to(at::kFloat).unsqueeze(1), b}, 1);
    gt_masks.push_back(kernels::roi_align(gm, rois, 1.0, m, m, 0, true).squeeze(1) >= 0.5);
  }
  const at::Tensor logits = mask_head->forward(mask_pooler_.forward(features, boxes));  // (R, K, M, M)
  if (gt_masks.empty()) return logits.sum() * 0.0;
  const at::Tensor cls = at::cat(classes);
  const at::Tensor pred = logits.gather(1, cls.view({-1, 1, 1, 1}).expand({-1, 1, m, m})).squeeze(1);
  return at::binary_cross_entropy_with_logits(pred, at::cat(gt_masks).to(pred.dtype()));
}

RoiHeadsOutput RoiHeadsImpl::forward(const std::vector<at::Tensor>& features, const std::vector<at::Tensor>& proposals,
                                     const std::vector<det::ImageSize>& sizes,
                                     const std::vector<det::ImageTargets>* targets) {
  if (features.size() != cfg_.strides.size())
    throw InputError("roi_heads", "got " + std::to_string(features.size()) + " feature levels, expected " +
                                      std::to_string(cfg_.strides.size()));
  const auto n = static_cast<size_t>(features[0].size(0));
  if (proposals.size() != n || sizes.size() != n) throw InputError("roi_heads", "one proposal set and size per image");
  RoiHeadsOutput out;
  if (!targets) {
    out.detections = inference(features, proposals, sizes);
    return out;
  }
  if (targets->size() != n) throw InputError("roi_heads", "one target per image needed");
  std::vector<Sampled> sampled;
  for (size_t i = 0; i < n; ++i) sampled.push_back(label_and_sample(proposals[i].detach(), (*targets)[i]));
  out.losses = box_losses(features, sampled);
  if (cfg_.mask_on) out.losses["loss_mask"] = mask_loss(features, sampled, *targets);
  return out;
}

namespace {

// fast_rcnn_inference_single_image. scores: (R, K+1) probabilities, boxes: (R, 4K) decoded -> detections
det::Detections select_detections(at::Tensor scores, at::Tensor boxes, det::ImageSize size, const RoiHeadsConfig& c) {
  const at::Tensor valid = at::isfinite(boxes).all(1) & at::isfinite(scores).all(1);
  if (!valid.all().item<bool>()) boxes = boxes.index({valid}), scores = scores.index({valid});
  scores = scores.slice(1, 0, c.num_classes);
  boxes = det::clip_boxes(boxes.reshape({-1, 4}), size).view({-1, c.num_classes, 4});
  const at::Tensor mask = scores > c.test_score_thresh;
  const at::Tensor inds = at::nonzero(mask);  // (D, 2): RoI, class
  const at::Tensor b = boxes.index({mask}), s = scores.index({mask}), cls = inds.select(1, 1);
  const at::Tensor keep = kernels::batched_nms(b, s, cls, c.test_nms_thresh).slice(0, 0, c.test_detections_per_img);
  return {b.index_select(0, keep), s.index_select(0, keep), cls.index_select(0, keep), {}};
}

}  // namespace

std::vector<det::Detections> RoiHeadsImpl::inference(const std::vector<at::Tensor>& features,
                                                     const std::vector<at::Tensor>& proposals,
                                                     const std::vector<det::ImageSize>& sizes) {
  auto [scores, deltas] = box_predictor->forward(box_head->forward(box_pooler_.forward(features, proposals)));
  const at::Tensor probs = at::softmax(scores, -1);
  std::vector<det::Detections> dets;
  int64_t start = 0;
  for (size_t i = 0; i < proposals.size(); ++i) {
    const int64_t r = proposals[i].size(0);
    const at::Tensor boxes = transform_.apply_deltas(deltas.slice(0, start, start + r), proposals[i]);
    dets.push_back(select_detections(probs.slice(0, start, start + r), boxes, sizes[i], cfg_));
    start += r;
  }
  if (!cfg_.mask_on) return dets;
  std::vector<at::Tensor> boxes, classes;
  for (const auto& d : dets) boxes.push_back(d.boxes), classes.push_back(d.classes);
  const at::Tensor logits = mask_head->forward(mask_pooler_.forward(features, boxes));  // (D, K, M, M)
  const int64_t m = logits.size(2);
  const at::Tensor cls = at::cat(classes);
  const at::Tensor probs_m = logits.gather(1, cls.view({-1, 1, 1, 1}).expand({-1, 1, m, m})).sigmoid();
  start = 0;
  for (auto& d : dets) {
    d.masks = probs_m.slice(0, start, start + d.boxes.size(0));
    start += d.boxes.size(0);
  }
  return dets;
}

}  // namespace semaim::models
