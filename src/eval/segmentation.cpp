// mIoU / mAcc / aAcc as mmseg's IoUMetric (intersect_and_union, total_area_to_metrics), and the folder scorer
// behind `semaim segment evaluate`.
#include "semaim/eval/segmentation.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <iomanip>
#include <limits>
#include <sstream>

#include "semaim/core/errors.h"

namespace semaim::eval {
namespace fs = std::filesystem;

SegMetric::SegMetric(int64_t num_classes, int64_t ignore_index)
    : fixed_(num_classes > 0), ignore_index_(ignore_index) {
  if (fixed_) grow(num_classes);
}

void SegMetric::grow(int64_t k) {
  if (k <= num_classes()) return;
  for (auto* v : {&intersect_, &union_, &pred_, &label_}) v->resize(k, 0);
}

namespace {

// Counts of each value 0..k-1 in an int64 vector (values outside are dropped). x: (M) -> (k) int64
std::vector<int64_t> class_counts(const at::Tensor& x, int64_t k) {
  const at::Tensor in_range = x.masked_select((x >= 0) & (x < k));
  const at::Tensor h = at::bincount(in_range, {}, k);
  return std::vector<int64_t>(h.data_ptr<int64_t>(), h.data_ptr<int64_t>() + k);
}

}  // namespace

void SegMetric::add(const at::Tensor& pred, const at::Tensor& label) {
  if (pred.sizes() != label.sizes())
    throw InputError("segmentation metric", "prediction " + c10::str(pred.sizes()) + " and label " +
                                                c10::str(label.sizes()) + " differ in size");
  const at::Tensor l = label.to(at::kLong).reshape(-1), p = pred.to(at::kLong).reshape(-1);
  const at::Tensor keep = l != ignore_index_;
  const at::Tensor lk = l.masked_select(keep), pk = p.masked_select(keep);
  if (!fixed_ && lk.numel()) grow(std::max<int64_t>(lk.max().item<int64_t>() + 1, 1));
  const int64_t k = num_classes();
  const auto hi = class_counts(lk.masked_select(pk == lk), k), hp = class_counts(pk, k), hl = class_counts(lk, k);
  for (int64_t c = 0; c < k; ++c) {
    intersect_[c] += hi[c];
    pred_[c] += hp[c];
    label_[c] += hl[c];
    union_[c] += hp[c] + hl[c] - hi[c];
  }
  images_ += pred.dim() == 3 ? pred.size(0) : 1;
}

at::Tensor SegMetric::areas() const {
  at::Tensor a = at::empty({4, num_classes()}, at::kLong);
  int64_t row = 0;
  for (const auto* v : {&intersect_, &union_, &pred_, &label_})
    std::copy(v->begin(), v->end(), a[row++].data_ptr<int64_t>());
  return a;
}

void SegMetric::set_areas(const at::Tensor& a) {
  if (a.dim() != 2 || a.size(0) != 4 || a.scalar_type() != at::kLong)
    throw InputError("segmentation metric", "areas must be (4, K) int64, got " + c10::str(a.sizes()));
  grow(a.size(1));
  const at::Tensor c = a.contiguous();
  int64_t row = 0;
  for (auto* v : {&intersect_, &union_, &pred_, &label_}) {
    const int64_t* src = c[row++].data_ptr<int64_t>();
    std::copy(src, src + c.size(1), v->begin());
  }
}

SegScores SegMetric::scores() const {
  constexpr double kNan = std::numeric_limits<double>::quiet_NaN();
  SegScores s;
  s.images = images_;
  int64_t hits = 0, labelled = 0;
  double iou_sum = 0, acc_sum = 0;
  int64_t iou_n = 0, acc_n = 0;
  for (int64_t c = 0; c < num_classes(); ++c) {
    hits += intersect_[c];
    labelled += label_[c];
    const double iou = union_[c] ? 100.0 * intersect_[c] / union_[c] : kNan;
    const double acc = label_[c] ? 100.0 * intersect_[c] / label_[c] : kNan;
    s.iou.push_back(iou);
    s.acc.push_back(acc);
    if (union_[c]) iou_sum += iou, ++iou_n;
    if (label_[c]) acc_sum += acc, ++acc_n;
  }
  s.aacc = labelled ? 100.0 * hits / labelled : kNan;
  s.miou = iou_n ? iou_sum / iou_n : kNan;
  s.macc = acc_n ? acc_sum / acc_n : kNan;
  return s;
}

namespace {

std::string class_name(const std::vector<std::string>& names, size_t c) {
  return c < names.size() ? names[c] : std::to_string(c);
}

std::string number(double v, int precision) {
  if (std::isnan(v)) return "nan";
  std::ostringstream o;
  o << std::fixed << std::setprecision(precision) << v;
  return o.str();
}

}  // namespace

std::string format_seg_table(const SegScores& s, const std::vector<std::string>& class_names) {
  size_t width = 5;
  for (size_t c = 0; c < s.iou.size(); ++c) width = std::max(width, class_name(class_names, c).size());
  std::ostringstream o;
  o << std::left << std::setw(static_cast<int>(width)) << "Class" << "    IoU     Acc\n";
  for (size_t c = 0; c < s.iou.size(); ++c)
    o << std::left << std::setw(static_cast<int>(width)) << class_name(class_names, c) << std::right
      << std::setw(7) << number(s.iou[c], 2) << " " << std::setw(7) << number(s.acc[c], 2) << "\n";
  o << "aAcc " << number(s.aacc, 2) << "  mIoU " << number(s.miou, 2) << "  mAcc " << number(s.macc, 2) << "  ("
    << s.images << " images)\n";
  return o.str();
}

std::string seg_scores_csv(const SegScores& s, const std::vector<std::string>& class_names) {
  std::ostringstream o;
  o << "class,name,iou,acc\n";
  for (size_t c = 0; c < s.iou.size(); ++c)
    o << c << "," << class_name(class_names, c) << "," << number(s.iou[c], 6) << "," << number(s.acc[c], 6) << "\n";
  o << "aAcc,," << number(s.aacc, 6) << ",\nmIoU,," << number(s.miou, 6) << ",\nmAcc,," << number(s.macc, 6)
    << ",\n";
  return o.str();
}

SegScores evaluate_label_folders(const LabelFolders& f) {
  for (const auto* d : {&f.pred_dir, &f.gt_dir})
    if (!fs::is_directory(*d)) throw InputError(*d, "not a directory");
  std::vector<fs::path> gts;
  for (const auto& e : fs::directory_iterator(f.gt_dir))
    if (e.is_regular_file() && e.path().filename().string().ends_with(f.gt_suffix)) gts.push_back(e.path());
  std::sort(gts.begin(), gts.end());
  if (gts.empty()) throw InputError(f.gt_dir, "no ground-truth files ending in '" + f.gt_suffix + "'");
  SegMetric metric(f.num_classes, f.ignore_index);
  for (const auto& gt_path : gts) {
    const std::string name = gt_path.filename().string();
    const std::string stem = name.substr(0, name.size() - f.gt_suffix.size());
    const fs::path pred_path = fs::path(f.pred_dir) / (stem + f.pred_suffix);
    if (!fs::exists(pred_path))
      throw InputError(pred_path.string(), "missing: every ground-truth file needs a prediction (" +
                                               gt_path.string() + ")");
    at::Tensor gt = data::read_label_map(gt_path.string());
    if (f.reduce_zero_label) gt = data::reduce_zero_label(gt);
    const at::Tensor pred = data::read_label_map(pred_path.string());
    if (pred.sizes() != gt.sizes())
      throw InputError(pred_path.string(), "prediction is " + c10::str(pred.sizes()) + " but " +
                                               gt_path.string() + " is " + c10::str(gt.sizes()));
    metric.add(pred, gt);
  }
  return metric.scores();
}

}  // namespace semaim::eval
