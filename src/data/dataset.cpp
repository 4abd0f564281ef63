// In-memory and file-backed datasets; file listing follows torchvision's ImageFolder (sorted class folders,
// sorted files, IMG_EXTENSIONS), list files follow the SemAIM fine-tuning code's "<path> <label>" format.
#include "semaim/data/dataset.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "semaim/core/errors.h"
#include "semaim/data/decode.h"

namespace semaim::data {
namespace fs = std::filesystem;
namespace {

void require_directory(const std::string& root) {
  std::error_code ec;
  if (!fs::exists(root, ec)) throw InputError(root, "dataset root does not exist");
  if (!fs::is_directory(root, ec)) throw InputError(root, "dataset root is not a directory");
}

// Samples [begin, begin + n) of a dataset.
class Range final : public Dataset {
 public:
  Range(std::shared_ptr<const Dataset> base, int64_t begin, int64_t n)
      : base_(std::move(base)), begin_(begin), n_(n) {}
  const std::string& name() const override { return base_->name(); }
  int64_t size() const override { return n_; }
  int64_t channels() const override { return base_->channels(); }
  int64_t label(int64_t i) const override { return base_->label(begin_ + i); }
  const std::vector<std::string>& classes() const override { return base_->classes(); }
  std::string source(int64_t i) const override { return base_->source(begin_ + i); }
  Target target(int64_t i) const override { return base_->target(begin_ + i); }
  Geometry load_into(int64_t i, const Pipeline& p, std::mt19937_64& rng, float* dst) const override {
    return base_->load_into(begin_ + i, p, rng, dst);
  }
  Geometry load_with_target(int64_t i, const Pipeline& p, std::mt19937_64& rng, float* dst,
                            Target* target) const override {
    return base_->load_with_target(begin_ + i, p, rng, dst, target);
  }

