// Box utilities of the ViTDet Mask R-CNN: detectron2's structures/boxes.py, box_regression.py Box2BoxTransform,
// matcher.py Matcher, sampling.py subsample_labels, anchor_generator.py DefaultAnchorGenerator, poolers.py levels.
#include "semaim/models/heads/box_ops.h"

#include <limits>

#include "kernels/roi_align/roi_align.h"
#include "semaim/core/errors.h"

namespace semaim::models::det {
namespace {

using at::indexing::Slice;

// boxes: (N, 4) -> four (N) columns
std::array<at::Tensor, 4> columns(const at::Tensor& boxes) {
  return {boxes.select(1, 0), boxes.select(1, 1), boxes.select(1, 2), boxes.select(1, 3)};
}

}  // namespace

at::Tensor box_area(const at::Tensor& boxes) {
  auto [x1, y1, x2, y2] = columns(boxes);
  return (x2 - x1) * (y2 - y1);
}

at::Tensor box_iou(const at::Tensor& a, const at::Tensor& b) {
  const at::Tensor area_a = box_area(a), area_b = box_area(b);
  const at::Tensor lt = at::max(a.index({Slice(), at::indexing::None, Slice(0, 2)}), b.index({Slice(), Slice(0, 2)}));
  const at::Tensor rb = at::min(a.index({Slice(), at::indexing::None, Slice(2, 4)}), b.index({Slice(), Slice(2, 4)}));
  const at::Tensor inter = (rb - lt).clamp_min(0).prod(2);
  // Where nothing intersects the IoU is 0 even for two empty boxes (0 / 0).
  return at::where(inter > 0, inter / (area_a.unsqueeze(1) + area_b.unsqueeze(0) - inter), at::zeros_like(inter));
}

at::Tensor clip_boxes(const at::Tensor& boxes, ImageSize size) {
  auto [x1, y1, x2, y2] = columns(boxes);
  const double w = static_cast<double>(size.w), h = static_cast<double>(size.h);
  return at::stack({x1.clamp(0, w), y1.clamp(0, h), x2.clamp(0, w), y2.clamp(0, h)}, 1);
}

at::Tensor nonempty_boxes(const at::Tensor& boxes, double threshold) {
  auto [x1, y1, x2, y2] = columns(boxes);
  return ((x2 - x1) > threshold) & ((y2 - y1) > threshold);
}

at::Tensor smooth_l1_sum(const at::Tensor& input, const at::Tensor& target, double beta) {
  const at::Tensor n = at::abs(input - target);
  if (beta < 1e-5) return n.sum();
  return at::where(n < beta, 0.5 * n * n / beta, n - 0.5 * beta).sum();
}

at::Tensor Box2BoxTransform::get_deltas(const at::Tensor& src, const at::Tensor& target) const {
  auto [sx1, sy1, sx2, sy2] = columns(src);
  auto [tx1, ty1, tx2, ty2] = columns(target);
  const at::Tensor sw = sx2 - sx1, sh = sy2 - sy1, scx = sx1 + 0.5 * sw, scy = sy1 + 0.5 * sh;
  const at::Tensor tw = tx2 - tx1, th = ty2 - ty1, tcx = tx1 + 0.5 * tw, tcy = ty1 + 0.5 * th;
  return at::stack({weights[0] * (tcx - scx) / sw, weights[1] * (tcy - scy) / sh, weights[2] * at::log(tw / sw),
                    weights[3] * at::log(th / sh)},
                   1);
}

at::Tensor Box2BoxTransform::apply_deltas(const at::Tensor& deltas_in, const at::Tensor& boxes_in) const {
  const at::Tensor deltas = deltas_in.to(at::kFloat);
  const at::Tensor boxes = boxes_in.to(deltas.scalar_type());
  auto [x1, y1, x2, y2] = columns(boxes);
  const at::Tensor w = (x2 - x1).unsqueeze(1), h = (y2 - y1).unsqueeze(1);
  const at::Tensor cx = x1.unsqueeze(1) + 0.5 * w, cy = y1.unsqueeze(1) + 0.5 * h;
  const at::Tensor dx = deltas.index({Slice(), Slice(0, at::indexing::None, 4)}) / weights[0];
  const at::Tensor dy = deltas.index({Slice(), Slice(1, at::indexing::None, 4)}) / weights[1];
  const at::Tensor dw = (deltas.index({Slice(), Slice(2, at::indexing::None, 4)}) / weights[2]).clamp_max(scale_clamp);
  const at::Tensor dh = (deltas.index({Slice(), Slice(3, at::indexing::None, 4)}) / weights[3]).clamp_max(scale_clamp);
  const at::Tensor pcx = dx * w + cx, pcy = dy * h + cy, pw = at::exp(dw) * w, ph = at::exp(dh) * h;
  const at::Tensor out = at::stack({pcx - 0.5 * pw, pcy - 0.5 * ph, pcx + 0.5 * pw, pcy + 0.5 * ph}, -1);
  return out.reshape(deltas.sizes());
}

void Matcher::validate(const std::string& where) const {
  if (labels.size() != thresholds.size() + 1)
    throw InputError(where, "needs one more label than thresholds");
  for (size_t i = 1; i < thresholds.size(); ++i)
    if (thresholds[i] < thresholds[i - 1]) throw InputError(where, "thresholds must be increasing");
  for (int64_t l : labels)
    if (l < -1 || l > 1) throw InputError(where, "labels must be -1 (ignore), 0 (negative) or 1 (positive)");
}

std::pair<at::Tensor, at::Tensor> Matcher::operator()(const at::Tensor& quality) const {
  const int64_t n = quality.size(1);
  const auto opts = quality.options();
  if (quality.numel() == 0)
    return {at::zeros({n}, opts.dtype(at::kLong)), at::full({n}, labels.at(0), opts.dtype(at::kChar))};
  auto [best, matches] = quality.max(0);
  at::Tensor match_labels = at::ones({n}, opts.dtype(at::kChar));
  std::vector<double> bounds{-std::numeric_limits<double>::infinity()};
  bounds.insert(bounds.end(), thresholds.begin(), thresholds.end());
  bounds.push_back(std::numeric_limits<double>::infinity());
  for (size_t i = 0; i < labels.size(); ++i)
    match_labels.masked_fill_((best >= bounds[i]) & (best < bounds[i + 1]), labels[i]);
  if (allow_low_quality_matches) {
    // Every ground truth keeps the predictions of its highest quality (ties included) as positives, even below
    // the positive threshold (detectron2 set_low_quality_matches_).
    const at::Tensor best_per_gt = std::get<0>(quality.max(1));
    const at::Tensor preds = at::nonzero(quality == best_per_gt.unsqueeze(1)).select(1, 1);
    match_labels.index_fill_(0, preds, 1);
  }
  return {matches, match_labels};
}

std::pair<at::Tensor, at::Tensor> subsample_labels(const at::Tensor& labels, int64_t num_samples,
                                                   double positive_fraction, int64_t bg_label) {
  const at::Tensor positive = at::nonzero((labels != -1) & (labels != bg_label)).select(1, 0);
  const at::Tensor negative = at::nonzero(labels == bg_label).select(1, 0);
  const int64_t num_pos =
      std::min(positive.numel(), static_cast<int64_t>(static_cast<double>(num_samples) * positive_fraction));
  const int64_t num_neg = std::min(negative.numel(), num_samples - num_pos);
  const auto opts = labels.options().dtype(at::kLong);
  const at::Tensor perm1 = at::randperm(positive.numel(), opts).slice(0, 0, num_pos);
  const at::Tensor perm2 = at::randperm(negative.numel(), opts).slice(0, 0, num_neg);
  return {positive.index_select(0, perm1), negative.index_select(0, perm2)};
}

AnchorGenerator::AnchorGenerator(std::vector<std::vector<double>> sizes, std::vector<double> aspect_ratios,
                                 std::vector<int64_t> strides, double offset)
    : strides_(std::move(strides)), offset_(offset) {
  if (sizes.size() != strides_.size()) throw InputError("anchor_generator", "one list of sizes per stride");
  for (const auto& level : sizes) {
    std::vector<float> v;
    for (double size : level)
      for (double ratio : aspect_ratios) {
        // Area size^2 at aspect ratio h / w.
        const double w = std::sqrt(size * size / ratio), h = ratio * w;
        v.insert(v.end(), {static_cast<float>(-w / 2), static_cast<float>(-h / 2), static_cast<float>(w / 2),
                           static_cast<float>(h / 2)});
      }
    const auto a = static_cast<int64_t>(v.size() / 4);
    cell_anchors_.push_back(at::tensor(v, at::kFloat).view({a, 4}));
  }
  if (num_cell_anchors() < 1) throw InputError("anchor_generator", "needs at least one size and aspect ratio");
  for (const auto& c : cell_anchors_)
    if (c.size(0) != num_cell_anchors())
      throw InputError("anchor_generator", "every level needs the same number of anchors per position");
}

int64_t AnchorGenerator::num_cell_anchors() const {
  return cell_anchors_.empty() ? 0 : cell_anchors_.front().size(0);
}

std::vector<at::Tensor> AnchorGenerator::grid_anchors(const std::vector<std::pair<int64_t, int64_t>>& grid_sizes,
                                                      const at::Device& device) const {
  if (grid_sizes.size() != strides_.size())
    throw InputError("anchor_generator", "got " + std::to_string(grid_sizes.size()) + " feature levels, expected " +
                                             std::to_string(strides_.size()));
  std::vector<at::Tensor> out;
  const auto opts = at::TensorOptions().dtype(at::kFloat).device(device);
  for (size_t l = 0; l < strides_.size(); ++l) {
    const auto s = static_cast<double>(strides_[l]);
    const at::Tensor sx = at::arange(grid_sizes[l].second, opts) * s + offset_ * s;
    const at::Tensor sy = at::arange(grid_sizes[l].first, opts) * s + offset_ * s;
    const auto grid = at::meshgrid({sy, sx}, "ij");
    const at::Tensor x = grid[1].reshape(-1), y = grid[0].reshape(-1);
    const at::Tensor shifts = at::stack({x, y, x, y}, 1);
    out.push_back((shifts.view({-1, 1, 4}) + cell_anchors_[l].to(device).view({1, -1, 4})).reshape({-1, 4}));
  }
  return out;
}

at::Tensor assign_boxes_to_levels(const at::Tensor& boxes, int64_t min_level, int64_t max_level,
                                  double canonical_box_size, int64_t canonical_level) {
  const at::Tensor sizes = at::sqrt(box_area(boxes));
  const at::Tensor levels = at::floor(canonical_level + at::log2(sizes / canonical_box_size + 1e-8));
  return levels.clamp(static_cast<double>(min_level), static_cast<double>(max_level)).to(at::kLong) - min_level;
}

RoiPooler::RoiPooler(int64_t output_size, std::vector<int64_t> strides, int64_t sampling_ratio, bool aligned,
                     double canonical_box_size, int64_t canonical_level)
    : output_size_(output_size),
      sampling_ratio_(sampling_ratio),
      canonical_level_(canonical_level),
      aligned_(aligned),
      canonical_box_size_(canonical_box_size),
      strides_(std::move(strides)) {
  if (strides_.empty()) throw InputError("roi_pooler", "needs at least one level");
  const int64_t s0 = strides_.front();
  if (s0 < 1 || (s0 & (s0 - 1)) != 0) throw InputError("roi_pooler", "strides must be powers of two");
  for (size_t l = 1; l < strides_.size(); ++l)
    if (strides_[l] != 2 * strides_[l - 1]) throw InputError("roi_pooler", "strides must double level to level");
  min_level_ = static_cast<int64_t>(std::llround(std::log2(static_cast<double>(s0))));
  max_level_ = min_level_ + static_cast<int64_t>(strides_.size()) - 1;
}

at::Tensor RoiPooler::forward(const std::vector<at::Tensor>& features, const std::vector<at::Tensor>& boxes) const {
  if (features.size() != strides_.size())
    throw InputError("roi_pooler", "got " + std::to_string(features.size()) + " feature levels, expected " +
                                       std::to_string(strides_.size()));
  if (static_cast<int64_t>(boxes.size()) != features[0].size(0))
    throw InputError("roi_pooler", "one box list per image needed");
  const int64_t s = output_size_, c = features[0].size(1);
  const at::Tensor rois = boxes.empty() ? features[0].new_zeros({0, 5}) : boxes_to_rois(boxes).to(at::kFloat);
  auto pool = [&](size_t l, const at::Tensor& r) {
    return kernels::roi_align(features[l], r, 1.0 / static_cast<double>(strides_[l]), s, s, sampling_ratio_, aligned_);
  };
  if (features.size() == 1) return pool(0, rois);
  const at::Tensor levels = assign_boxes_to_levels(rois.slice(1, 1), min_level_, max_level_, canonical_box_size_,
                                                   canonical_level_);
  at::Tensor out = at::zeros({rois.size(0), c, s, s}, features[0].options());
  for (size_t l = 0; l < features.size(); ++l) {
    const at::Tensor inds = at::nonzero(levels == static_cast<int64_t>(l)).select(1, 0);
    if (inds.numel() == 0) continue;
    out.index_put_({inds}, pool(l, rois.index_select(0, inds)));
  }
  return out;
}

at::Tensor boxes_to_rois(const std::vector<at::Tensor>& boxes) {
  std::vector<at::Tensor> parts;
  for (size_t i = 0; i < boxes.size(); ++i)
    parts.push_back(at::cat({at::full({boxes[i].size(0), 1}, static_cast<double>(i), boxes[i].options()), boxes[i]},
                            1));
  return at::cat(parts, 0);
}

}  // namespace semaim::models::det
