// COCO run-length encoded masks as pycocotools' maskApi.c defines them: column-major runs starting with
// zeros, the compressed string form (LEB128-like, 5 bits per char, delta against the run two back), polygon
// rasterization (rleFrPoly), merge, area, bounding box and IoU with crowd handling.
#pragma once
#include <ATen/ATen.h>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace semaim::data::coco {

// A binary mask of h x w pixels as alternating run lengths in column-major (Fortran) order, zeros first.
struct Rle {
  int64_t h = 0, w = 0;
  std::vector<uint32_t> counts;
  bool operator==(const Rle&) const = default;
};

// mask: (H, W) uint8/bool, nonzero = inside -> Rle (pycocotools rleEncode)
Rle rle_from_mask(const at::Tensor& mask);
// -> (H, W) uint8 of 0/1 (rleDecode)
at::Tensor rle_to_mask(const Rle& rle);
// The compressed counts string of pycocotools (rleToString) and back (rleFrString). A malformed string throws
// InputError naming `where`.
std::string rle_to_string(const Rle& rle);
Rle rle_from_string(const std::string& s, int64_t h, int64_t w, const std::string& where = "rle");
// An uncompressed RLE (a list of counts, as the JSON's iscrowd annotations carry) checked to sum to h*w
// (InputError naming `where` otherwise).
Rle rle_from_counts(const std::vector<uint32_t>& counts, int64_t h, int64_t w,
                    const std::string& where = "rle");
// One polygon [x0, y0, x1, y1, ...] in pixel coordinates rasterized as rleFrPoly does (upsampled by 5,
// rounded).
Rle rle_from_polygon(const std::vector<double>& xy, int64_t h, int64_t w);
// Several polygons of one object: each rasterized, then merged by union (pycocotools frPyObjects + merge). As
// frPyObjects, the first polygon must have more than 4 numbers (InputError otherwise); later ones may be
// shorter.
Rle rle_from_polygons(const std::vector<std::vector<double>>& polygons, int64_t h, int64_t w);
// Union (or intersection) of masks of one size (rleMerge).
Rle rle_merge(const std::vector<Rle>& rles, bool intersect = false);
// Pixels inside (rleArea).
uint64_t rle_area(const Rle& rle);
// [x, y, w, h] of the mask's pixels (rleToBbox).
std::array<double, 4> rle_to_bbox(const Rle& rle);

// IoU of every detection with every ground truth (pycocotools maskApi rleIou / bbIou): for a crowd ground
// truth the union is the detection's own area. -> row-major (dt.size() x gt.size())
std::vector<double> rle_iou(const std::vector<Rle>& dt, const std::vector<Rle>& gt,
                            const std::vector<uint8_t>& iscrowd);
// boxes [x, y, w, h] -> row-major (dt.size() x gt.size())
std::vector<double> box_iou_xywh(const std::vector<std::array<double, 4>>& dt,
                                 const std::vector<std::array<double, 4>>& gt,
                                 const std::vector<uint8_t>& iscrowd);

}  // namespace semaim::data::coco
