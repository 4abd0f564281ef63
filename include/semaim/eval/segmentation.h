// Semantic-segmentation scores exactly as mmsegmentation's IoUMetric computes them: per-class intersection,
// union, prediction and label areas summed over the whole split (ignored pixels dropped first), then aAcc, and
// mIoU / mAcc as means that leave out classes whose union (IoU) or label area (Acc) is zero.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <string>
#include <vector>

#include "semaim/data/label_map.h"

namespace semaim::eval {

// Scores in percent; a class's IoU / Acc is NaN where it is undefined (zero union / zero label area).
struct SegScores {
  double aacc = 0, miou = 0, macc = 0;
  std::vector<double> iou, acc;
  int64_t images = 0;
};

// Sums of the four areas over every image added. Counts are int64 (mmseg sums float32 histograms, which round
// per-class counts above 2^24 pixels; the means agree to float32 precision).
class SegMetric {
 public:
  // num_classes <= 0: the classes are 0..max label seen (what `segment evaluate` does without --num-classes).
  explicit SegMetric(int64_t num_classes, int64_t ignore_index = data::kIgnoreLabel);

  // One image or a batch. pred, label: (H, W) or (N, H, W) integer class maps of equal shape. Pixels whose
  // label is ignore_index are dropped; values outside 0..K-1 are not counted in any area (torch.histc's range).
  void add(const at::Tensor& pred, const at::Tensor& label);

  // (4, K) int64 rows intersect, union, pred, label: what ranks sum before scoring.
  at::Tensor areas() const;
  void set_areas(const at::Tensor& areas);

  SegScores scores() const;
  int64_t num_classes() const { return static_cast<int64_t>(intersect_.size()); }

 private:
  void grow(int64_t k);
  bool fixed_;
  int64_t ignore_index_;
  std::vector<int64_t> intersect_, union_, pred_, label_;
  int64_t images_ = 0;
};

// The per-class table as mmseg logs it (class, IoU, Acc) followed by aAcc / mIoU / mAcc; names may be empty
// (the index is printed).
std::string format_seg_table(const SegScores& s, const std::vector<std::string>& class_names);

// CSV: class,name,iou,acc rows, then the three summary rows; NaN written as "nan".
std::string seg_scores_csv(const SegScores& s, const std::vector<std::string>& class_names);

// Scores a folder of predicted label PNGs against a folder of ground-truth PNGs (matched by file stem; every
// ground-truth file needs its prediction). reduce_zero_label applies to the ground truth only, as mmseg's
// dataset does. A missing prediction, a size mismatch or an unreadable PNG is an InputError naming the file.
struct LabelFolders {
  std::string pred_dir, gt_dir;
  std::string pred_suffix = ".png", gt_suffix = ".png";
  bool reduce_zero_label = false;
  int64_t num_classes = 0;
  int64_t ignore_index = data::kIgnoreLabel;
};
SegScores evaluate_label_folders(const LabelFolders& f);

}  // namespace semaim::eval
