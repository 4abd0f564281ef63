// Detection inference on decoded images as detectron2's ViTDet evaluation runs it: the test resize (longer side to
// detect.image_size, padded to a square), the model, detector_postprocess (boxes back to the original image,
// masks pasted at its size), and the COCO results form (instances_to_coco_json).
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

#include "semaim/data/dataset.h"
#include "semaim/eval/coco_eval.h"
#include "semaim/models/heads/mask_rcnn.h"
#include "semaim/tasks/detect_settings.h"

namespace semaim::tasks {

// One image's detections in its original pixels.
struct ImageDetections {
  int64_t index = 0;         // the dataset's sample index
  int64_t height = 0, width = 0;  // the original image size
  at::Tensor boxes;          // (D, 4) float32 xyxy, clipped to the image
  at::Tensor scores;         // (D) float32
  at::Tensor classes;        // (D) int64 contiguous ids
  at::Tensor masks;          // (D, height, width) bool, undefined without masks
};

// Samples [begin, end) of `set` through the test transform and `model` in batches of s.eval_batch (bf16 autocast
// when asked), back in original pixels. A sample that does not decode is skipped and counted in *bad (with
// data.on_bad_image: fail it is an InputError).
std::vector<ImageDetections> detect_images(models::MaskRcnn& model, const data::Dataset& set, int64_t begin,
                                           int64_t end, const DetectSettings& s, const at::Device& device, bool bf16,
                                           int64_t* bad);

// One image's model output (input pixels of the (resized) content at `content` size) mapped onto the original
// (height, width) image as detectron2's detector_postprocess: boxes scaled and clipped, empty boxes dropped, masks
// pasted at the original size and thresholded at 0.5.
ImageDetections postprocess(const models::det::Detections& d, int64_t content_h, int64_t content_w, int64_t height,
                            int64_t width);

// COCO results (detectron2 instances_to_coco_json): image_id, category_id, bbox [x, y, w, h], score and, with masks,
// the RLE segmentation; area as pycocotools' loadRes sets it for results with boxes (w * h). category_ids maps
// contiguous ids to the dataset's.
std::vector<eval::CocoDetection> coco_detections(const ImageDetections& d, int64_t image_id,
                                                 const std::vector<int64_t>& category_ids);

}  // namespace semaim::tasks
