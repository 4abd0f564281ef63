// Detection inference on decoded images (detect_inference.h): detectron2's test mapper (ResizeShortestEdge with
// max size, square pad), detector_postprocess and instances_to_coco_json.
#include "semaim/tasks/detect_inference.h"

#include <algorithm>
#include <random>

#include "semaim/core/errors.h"
#include "semaim/core/log.h"
#include "semaim/data/coco_mask.h"
#include "semaim/data/decode.h"
#include "semaim/data/det_transforms.h"
#include "semaim/data/transforms.h"
#include "semaim/engine/autocast.h"
#include "semaim/models/heads/roi_heads.h"

namespace semaim::tasks {
namespace {

data::Pipeline test_pipeline(const DetectSettings& s) {
  data::AugmentConfig a;
  a.out_size = s.lsj.size;
  a.random = false;
  a.hflip = 0.0;
  a.mean = s.mean;
  a.std = s.std;
  a.interpolation = "bilinear";  // detectron2's ResizeShortestEdge resizes with PIL's bilinear
  a.transforms = {"resize_fit", "normalize"};
  return data::Pipeline::build(a, 3);
}

struct Pending {
  int64_t index;
  data::Geometry g;
};

void run_batch(models::MaskRcnn& model, const at::Tensor& images, const std::vector<Pending>& pending,
               const at::Device& device, bool bf16, std::vector<ImageDetections>& out) {
  std::vector<models::det::ImageSize> sizes;
  for (const auto& p : pending) sizes.push_back({p.g.window.height, p.g.window.width});
  std::vector<models::det::Detections> dets;
  {
    engine::AutocastGuard ac(device.type(), bf16);
    dets = model->inference(images.to(device), sizes);
  }
  for (size_t k = 0; k < pending.size(); ++k) {
    models::det::Detections d = dets[k];
    d.boxes = d.boxes.to(at::kCPU, at::kFloat);
    d.scores = d.scores.to(at::kCPU, at::kFloat);
    d.classes = d.classes.to(at::kCPU);
    if (d.masks.defined()) d.masks = d.masks.to(at::kCPU, at::kFloat);
    const data::Geometry& g = pending[k].g;
    ImageDetections r = postprocess(d, g.resize_h, g.resize_w, g.src_h, g.src_w);
    r.index = pending[k].index;
    out.push_back(std::move(r));
  }
}

}  // namespace

std::vector<ImageDetections> detect_images(models::MaskRcnn& model, const data::Dataset& set, int64_t begin,
                                           int64_t end, const DetectSettings& s, const at::Device& device, bool bf16,
                                           int64_t* bad) {
  const data::Pipeline pipe = test_pipeline(s);
  const int64_t side = pipe.out_size(), per_image = 3 * side * side;
  const bool was_training = model->is_training();
  model->eval();
  at::NoGradGuard no_grad;
  std::mt19937_64 rng(0);  // the test transform draws nothing
  std::vector<ImageDetections> out;
  at::Tensor images = at::zeros({s.eval_batch, 3, side, side});
  std::vector<Pending> pending;
  *bad = 0;
  for (int64_t i = begin; i < end; ++i) {
    const int64_t slot = static_cast<int64_t>(pending.size());
    try {
      const data::Geometry g = set.load_into(i, pipe, rng, images.data_ptr<float>() + slot * per_image);
      pending.push_back({i, g});
    } catch (const data::BadImage& e) {
      if (s.fail_on_bad_image) throw InputError(std::string(e.what()) + " (data.on_bad_image: fail)");
      core::log_warn(std::string("detection skips a bad image: ") + e.what());
      ++*bad;
    }
    if (static_cast<int64_t>(pending.size()) == s.eval_batch || (i + 1 == end && !pending.empty())) {
      run_batch(model, images.narrow(0, 0, static_cast<int64_t>(pending.size())), pending, device, bf16, out);
      pending.clear();
    }
  }
  model->train(was_training);
  return out;
}

ImageDetections postprocess(const models::det::Detections& d, int64_t content_h, int64_t content_w, int64_t height,
                            int64_t width) {
  ImageDetections r;
  r.height = height;
  r.width = width;
  const double sx = static_cast<double>(width) / static_cast<double>(content_w);
  const double sy = static_cast<double>(height) / static_cast<double>(content_h);
  at::Tensor boxes = d.boxes.clone();
  boxes.select(1, 0).mul_(sx).clamp_(0, static_cast<double>(width));
  boxes.select(1, 2).mul_(sx).clamp_(0, static_cast<double>(width));
  boxes.select(1, 1).mul_(sy).clamp_(0, static_cast<double>(height));
  boxes.select(1, 3).mul_(sy).clamp_(0, static_cast<double>(height));
  // detectron2 Boxes.nonempty: both sides longer than 0.
  const at::Tensor keep = ((boxes.select(1, 2) - boxes.select(1, 0)) > 0) & ((boxes.select(1, 3) - boxes.select(1, 1)) > 0);
  r.boxes = boxes.index({keep});
  r.scores = d.scores.index({keep});
  r.classes = d.classes.index({keep});
  if (d.masks.defined())
    r.masks = models::det::paste_masks(d.masks.index({keep}), r.boxes, height, width, 0.5);
  return r;
}

std::vector<eval::CocoDetection> coco_detections(const ImageDetections& d, int64_t image_id,
                                                 const std::vector<int64_t>& category_ids) {
  std::vector<eval::CocoDetection> out;
  const int64_t n = d.boxes.size(0);
  const auto boxes = d.boxes.accessor<float, 2>();
  const auto scores = d.scores.accessor<float, 1>();
  const auto classes = d.classes.accessor<int64_t, 1>();
  for (int64_t k = 0; k < n; ++k) {
    const int64_t c = classes[k];
    if (c < 0 || c >= static_cast<int64_t>(category_ids.size()))
      throw RuntimeFailure("a detection of class " + std::to_string(c) + " beyond the " +
                           std::to_string(category_ids.size()) + " categories");
    eval::CocoDetection e;
    e.image_id = image_id;
    e.category_id = category_ids[static_cast<size_t>(c)];
    e.score = scores[k];
    // detectron2 converts the float32 boxes to XYWH in float32, then to Python floats.
    const float w = boxes[k][2] - boxes[k][0], h = boxes[k][3] - boxes[k][1];
    e.bbox = {boxes[k][0], boxes[k][1], w, h};
    e.area = static_cast<double>(w) * static_cast<double>(h);
    if (d.masks.defined()) e.segmentation = data::coco::rle_from_mask(d.masks[k]);
    out.push_back(std::move(e));
  }
  return out;
}

}  // namespace semaim::tasks
