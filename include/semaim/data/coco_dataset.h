// COCO instances datasets (detectron2's load_coco_json + DatasetMapper): the instances JSON and an image
// folder; boxes xywh -> xyxy, masks rasterized from polygons / RLE as pycocotools' annToRLE does.
#pragma once
#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "semaim/data/coco_mask.h"
#include "semaim/data/dataset.h"

namespace semaim::data {

// One image entry of the JSON.
struct CocoImage {
  int64_t id = 0;
  std::string file_name;
  int64_t height = 0, width = 0;
};

// One annotation as kept: bbox clipped to the image, category as its contiguous index.
struct CocoAnnotation {
  int64_t id = 0;
  int64_t category = 0;          // contiguous id 0..K-1
  std::array<double, 4> bbox{};  // x, y, w, h in pixels, clipped to the image
  double area = 0;               // the JSON's (COCO: the mask's area); absent: the box's
  bool iscrowd = false;
  bool has_segmentation = false;
  std::vector<std::vector<double>> polygons;  // [x0, y0, x1, y1, ...] each; empty for an RLE
  coco::Rle rle;                              // the RLE segmentation (compressed or not), when not polygons
};

// The annotation's mask as an RLE of its (h, w) image: polygons rasterized and merged as pycocotools'
// annToRLE does, or its RLE. Empty (all zeros) when it has no segmentation.
coco::Rle annotation_rle(const CocoAnnotation& a, int64_t h, int64_t w);

struct CocoOptions {
  // Training: an image without a non-crowd annotation is not a sample (detectron2's
  // filter_empty_annotations). Evaluation keeps every image.
  bool skip_empty = true;
  // How far (pixels, and as a fraction of the image side, whichever is larger) a bbox or polygon point may
  // lie outside its image before the file is called malformed; within it, boxes are clipped and counted.
  double tolerance_px = 2.0;
  double tolerance_frac = 0.02;
};

// What was dropped or changed while reading (one warning lists the non-zero counts).
struct CocoStats {
  int64_t clipped_boxes = 0;         // boxes reaching out of the image within the tolerance
  int64_t dropped_empty_boxes = 0;   // annotations whose box has no area after clipping
  int64_t dropped_bad_polygons = 0;  // annotations left without a polygon of 3 points or more
  int64_t skipped_images = 0;        // images without a non-crowd annotation (skip_empty)
};

// <root>/annotations/instances_<split>.json with the images in <root>/<split>; COCO 2017's names
// (<split>2017, instances_<split>2017.json) when that folder exists. split: train | val.
struct CocoLayout {
  std::string annotations, image_dir;
};
CocoLayout coco_layout(const std::string& root, const std::string& split);

// The samples are the JSON's images (sorted by id; only those with a non-crowd annotation under skip_empty),
// each with a Target of its non-crowd annotations: boxes (G, 4) xyxy, box_classes (G), masks (G, H, W) uint8
// when the annotations carry segmentations. Crowd annotations are kept (annotations(i)) but never targets.
// Malformed JSON, a missing key or wrong type, an unknown image or category id, a bbox or polygon point
// outside its image beyond the tolerance, an empty polygon list or an RLE of the wrong size is an InputError
// naming the file and the annotation id. Zero-area boxes and annotations without a polygon of 3 points are
// dropped and counted (stats()); an image file that does not decode or differs in size from the JSON is a
// BadImage.
class CocoDataset final : public Dataset {
 public:
  CocoDataset(std::string json_path, std::string image_dir, CocoOptions options = {});

  const std::string& name() const override { return json_path_; }
  int64_t size() const override { return static_cast<int64_t>(samples_.size()); }
  int64_t channels() const override { return 3; }
  int64_t label(int64_t) const override { return -1; }
  // Category names, index = contiguous id.
  const std::vector<std::string>& classes() const override { return classes_; }
  std::string source(int64_t i) const override;
  Target target(int64_t i) const override;
  Geometry load_into(int64_t i, const Pipeline& pipeline, std::mt19937_64& rng, float* dst) const override;
  Geometry load_with_target(int64_t i, const Pipeline& pipeline, std::mt19937_64& rng, float* dst,
                            Target* target) const override;

  // Sample i's image entry (COCO id, file name, original size) and every kept annotation of it, crowd
  // included.
  const CocoImage& image(int64_t i) const;
  const std::vector<CocoAnnotation>& annotations(int64_t i) const;
  // The COCO category id of each contiguous id (sorted ids, as detectron2 maps them) and back (-1: unknown).
  const std::vector<int64_t>& category_ids() const { return category_ids_; }
  int64_t contiguous_id(int64_t category_id) const;
  bool has_masks() const { return has_masks_; }
  const CocoStats& stats() const { return stats_; }
  const std::string& image_dir() const { return image_dir_; }

 private:
  std::string json_path_, image_dir_;
  std::vector<CocoImage> images_;                       // sorted by id
  std::vector<std::vector<CocoAnnotation>> per_image_;  // parallel to images_
  std::vector<int64_t> samples_;                        // sample -> index into images_
  std::vector<int64_t> category_ids_;
  std::vector<std::string> classes_;
  bool has_masks_ = false;
  CocoStats stats_;
  std::shared_ptr<FileDataset> files_;  // the samples' image files, for decoding
};

}  // namespace semaim::data
