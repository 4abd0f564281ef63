// Sample sources the loader reads: an in-memory image set (Fashion-MNIST) and image files in the ImageNet
// folder layout, a list file ("<relative path> <label>" per line, as the SemAIM fine-tuning code reads), or
// an unlabeled folder tree for pretraining (torchvision ImageFolder conventions).
#pragma once
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "semaim/data/geometry.h"
#include "semaim/data/idx.h"
#include "semaim/data/target.h"
#include "semaim/data/transforms.h"

namespace semaim::data {

class Dataset {
 public:
  virtual ~Dataset() = default;
  virtual const std::string& name() const = 0;
  virtual int64_t size() const = 0;
  // Channels of every sample the pipeline produces (files decode to RGB: 3).
  virtual int64_t channels() const = 0;
  // Class index of sample i; -1 for an unlabeled dataset.
  virtual int64_t label(int64_t i) const = 0;
  // Class names, index = label (empty when unlabeled or the list file gives only numbers).
  virtual const std::vector<std::string>& classes() const = 0;
  // The file of sample i, or "<name>[i]" for in-memory data.
  virtual std::string source(int64_t i) const = 0;
  // Target of sample i in its source image's pixels (by default the class label alone). The loader passes it
  // through the record load_into returns (transform_target).
  virtual Target target(int64_t i) const;
  // Sample i through `pipeline` into dst (channels * side * side floats, CHW, side = pipeline.out_size()),
  // randomness from rng. -> the geometry record of the sample. Throws BadImage (decode.h) when sample i
  // cannot be decoded.
  virtual Geometry load_into(int64_t i, const Pipeline& pipeline, std::mt19937_64& rng, float* dst) const = 0;
  // load_into and the target of sample i (in source pixels) together: what the loader calls. A dataset whose
  // target lives in its own file (a label map) reads it once here and throws BadImage when it does not fit the
  // image, so the loader's data.on_bad_image policy covers it too. Default: load_into, then target(i).
  virtual Geometry load_with_target(int64_t i, const Pipeline& pipeline, std::mt19937_64& rng, float* dst,
                                    Target* target) const;
};

// Images held in memory as (N, C, H, W) uint8, optionally with a target per image (boxes, masks, label
// maps, soft labels in the image's pixels; the class label always comes from set.labels).
class MemoryDataset final : public Dataset {
 public:
  explicit MemoryDataset(ImageSet set);  // checks the tensor shapes; InputError naming the set otherwise
  // targets: one per image (validate_target against its image: InputError naming "<name>[i]").
  MemoryDataset(ImageSet set, std::vector<Target> targets);
  const std::string& name() const override { return set_.name; }
  int64_t size() const override { return set_.images.size(0); }
  int64_t channels() const override { return set_.images.size(1); }
  int64_t label(int64_t i) const override;
  const std::vector<std::string>& classes() const override { return classes_; }
  std::string source(int64_t i) const override;
  Target target(int64_t i) const override;
  Geometry load_into(int64_t i, const Pipeline& pipeline, std::mt19937_64& rng, float* dst) const override;
  const ImageSet& set() const { return set_; }

 private:
  ImageSet set_;
  std::vector<std::string> classes_;
  std::vector<Target> targets_;  // empty: labels only
};

// The largest number of classes a list file may number (every class below its largest label gets a name):
// over four times ImageNet-21k's 21 841, and small enough that a tiny file cannot make building the name
// table slow (docs/reliability.md, fuzzing findings).
constexpr int64_t kMaxListClasses = 100000;

struct ImageFile {
  std::string path;
  int64_t label = -1;
};

// Image files decoded on demand. JPEGs are decoded crop-aware: only the rows and column blocks of the
// sampled box, at the largest reduced DCT scale (1/2, 1/4, 1/8) that still gives the resize target at
// least its resolution over the box (set_crop_aware(false): the whole image at full scale, then the crop).
class FileDataset final : public Dataset {
 public:
  FileDataset(std::string name, std::vector<ImageFile> files, std::vector<std::string> classes);

  // root/<class>/**/<image>, classes sorted by folder name, files sorted by path. A missing root, a root
  // without class folders, or a class folder without images is an InputError naming it.
  static std::shared_ptr<FileDataset> image_folder(const std::string& root);
  // list: one "<path> <label>" per line, path relative to root (or absolute); blank lines and lines
  // starting with # are skipped. A malformed line, or a label of kMaxListClasses or more, is an InputError
  // naming list:line.
  static std::shared_ptr<FileDataset> image_list(const std::string& root, const std::string& list);
  // Every image under root (recursively), unlabeled.
  static std::shared_ptr<FileDataset> unlabeled_folder(const std::string& root);

  const std::string& name() const override { return name_; }
  int64_t size() const override { return static_cast<int64_t>(files_.size()); }
  int64_t channels() const override { return 3; }
  int64_t label(int64_t i) const override { return files_[static_cast<size_t>(i)].label; }
  const std::vector<std::string>& classes() const override { return classes_; }
  std::string source(int64_t i) const override { return files_[static_cast<size_t>(i)].path; }
  Geometry load_into(int64_t i, const Pipeline& pipeline, std::mt19937_64& rng, float* dst) const override;

  // load_into for a sample with a label map (source pixels, (H, W)) that geometry steps may read (random_crop).
  // BadImage naming the image when the label map's size differs from the image's.
  Geometry load_labelled(int64_t i, const Pipeline& pipeline, std::mt19937_64& rng, float* dst,
                         const at::Tensor& label_map) const;

  void set_crop_aware(bool on) { crop_aware_ = on; }
  const std::vector<ImageFile>& files() const { return files_; }

 private:
  Geometry load_impl(int64_t i, const Pipeline& pipeline, std::mt19937_64& rng, float* dst,
                     const at::Tensor* label_map) const;

  std::string name_;
  std::vector<ImageFile> files_;
  std::vector<std::string> classes_;
  bool crop_aware_ = true;
};

// The first n samples of a dataset (n <= 0 or n >= size: the dataset itself).
std::shared_ptr<const Dataset> take_first(std::shared_ptr<const Dataset> set, int64_t n);

// Rank `rank`'s contiguous part of an evaluation set split over `world` ranks: samples
// [rank*N/world, (rank+1)*N/world). The parts cover every sample exactly once (sizes differ by at most one).
std::shared_ptr<const Dataset> take_shard(std::shared_ptr<const Dataset> set, int64_t rank, int64_t world);

// Classes of a labelled dataset: its class names, else the largest label + 1 (InputError when unlabelled).
int64_t count_classes(const Dataset& set);

// True for the file extensions torchvision's ImageFolder accepts (case-insensitive).
bool has_image_extension(const std::string& path);

// Every image file under dir (recursively, by has_image_extension), sorted by path; symlinks followed.
// InputError naming dir when it cannot be listed.
std::vector<std::string> list_image_files(const std::string& dir);

}  // namespace semaim::data
