// COCO detection / instance segmentation evaluation as pycocotools' COCOeval (evaluate, accumulate,
// summarize) defines it for iouType 'bbox' and 'segm', with the ground truth and results read as COCO() and
// loadRes read them.
#pragma once
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "semaim/data/coco_mask.h"

namespace semaim::eval {

enum class CocoIouType { kBbox, kSegm };

// "bbox" | "segm" (InputError naming `where` otherwise).
CocoIouType parse_coco_iou_type(const std::string& s, const std::string& where = "iou_type");

struct CocoImage {
  int64_t id = 0;
  int64_t height = -1, width = -1;  // -1 = absent (then polygons of this image cannot be rasterized)
};

struct CocoCategory {
  int64_t id = 0;
  std::string name;
};

// One ground-truth annotation; `rle` is filled only when loaded for segm, `bbox` whenever the file has it (a
// ground truth loaded for segm scores boxes too).
struct CocoAnnotation {
  int64_t id = 0, image_id = 0, category_id = 0;
  double area = 0;
  bool iscrowd = false;
  std::array<double, 4> bbox{};  // x, y, w, h
  data::coco::Rle rle;
};

struct CocoGroundTruth {
  std::vector<CocoImage> images;         // file order
  std::vector<CocoCategory> categories;  // file order
  std::vector<CocoAnnotation> annotations;
};

// One detection as loadRes leaves it. `area` is w*h when the results carry boxes, else the mask's area;
// `segmentation` is needed for segm (write_coco_results writes it when present).
struct CocoDetection {
  int64_t image_id = 0, category_id = 0;
  double score = 0;
  std::array<double, 4> bbox{};  // x, y, w, h
  double area = 0;
  std::optional<data::coco::Rle> segmentation;
};

// Reads an instances JSON (images, annotations, categories). Polygons, uncompressed and compressed RLE become
// RLEs when `iou_type` is segm (annToRLE). Malformed JSON, missing keys, wrong types, duplicate annotation
// ids and annotations of unknown images or categories throw InputError naming the file and the annotation
// index.
CocoGroundTruth load_coco_ground_truth(const std::string& path, CocoIouType iou_type);

// Reads a results JSON (a list of {image_id, category_id, score, bbox | segmentation}) as loadRes does: when
// the first result has a non-empty bbox every result needs one (area = w*h; for segm a missing segmentation
// is the box's polygon), otherwise every result needs a compressed RLE segmentation (area and bbox from it).
// A result of an unknown image or category, or a malformed one, throws InputError naming the file and the
// result index.
std::vector<CocoDetection> load_coco_results(const std::string& path, const CocoGroundTruth& gt,
                                             CocoIouType iou_type);

// Writes detections as a COCO results JSON, atomically (segmentation as compressed RLE when present).
void write_coco_results(const std::string& path, const std::vector<CocoDetection>& detections);

struct CocoEvalResult {
  // AP, AP50, AP75, AP small/medium/large, AR@1, AR@10, AR@100, AR small/medium/large (COCOeval.stats)
  std::array<double, 12> stats{};
  std::vector<CocoCategory> categories;  // sorted by id, as params.catIds
  // Per category: mean precision over IoU thresholds and recall points (area all, 100 detections), NaN when
  // the category has no ground truth.
  std::vector<double> category_ap;
  std::vector<double>
      precision;               // (T=10, R=101, K, A=4, M=3) row-major, -1 where undefined (eval['precision'])
  std::vector<double> recall;  // (T, K, A, M)
};

// COCOeval(gt, dt, iou_type).evaluate(); accumulate(); summarize() without printing. Every detection's image
// and category must be in `gt` (InputError otherwise); segm needs every detection's segmentation.
CocoEvalResult coco_evaluate(const CocoGroundTruth& gt, const std::vector<CocoDetection>& detections,
                             CocoIouType iou_type);

// The 12 lines COCOeval.summarize() prints, each ending in '\n'.
std::string coco_summary_text(const CocoEvalResult& r);
// A table of the per-category AP (name, id, AP as %0.3f; "nan" for a category without ground truth).
std::string coco_category_ap_text(const CocoEvalResult& r);

}  // namespace semaim::eval
