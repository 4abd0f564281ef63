// COCO instances datasets: the JSON read as detectron2's load_coco_json reads it (sorted category ids ->
// contiguous ids, polygons of fewer than 3 points filtered), targets as its DatasetMapper builds them (crowd
// annotations left out, masks from pycocotools' annToRLE through coco_mask.h).
#include "semaim/data/coco_dataset.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>

#include "semaim/core/errors.h"
#include "semaim/core/log.h"
#include "semaim/data/decode.h"

namespace semaim::data {
namespace fs = std::filesystem;
using json = nlohmann::json;

CocoLayout coco_layout(const std::string& root, const std::string& split) {
  const fs::path r(root);
  if (fs::is_directory(r / (split + "2017")))
    return {(r / "annotations" / ("instances_" + split + "2017.json")).string(),
            (r / (split + "2017")).string()};
  return {(r / "annotations" / ("instances_" + split + ".json")).string(), (r / split).string()};
}

namespace {

// The JSON being read and where in it: every fault names the file and the entry.
struct Reader {
  const std::string& file;
  const CocoOptions& opt;
  [[noreturn]] void fail(const std::string& entry, const std::string& fault) const {
    throw InputError(file, entry + ": " + fault);
  }
  const json& member(const json& obj, const char* key, const std::string& entry) const {
    if (!obj.is_object()) fail(entry, "is not a JSON object");
    const auto it = obj.find(key);
    if (it == obj.end()) fail(entry, std::string("has no \"") + key + "\"");
    return *it;
  }
  int64_t integer(const json& v, const std::string& what, const std::string& entry) const {
    if (v.is_number_unsigned() &&
        v.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      fail(entry, what + " is out of range");
    if (!v.is_number_integer()) fail(entry, what + " must be an integer, got " + std::string(v.type_name()));
    return v.get<int64_t>();
  }
  double number(const json& v, const std::string& what, const std::string& entry) const {
    if (!v.is_number()) fail(entry, what + " must be a number, got " + std::string(v.type_name()));
    const double d = v.get<double>();
    if (!std::isfinite(d)) fail(entry, what + " is not finite");
    return d;
  }
  const json& array(const json& obj, const char* key, const std::string& entry) const {
    const json& v = member(obj, key, entry);
    if (!v.is_array()) fail(entry, std::string("\"") + key + "\" must be an array");
    return v;
  }
  double tolerance(int64_t side) const {
    return std::max(opt.tolerance_px, opt.tolerance_frac * static_cast<double>(side));
  }
};

json read_json(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(path, "cannot open the COCO annotation file");
  std::stringstream text;
  text << in.rdbuf();
  try {
    return json::parse(text.str());
  } catch (const json::exception& e) {
    throw InputError(path, std::string("malformed JSON: ") + e.what());
  }
}

std::vector<CocoImage> read_images(const Reader& r, const json& root) {
  std::vector<CocoImage> images;
  const json& list = r.array(root, "images", "the file");
  for (size_t k = 0; k < list.size(); ++k) {
    const std::string entry = "images[" + std::to_string(k) + "]";
    CocoImage im;
    im.id = r.integer(r.member(list[k], "id", entry), "id", entry);
    const json& name = r.member(list[k], "file_name", entry);
    if (!name.is_string() || name.get<std::string>().empty())
      r.fail(entry, "file_name must be a non-empty string");
    im.file_name = name.get<std::string>();
    im.height = r.integer(r.member(list[k], "height", entry), "height", entry);
    im.width = r.integer(r.member(list[k], "width", entry), "width", entry);
    if (im.height < 1 || im.width < 1 || im.height > kMaxImagePixels / im.width)
      r.fail(entry, "size " + std::to_string(im.width) + "x" + std::to_string(im.height) +
                        " is empty or over " + std::to_string(kMaxImagePixels) + " pixels");
    images.push_back(std::move(im));
  }
  std::sort(images.begin(), images.end(), [](const CocoImage& a, const CocoImage& b) { return a.id < b.id; });
  for (size_t k = 1; k < images.size(); ++k)
    if (images[k].id == images[k - 1].id) r.fail("image id " + std::to_string(images[k].id), "appears twice");
  return images;
}

// -> category ids sorted (contiguous id = position) and their names.
std::pair<std::vector<int64_t>, std::vector<std::string>> read_categories(const Reader& r, const json& root) {
  const json& list = r.array(root, "categories", "the file");
  std::vector<std::pair<int64_t, std::string>> cats;
  for (size_t k = 0; k < list.size(); ++k) {
    const std::string entry = "categories[" + std::to_string(k) + "]";
    const int64_t id = r.integer(r.member(list[k], "id", entry), "id", entry);
    const json& name = r.member(list[k], "name", entry);
    if (!name.is_string()) r.fail(entry, "name must be a string");
    cats.emplace_back(id, name.get<std::string>());
  }
  std::sort(cats.begin(), cats.end());
  std::pair<std::vector<int64_t>, std::vector<std::string>> out;
  for (size_t k = 0; k < cats.size(); ++k) {
    if (k > 0 && cats[k].first == cats[k - 1].first)
      r.fail("category id " + std::to_string(cats[k].first), "appears twice");
    out.first.push_back(cats[k].first);
    out.second.push_back(cats[k].second);
  }
  return out;
}

// Polygons of an annotation: each a flat list of an even number (>= 2) of coordinates within the image's
// tolerance. Those of fewer than 3 points are left out (detectron2's filter).
std::vector<std::vector<double>> read_polygons(const Reader& r, const json& seg, const CocoImage& im,
                                               const std::string& entry) {
  if (seg.empty()) r.fail(entry, "segmentation is an empty polygon list");
  const double tx = r.tolerance(im.width), ty = r.tolerance(im.height);
  std::vector<std::vector<double>> out;
  for (const json& poly : seg) {
    if (!poly.is_array()) r.fail(entry, "a polygon must be an array of coordinates");
    if (poly.empty()) r.fail(entry, "segmentation holds an empty polygon");
    if (poly.size() % 2 != 0) r.fail(entry, "a polygon has an odd number of coordinates");
    std::vector<double> xy;
    for (size_t j = 0; j < poly.size(); ++j) {
      const double v = r.number(poly[j], "a polygon coordinate", entry);
      const double side = static_cast<double>(j % 2 == 0 ? im.width : im.height), tol = j % 2 == 0 ? tx : ty;
      if (v < -tol || v > side + tol)
        r.fail(entry, "polygon point coordinate " + std::to_string(v) + " lies outside the " +
                          std::to_string(im.width) + "x" + std::to_string(im.height) + " image");
      xy.push_back(v);
    }
    if (xy.size() >= 6) out.push_back(std::move(xy));
  }
  return out;
}

coco::Rle read_rle(const Reader& r, const json& seg, const CocoImage& im, const std::string& entry) {
  const json& size = r.member(seg, "size", entry + " segmentation");
  if (!size.is_array() || size.size() != 2) r.fail(entry, "RLE size must be [height, width]");
  const int64_t h = r.integer(size[0], "RLE height", entry), w = r.integer(size[1], "RLE width", entry);
  if (h != im.height || w != im.width)
    r.fail(entry, "RLE size " + std::to_string(h) + "x" + std::to_string(w) + " differs from its image's " +
                      std::to_string(im.height) + "x" + std::to_string(im.width));
  const json& counts = r.member(seg, "counts", entry + " segmentation");
  const std::string where = r.file + ": " + entry;
  if (counts.is_string()) return coco::rle_from_string(counts.get<std::string>(), h, w, where);
  if (!counts.is_array()) r.fail(entry, "RLE counts must be a string or an array of run lengths");
  std::vector<uint32_t> runs;
  for (const json& c : counts) {
    const int64_t v = r.integer(c, "an RLE count", entry);
    if (v < 0 || v > std::numeric_limits<uint32_t>::max()) r.fail(entry, "an RLE count is out of range");
    runs.push_back(static_cast<uint32_t>(v));
  }
  return coco::rle_from_counts(runs, h, w, where);
}

// The bbox clipped to the image; false when nothing of it is left. Reaching out beyond the tolerance fails.
bool read_bbox(const Reader& r, const json& a, const CocoImage& im, const std::string& entry,
               CocoAnnotation& ann, CocoStats& stats) {
  const json& b = r.member(a, "bbox", entry);
  if (!b.is_array() || b.size() != 4) r.fail(entry, "bbox must be [x, y, width, height]");
  std::array<double, 4> v{};
  for (size_t j = 0; j < 4; ++j) v[j] = r.number(b[j], "bbox", entry);
  if (v[2] < 0 || v[3] < 0) r.fail(entry, "bbox has a negative width or height");
  const auto W = static_cast<double>(im.width), H = static_cast<double>(im.height);
  const double tx = r.tolerance(im.width), ty = r.tolerance(im.height);
  if (v[0] < -tx || v[1] < -ty || v[0] + v[2] > W + tx || v[1] + v[3] > H + ty) {
    std::ostringstream os;
    os << "bbox [" << v[0] << ", " << v[1] << ", " << v[2] << ", " << v[3] << "] lies outside the "
       << im.width << "x" << im.height << " image";
    r.fail(entry, os.str());
  }
  const double x0 = std::clamp(v[0], 0.0, W), y0 = std::clamp(v[1], 0.0, H);
  const double x1 = std::clamp(v[0] + v[2], 0.0, W), y1 = std::clamp(v[1] + v[3], 0.0, H);
  if (x0 != v[0] || y0 != v[1] || x1 != v[0] + v[2] || y1 != v[1] + v[3]) ++stats.clipped_boxes;
  ann.bbox = {x0, y0, x1 - x0, y1 - y0};
  if (!(x1 > x0 && y1 > y0)) {
    ++stats.dropped_empty_boxes;
    return false;
  }
  return true;
}

// The annotation's segmentation into ann; false when it is left without a usable polygon.
bool read_segmentation(const Reader& r, const json& a, const CocoImage& im, const std::string& entry,
                       CocoAnnotation& ann, CocoStats& stats) {
  const auto it = a.find("segmentation");
  if (it == a.end() || it->is_null()) return true;
  ann.has_segmentation = true;
  if (it->is_array()) {
    ann.polygons = read_polygons(r, *it, im, entry);
    if (ann.polygons.empty()) {
      ++stats.dropped_bad_polygons;
      return false;
    }
  } else if (it->is_object()) {
    ann.rle = read_rle(r, *it, im, entry);
  } else {
    r.fail(entry, "segmentation must be a list of polygons or an RLE object");
  }
  return true;
}

struct Index {
  const std::vector<CocoImage>& images;
  const std::vector<int64_t>& category_ids;
};

int64_t find_sorted(const std::vector<int64_t>& ids, int64_t id) {
  const auto it = std::lower_bound(ids.begin(), ids.end(), id);
  return it != ids.end() && *it == id ? it - ids.begin() : -1;
}

int64_t find_image(const std::vector<CocoImage>& images, int64_t id) {
  const auto it = std::lower_bound(images.begin(), images.end(), id,
                                   [](const CocoImage& im, int64_t v) { return im.id < v; });
  return it != images.end() && it->id == id ? it - images.begin() : -1;
}

// One annotation into per_image (or counted as dropped).
void read_annotation(const Reader& r, const json& a, size_t k, const Index& idx, std::set<int64_t>& seen_ids,
                     std::vector<std::vector<CocoAnnotation>>& per_image, CocoStats& stats) {
  CocoAnnotation ann;
  ann.id = r.integer(r.member(a, "id", "annotations[" + std::to_string(k) + "]"), "id",
                     "annotations[" + std::to_string(k) + "]");
  const std::string entry = "annotation id " + std::to_string(ann.id);
  if (!seen_ids.insert(ann.id).second) r.fail(entry, "appears twice");
  const int64_t image_id = r.integer(r.member(a, "image_id", entry), "image_id", entry);
  const int64_t image = find_image(idx.images, image_id);
  if (image < 0) r.fail(entry, "unknown image id " + std::to_string(image_id));
  const int64_t category_id = r.integer(r.member(a, "category_id", entry), "category_id", entry);
  ann.category = find_sorted(idx.category_ids, category_id);
  if (ann.category < 0) r.fail(entry, "unknown category id " + std::to_string(category_id));
  if (const auto c = a.find("iscrowd"); c != a.end()) {
    if (c->is_boolean()) {
      ann.iscrowd = c->get<bool>();
    } else {
      const int64_t v = r.integer(*c, "iscrowd", entry);
      if (v != 0 && v != 1) r.fail(entry, "iscrowd must be 0 or 1");
      ann.iscrowd = v == 1;
    }
  }
  const CocoImage& im = idx.images[static_cast<size_t>(image)];
  const bool box_ok = read_bbox(r, a, im, entry, ann, stats);
  ann.area = ann.bbox[2] * ann.bbox[3];
  if (const auto ar = a.find("area"); ar != a.end()) {
    ann.area = r.number(*ar, "area", entry);
    if (ann.area < 0) r.fail(entry, "area is negative");
  }
  CocoStats seg_stats;
  const bool seg_ok = read_segmentation(r, a, im, entry, ann, seg_stats);
  if (!box_ok) return;  // dropped already: its polygons are not counted again
  stats.dropped_bad_polygons += seg_stats.dropped_bad_polygons;
  if (!seg_ok) return;
  per_image[static_cast<size_t>(image)].push_back(std::move(ann));
}

std::string stats_text(const CocoStats& s) {
  std::string t;
  auto add = [&](int64_t n, const char* what) {
    if (n > 0) t += (t.empty() ? "" : ", ") + std::to_string(n) + " " + what;
  };
  add(s.clipped_boxes, "boxes clipped to their image");
  add(s.dropped_empty_boxes, "annotations dropped for a box without area");
  add(s.dropped_bad_polygons, "annotations dropped for want of a polygon of 3 points");
  return t;
}

}  // namespace

CocoDataset::CocoDataset(std::string json_path, std::string image_dir, CocoOptions options)
    : json_path_(std::move(json_path)), image_dir_(std::move(image_dir)) {
  const json root = read_json(json_path_);
  const Reader r{json_path_, options};
  if (!root.is_object()) throw InputError(json_path_, "the COCO file must hold a JSON object");
  images_ = read_images(r, root);
  std::tie(category_ids_, classes_) = read_categories(r, root);
  per_image_.resize(images_.size());
  const json& anns = r.array(root, "annotations", "the file");
  std::set<int64_t> seen_ids;
  for (size_t k = 0; k < anns.size(); ++k)
    read_annotation(r, anns[k], k, Index{images_, category_ids_}, seen_ids, per_image_, stats_);
  // Masks are a part of every target or of none: segmentations on some training annotations only are a fault.
  const CocoAnnotation* with = nullptr;
  const CocoAnnotation* without = nullptr;
  for (const auto& list : per_image_)
    for (const auto& a : list)
      if (!a.iscrowd) (a.has_segmentation ? with : without) = &a;
  has_masks_ = with != nullptr;
  if (with && without)
    r.fail("annotation id " + std::to_string(without->id),
           "has no segmentation while others (annotation id " + std::to_string(with->id) + ") have one");
  std::vector<ImageFile> files;
  for (size_t k = 0; k < images_.size(); ++k) {
    const bool has_target = std::any_of(per_image_[k].begin(), per_image_[k].end(),
                                        [](const CocoAnnotation& a) { return !a.iscrowd; });
    if (options.skip_empty && !has_target) {
      ++stats_.skipped_images;
      continue;
    }
    samples_.push_back(static_cast<int64_t>(k));
    files.push_back({(fs::path(image_dir_) / images_[k].file_name).string(), -1});
  }
  if (samples_.empty())
    throw InputError(json_path_, options.skip_empty ? "no image has a non-crowd annotation" : "no images");
  if (!fs::is_directory(image_dir_)) throw InputError(image_dir_, "COCO image folder does not exist");
  if (const std::string t = stats_text(stats_); !t.empty()) core::log_warn(json_path_ + ": " + t);
  files_ = std::make_shared<FileDataset>(json_path_, std::move(files), std::vector<std::string>{});
}

coco::Rle annotation_rle(const CocoAnnotation& a, int64_t h, int64_t w) {
  if (!a.polygons.empty()) return coco::rle_from_polygons(a.polygons, h, w);
  if (a.has_segmentation) return a.rle;
  coco::Rle empty;
  empty.h = h;
  empty.w = w;
  empty.counts = {static_cast<uint32_t>(h * w)};
  return empty;
}

std::string CocoDataset::source(int64_t i) const { return files_->source(i); }

const CocoImage& CocoDataset::image(int64_t i) const {
  return images_[static_cast<size_t>(samples_[static_cast<size_t>(i)])];
}

const std::vector<CocoAnnotation>& CocoDataset::annotations(int64_t i) const {
  return per_image_[static_cast<size_t>(samples_[static_cast<size_t>(i)])];
}

int64_t CocoDataset::contiguous_id(int64_t category_id) const {
  return find_sorted(category_ids_, category_id);
}

Target CocoDataset::target(int64_t i) const {
  const CocoImage& im = image(i);
  std::vector<float> boxes;
  std::vector<int64_t> classes;
  std::vector<at::Tensor> masks;
  for (const CocoAnnotation& a : annotations(i)) {
    if (a.iscrowd) continue;
    const auto& b = a.bbox;
    boxes.insert(boxes.end(), {static_cast<float>(b[0]), static_cast<float>(b[1]),
                               static_cast<float>(b[0] + b[2]), static_cast<float>(b[1] + b[3])});
    classes.push_back(a.category);
    if (!has_masks_) continue;
    masks.push_back(coco::rle_to_mask(annotation_rle(a, im.height, im.width)));
  }
  const auto g = static_cast<int64_t>(classes.size());
  Target t;
  t.boxes = at::tensor(boxes, at::TensorOptions().dtype(at::kFloat)).reshape({g, 4});
  t.box_classes = at::tensor(classes, at::TensorOptions().dtype(at::kLong));
  if (has_masks_)
    t.masks =
        g > 0 ? at::stack(masks) : at::zeros({0, im.height, im.width}, at::TensorOptions().dtype(at::kByte));
  return t;
}

Geometry CocoDataset::load_into(int64_t i, const Pipeline& pipeline, std::mt19937_64& rng, float* dst) const {
  return files_->load_into(i, pipeline, rng, dst);
}

Geometry CocoDataset::load_with_target(int64_t i, const Pipeline& pipeline, std::mt19937_64& rng, float* dst,
                                       Target* target) const {
  const Geometry g = files_->load_into(i, pipeline, rng, dst);
  const CocoImage& im = image(i);
  if (g.src_h != im.height || g.src_w != im.width)
    throw BadImage(source(i), "image is " + std::to_string(g.src_w) + "x" + std::to_string(g.src_h) +
                                  " but " + json_path_ + " says " + std::to_string(im.width) + "x" +
                                  std::to_string(im.height));
  *target = this->target(i);
  return g;
}

}  // namespace semaim::data
