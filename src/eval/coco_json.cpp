// COCO ground-truth and results JSON as pycocotools reads them (COCO(), COCO.loadRes, COCO.annToRLE), and the
// results JSON semaim writes; every malformed entry is an InputError naming the file and the entry's index.
#include <nlohmann/json.hpp>

#include <cmath>
#include <fstream>
#include <sstream>
#include <unordered_map>
#include <unordered_set>

#include "semaim/core/errors.h"
#include "semaim/eval/coco_eval.h"
#include "semaim/io/atomic_file.h"

namespace semaim::eval {

namespace {

namespace coco = data::coco;
using nlohmann::json;

json read_json(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw InputError(path, "cannot open the file");
  std::stringstream ss;
  ss << f.rdbuf();
  try {
    return json::parse(ss.str());
  } catch (const json::parse_error& e) {
    throw InputError(path, std::string("not valid JSON: ") + e.what());
  }
}

// The member `key` of object `j` (InputError naming `where` when `j` is no object or lacks it).
const json& member(const json& j, const char* key, const std::string& where) {
  if (!j.is_object()) throw InputError(where, "must be a JSON object");
  const auto it = j.find(key);
  if (it == j.end()) throw InputError(where, std::string("has no '") + key + "'");
  return *it;
}

int64_t to_int(const json& v, const std::string& where, const char* key) {
  if (v.is_number_integer()) return v.get<int64_t>();
  if (v.is_number_float() && std::floor(v.get<double>()) == v.get<double>() &&
      std::abs(v.get<double>()) < 9e15)
    return static_cast<int64_t>(v.get<double>());
  throw InputError(where, std::string("'") + key + "' must be an integer");
}

double to_number(const json& v, const std::string& where, const char* key) {
  if (!v.is_number()) throw InputError(where, std::string("'") + key + "' must be a number");
  const double x = v.get<double>();
  if (!std::isfinite(x)) throw InputError(where, std::string("'") + key + "' must be finite");
  return x;
}

std::array<double, 4> to_box(const json& v, const std::string& where) {
  if (!v.is_array() || v.size() != 4) throw InputError(where, "'bbox' must be 4 numbers [x, y, w, h]");
  std::array<double, 4> b{};
  for (size_t i = 0; i < 4; ++i) b[i] = to_number(v[i], where, "bbox");
  return b;
}

// A compressed or uncompressed RLE object {size: [h, w], counts: "..." | [...]}.
coco::Rle to_rle(const json& s, const std::string& where) {
  const json& size = member(s, "size", where);
  if (!size.is_array() || size.size() != 2) throw InputError(where, "segmentation 'size' must be [h, w]");
  const int64_t h = to_int(size[0], where, "size"), w = to_int(size[1], where, "size");
  const json& counts = member(s, "counts", where);
  if (counts.is_string()) return coco::rle_from_string(counts.get<std::string>(), h, w, where);
  if (!counts.is_array()) throw InputError(where, "segmentation 'counts' must be a string or a list");
  std::vector<uint32_t> c;
  c.reserve(counts.size());
  for (const auto& x : counts) {
    const int64_t v = to_int(x, where, "counts");
    if (v < 0 || v > static_cast<int64_t>(UINT32_MAX))
      throw InputError(where, "segmentation counts out of range");
    c.push_back(static_cast<uint32_t>(v));
  }
  return coco::rle_from_counts(c, h, w, where);
}

// annToRLE: polygons of the image's size merged, or an RLE object of its own size.
coco::Rle segmentation_to_rle(const json& s, const CocoImage& img, const std::string& where) {
  if (s.is_object()) return to_rle(s, where);
  if (!s.is_array()) throw InputError(where, "'segmentation' must be a list of polygons or an RLE object");
  if (img.height < 0 || img.width < 0)
    throw InputError(where,
                     "image " + std::to_string(img.id) + " needs 'height' and 'width' to rasterize polygons");
  std::vector<std::vector<double>> polys;
  for (const auto& p : s) {
    if (!p.is_array()) throw InputError(where, "a polygon must be a list of numbers");
    std::vector<double> xy;
    for (const auto& v : p) xy.push_back(to_number(v, where, "segmentation"));
    polys.push_back(std::move(xy));
  }
  try {
    return coco::rle_from_polygons(polys, img.height, img.width);
  } catch (const InputError& e) {
    throw InputError(where, e.what());
  }
}

const json& array_member(const json& root, const char* key, const std::string& path) {
  const json& v = member(root, key, path);
  if (!v.is_array()) throw InputError(path, std::string("'") + key + "' must be a list");
  return v;
}

}  // namespace

CocoGroundTruth load_coco_ground_truth(const std::string& path, CocoIouType iou_type) {
  const json root = read_json(path);
  CocoGroundTruth gt;
  std::unordered_map<int64_t, size_t> images;
  const json& imgs = array_member(root, "images", path);
  for (size_t i = 0; i < imgs.size(); ++i) {
    const std::string where = path + ": images[" + std::to_string(i) + "]";
    CocoImage im;
    im.id = to_int(member(imgs[i], "id", where), where, "id");
    if (imgs[i].contains("height")) im.height = to_int(imgs[i]["height"], where, "height");
    if (imgs[i].contains("width")) im.width = to_int(imgs[i]["width"], where, "width");
    images[im.id] = gt.images.size();
    gt.images.push_back(im);
  }
  std::unordered_set<int64_t> cats;
  const json& jc = array_member(root, "categories", path);
  for (size_t i = 0; i < jc.size(); ++i) {
    const std::string where = path + ": categories[" + std::to_string(i) + "]";
    CocoCategory c;
    c.id = to_int(member(jc[i], "id", where), where, "id");
    if (jc[i].contains("name") && jc[i]["name"].is_string()) c.name = jc[i]["name"].get<std::string>();
    cats.insert(c.id);
    gt.categories.push_back(c);
  }
  std::unordered_set<int64_t> ids;
  const json& anns = array_member(root, "annotations", path);
  gt.annotations.reserve(anns.size());
  for (size_t i = 0; i < anns.size(); ++i) {
    std::string where = path + ": annotations[" + std::to_string(i) + "]";
    const json& a = anns[i];
    CocoAnnotation ann;
    ann.id = to_int(member(a, "id", where), where, "id");
    where += " (id " + std::to_string(ann.id) + ")";
    if (!ids.insert(ann.id).second) throw InputError(where, "duplicate annotation id");
    ann.image_id = to_int(member(a, "image_id", where), where, "image_id");
    ann.category_id = to_int(member(a, "category_id", where), where, "category_id");
    const auto img = images.find(ann.image_id);
    if (img == images.end())
      throw InputError(where, "image_id " + std::to_string(ann.image_id) + " is not in images");
    if (!cats.count(ann.category_id))
      throw InputError(where, "category_id " + std::to_string(ann.category_id) + " is not in categories");
    ann.area = to_number(member(a, "area", where), where, "area");
    if (a.contains("iscrowd")) {
      const json& c = a["iscrowd"];
      ann.iscrowd = c.is_boolean() ? c.get<bool>() : to_int(c, where, "iscrowd") != 0;
    }
    // Boxes are read whenever present, so one ground truth loaded for segm also scores boxes.
    if (iou_type == CocoIouType::kBbox || a.contains("bbox")) ann.bbox = to_box(member(a, "bbox", where), where);
    if (iou_type == CocoIouType::kSegm)
      ann.rle = segmentation_to_rle(member(a, "segmentation", where), gt.images[img->second], where);
    gt.annotations.push_back(std::move(ann));
  }
  return gt;
}

std::vector<CocoDetection> load_coco_results(const std::string& path, const CocoGroundTruth& gt,
                                             CocoIouType iou_type) {
  const json root = read_json(path);
  if (!root.is_array()) throw InputError(path, "results must be a list of objects");
  std::unordered_map<int64_t, size_t> images;
  for (size_t i = 0; i < gt.images.size(); ++i) images[gt.images[i].id] = i;
  std::unordered_set<int64_t> cats;
  for (const auto& c : gt.categories) cats.insert(c.id);
  // loadRes decides from the first result: boxes (area = w*h) or masks (area and box from the RLE).
  const bool boxes = !root.empty() && root[0].is_object() && root[0].contains("bbox") &&
                     !(root[0]["bbox"].is_array() && root[0]["bbox"].empty());
  std::vector<CocoDetection> out(root.size());
  for (size_t i = 0; i < root.size(); ++i) {
    const std::string where = path + ": result " + std::to_string(i);
    const json& r = root[i];
    CocoDetection& d = out[i];
    d.image_id = to_int(member(r, "image_id", where), where, "image_id");
    d.category_id = to_int(member(r, "category_id", where), where, "category_id");
    d.score = to_number(member(r, "score", where), where, "score");
    const auto img = images.find(d.image_id);
    if (img == images.end())
      throw InputError(where, "image_id " + std::to_string(d.image_id) + " is not in the ground truth");
    if (!cats.count(d.category_id))
      throw InputError(where, "category_id " + std::to_string(d.category_id) + " is not in the ground truth");
    const CocoImage& im = gt.images[img->second];
    if (boxes) {
      d.bbox = to_box(member(r, "bbox", where), where);
      d.area = d.bbox[2] * d.bbox[3];
      if (iou_type == CocoIouType::kSegm) {
        if (r.contains("segmentation")) {
          d.segmentation = segmentation_to_rle(r["segmentation"], im, where);
        } else {
          const double x1 = d.bbox[0], x2 = d.bbox[0] + d.bbox[2], y1 = d.bbox[1], y2 = d.bbox[1] + d.bbox[3];
          d.segmentation =
              segmentation_to_rle(json::array({json::array({x1, y1, x1, y2, x2, y2, x2, y1})}), im, where);
        }
      }
    } else {
      const json& s = member(r, "segmentation", where);
      if (!s.is_object() || !s.contains("counts") || !s["counts"].is_string())
        throw InputError(
            where, "results without boxes need 'segmentation' as a compressed RLE {size, counts: string}");
      d.segmentation = to_rle(s, where);
      d.area = static_cast<double>(coco::rle_area(*d.segmentation));
      d.bbox = r.contains("bbox") ? to_box(r["bbox"], where) : coco::rle_to_bbox(*d.segmentation);
    }
  }
  return out;
}

void write_coco_results(const std::string& path, const std::vector<CocoDetection>& detections) {
  json out = json::array();
  for (const auto& d : detections) {
    json r = {{"image_id", d.image_id},
              {"category_id", d.category_id},
              {"bbox", {d.bbox[0], d.bbox[1], d.bbox[2], d.bbox[3]}},
              {"score", d.score}};
    if (d.segmentation)
      r["segmentation"] = {{"size", {d.segmentation->h, d.segmentation->w}},
                           {"counts", coco::rle_to_string(*d.segmentation)}};
    out.push_back(std::move(r));
  }
  io::atomic_write(path, out.dump());
}

}  // namespace semaim::eval