 private:
  std::shared_ptr<const Dataset> base_;
  int64_t begin_, n_;
};

}  // namespace

Target Dataset::target(int64_t i) const {
  Target t;
  t.label = label(i);
  return t;
}

Geometry Dataset::load_with_target(int64_t i, const Pipeline& pipeline, std::mt19937_64& rng, float* dst,
                                   Target* target) const {
  const Geometry g = load_into(i, pipeline, rng, dst);
  *target = this->target(i);
  return g;
}

std::shared_ptr<const Dataset> take_first(std::shared_ptr<const Dataset> set, int64_t n) {
  if (n <= 0 || n >= set->size()) return set;
  return std::make_shared<const Range>(std::move(set), 0, n);
}

std::shared_ptr<const Dataset> take_shard(std::shared_ptr<const Dataset> set, int64_t rank, int64_t world) {
  if (world < 1 || rank < 0 || rank >= world)
    throw InputError("dataset(" + set->name() + ")",
                     "rank " + std::to_string(rank) + " outside a world of " + std::to_string(world));
  if (world == 1) return set;
  const int64_t n = set->size(), begin = rank * n / world, end = (rank + 1) * n / world;
  return std::make_shared<const Range>(std::move(set), begin, end - begin);
}

int64_t count_classes(const Dataset& set) {
  if (!set.classes().empty()) return static_cast<int64_t>(set.classes().size());
  int64_t top = -1;
  for (int64_t i = 0; i < set.size(); ++i) top = std::max(top, set.label(i));
  if (top < 0) throw InputError("dataset(" + set.name() + ")", "classification needs labelled images");
  return top + 1;
}

std::vector<std::string> list_image_files(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  fs::recursive_directory_iterator it(dir, fs::directory_options::follow_directory_symlink, ec);
  if (ec) throw InputError(dir, "cannot list: " + ec.message());
  for (const fs::recursive_directory_iterator end; it != end; it.increment(ec)) {
    if (ec) throw InputError(dir, "cannot list: " + ec.message());
    if (!it->is_directory(ec) && has_image_extension(it->path().string())) out.push_back(it->path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

bool has_image_extension(const std::string& path) {
  static const char* const kExt[] = {".jpg", ".jpeg", ".png",  ".ppm", ".bmp",
                                     ".pgm", ".tif",  ".tiff", ".webp"};
  std::string ext = fs::path(path).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  return std::any_of(std::begin(kExt), std::end(kExt), [&](const char* e) { return ext == e; });
}

MemoryDataset::MemoryDataset(ImageSet set) : set_(std::move(set)) {
  const std::string where = "dataset(" + set_.name + ")";
  if (!set_.images.defined() || set_.images.dim() != 4 || set_.images.scalar_type() != at::kByte) {
    throw InputError(where, "images must be a (N, C, H, W) uint8 tensor");
  }
  if (!set_.labels.defined() || set_.labels.dim() != 1 || set_.labels.size(0) != set_.images.size(0)) {
    throw InputError(where, "labels must be (N) with N = " + std::to_string(set_.images.size(0)));
  }
  set_.images = set_.images.contiguous();
  set_.labels = set_.labels.to(at::kLong).contiguous();
}

MemoryDataset::MemoryDataset(ImageSet set, std::vector<Target> targets) : MemoryDataset(std::move(set)) {
  if (static_cast<int64_t>(targets.size()) != size()) {
    throw InputError("dataset(" + set_.name + ")",
                     std::to_string(targets.size()) + " targets for " + std::to_string(size()) + " images");
  }
  for (int64_t i = 0; i < size(); ++i)
    validate_target(targets[static_cast<size_t>(i)], set_.images.size(2), set_.images.size(3), source(i));
  targets_ = std::move(targets);
}

int64_t MemoryDataset::label(int64_t i) const { return set_.labels.data_ptr<int64_t>()[i]; }

std::string MemoryDataset::source(int64_t i) const { return set_.name + "[" + std::to_string(i) + "]"; }

Target MemoryDataset::target(int64_t i) const {
  if (targets_.empty()) return Dataset::target(i);
  Target t = targets_[static_cast<size_t>(i)];
  t.label = label(i);
  return t;
}

Geometry MemoryDataset::load_into(int64_t i, const Pipeline& pipeline, std::mt19937_64& rng,
                                  float* dst) const {
  const int64_t c = channels(), h = set_.images.size(2), w = set_.images.size(3);
  return pipeline.run(hwc_view(set_.images.data_ptr<uint8_t>() + i * c * h * w, c, h, w), rng, dst);
}

FileDataset::FileDataset(std::string name, std::vector<ImageFile> files, std::vector<std::string> classes)
    : name_(std::move(name)), files_(std::move(files)), classes_(std::move(classes)) {
  if (files_.empty()) throw InputError(name_, "no image files");
}

std::shared_ptr<FileDataset> FileDataset::image_folder(const std::string& root) {
  require_directory(root);
  std::vector<std::string> classes;
  std::error_code ec;
  for (const fs::directory_entry& e : fs::directory_iterator(root, ec)) {
    if (e.is_directory(ec)) classes.push_back(e.path().filename().string());
  }
  if (ec) throw InputError(root, "cannot list: " + ec.message());
  if (classes.empty()) throw InputError(root, "no class folders (expected root/<class>/<images>)");
  std::sort(classes.begin(), classes.end());
  std::vector<ImageFile> files;
  for (size_t c = 0; c < classes.size(); ++c) {
    const fs::path dir = fs::path(root) / classes[c];
    const std::vector<std::string> paths = list_image_files(dir);
    if (paths.empty()) throw InputError(dir.string(), "class folder holds no images");
    for (const std::string& p : paths) files.push_back(ImageFile{p, static_cast<int64_t>(c)});
  }
  return std::make_shared<FileDataset>(root, std::move(files), std::move(classes));
}

std::shared_ptr<FileDataset> FileDataset::image_list(const std::string& root, const std::string& list) {
  require_directory(root);
  std::ifstream in(list);
  if (!in) throw InputError(list, "cannot open list file");
  std::vector<ImageFile> files;
  std::string line;
  int64_t max_label = -1;
  for (int64_t lineno = 1; std::getline(in, line); ++lineno) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    const size_t first = line.find_first_not_of(" \t");
    if (first == std::string::npos || line[first] == '#') continue;
    const std::string where = list + ":" + std::to_string(lineno);
    // The label is the last field, so paths may contain spaces.
    const size_t last_end = line.find_last_not_of(" \t");
    const size_t sep = line.find_last_of(" \t", last_end);
    if (sep == std::string::npos || sep < first) throw InputError(where, "expected '<path> <label>'");
    const std::string label_text = line.substr(sep + 1, last_end - sep);
    const std::string path = line.substr(first, line.find_last_not_of(" \t", sep) - first + 1);
    int64_t label = -1;
    size_t used = 0;
    try {
      label = std::stoll(label_text, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != label_text.size() || label < 0) {
      throw InputError(where, "label '" + label_text + "' is not a non-negative integer");
    }
    if (label >= kMaxListClasses)
      throw InputError(where, "label " + label_text + " is too large (classes are numbered below " +
                                  std::to_string(kMaxListClasses) + ")");
    max_label = std::max(max_label, label);
    files.push_back(ImageFile{fs::path(path).is_absolute() ? path : (fs::path(root) / path).string(), label});
  }
  if (in.bad()) throw InputError(list, "read error");
  if (files.empty()) throw InputError(list, "list file names no images");
  std::vector<std::string> classes;
  for (int64_t c = 0; c <= max_label; ++c) classes.push_back(std::to_string(c));
  return std::make_shared<FileDataset>(list, std::move(files), std::move(classes));
}

std::shared_ptr<FileDataset> FileDataset::unlabeled_folder(const std::string& root) {
  require_directory(root);
  std::vector<ImageFile> files;
  for (const std::string& p : list_image_files(root)) files.push_back(ImageFile{p, -1});
  if (files.empty()) throw InputError(root, "no image files under the dataset root");
  return std::make_shared<FileDataset>(root, std::move(files), std::vector<std::string>{});
}

Geometry FileDataset::load_into(int64_t i, const Pipeline& pipeline, std::mt19937_64& rng, float* dst) const {
  return load_impl(i, pipeline, rng, dst, nullptr);
}

Geometry FileDataset::load_labelled(int64_t i, const Pipeline& pipeline, std::mt19937_64& rng, float* dst,
                                    const at::Tensor& label_map) const {
  return load_impl(i, pipeline, rng, dst, &label_map);
}

namespace {

void check_label_size(const at::Tensor* label_map, int64_t h, int64_t w, const std::string& path) {
  if (label_map && (label_map->size(0) != h || label_map->size(1) != w))
    throw BadImage(path, "its label map is " + std::to_string(label_map->size(1)) + "x" +
                             std::to_string(label_map->size(0)) + " but the image is " + std::to_string(w) + "x" +
                             std::to_string(h));
}

}  // namespace

Geometry FileDataset::load_impl(int64_t i, const Pipeline& pipeline, std::mt19937_64& rng, float* dst,
                                const at::Tensor* label_map) const {
  const std::string& path = files_[static_cast<size_t>(i)].path;
  const std::vector<uint8_t> bytes = read_file_bytes(path);
  if (is_jpeg(bytes)) {
    const JpegInfo info = read_jpeg_info(bytes, path);
    check_label_size(label_map, info.height, info.width, path);
    const Geometry g = pipeline.plan(info.height, info.width, rng, label_map);
    if (!crop_aware_) {  // the whole image at full scale, then the crop in memory
      const DecodedRegion r = decode_jpeg_region(bytes, path, CropBox{0, 0, info.height, info.width}, 1);
      if (r.rgb.rows != info.height || r.rgb.cols != info.width)
        throw BadImage(path, "JPEG size differs from its header");
      pipeline.finish(r.rgb, g.box, g, rng, dst);
      return g;
    }
    const int scale = reduced_scale(g.box, g.resize_h, g.resize_w);
    const DecodedRegion r = decode_jpeg_region(bytes, path, g.box, scale);
    // The box in the decoded pixels; at a reduced scale its edges round to the nearest decoded pixel.
    const double s = r.scale;
    auto edge = [&](int64_t v, int64_t origin, int64_t limit) {
      return std::clamp<int64_t>(static_cast<int64_t>(std::llround(static_cast<double>(v) / s)) - origin, 0,
                                 limit);
    };
    const int64_t top = edge(g.box.top, r.origin_y, r.rgb.rows - 1);
    const int64_t left = edge(g.box.left, r.origin_x, r.rgb.cols - 1);
    const int64_t bottom = std::max(top + 1, edge(g.box.top + g.box.height, r.origin_y, r.rgb.rows));
    const int64_t right = std::max(left + 1, edge(g.box.left + g.box.width, r.origin_x, r.rgb.cols));
    if (r.rgb.rows < 1 || r.rgb.cols < 1) throw BadImage(path, "JPEG decoded to no pixels");
    pipeline.finish(r.rgb, CropBox{top, left, bottom - top, right - left}, g, rng, dst);
    return g;
  }
  const cv::Mat rgb = decode_rgb(bytes, path);
  check_label_size(label_map, rgb.rows, rgb.cols, path);
  return pipeline.run(rgb, rng, dst, label_map);
}

}  // namespace semaim::data
