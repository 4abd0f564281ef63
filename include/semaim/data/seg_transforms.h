// mmseg's training transforms for segmentation as pipeline steps: RandomResize (a scale times a random ratio,
// aspect kept), RandomCrop with cat_max_ratio (it reads the label map through the geometry record) and
// PhotoMetricDistortion. Listed in data.transforms as random_resize, random_crop, photometric.
#pragma once
#include <memory>

#include "semaim/data/transforms.h"

namespace semaim::data {

std::shared_ptr<const GeometryTransform> make_random_resize(const AugmentConfig& cfg);
std::shared_ptr<const GeometryTransform> make_random_crop(const AugmentConfig& cfg);
std::shared_ptr<const PixelTransform> make_photometric();

// mmcv rescale_size with keep_ratio: the factor that fits (h, w) inside the long x short edges of `scale`
// ({long, short} in either order), sizes rounded half up. -> {new_h, new_w}
std::pair<int64_t, int64_t> rescale_keep_ratio(int64_t h, int64_t w, double scale_a, double scale_b);

}  // namespace semaim::data
