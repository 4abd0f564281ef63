// ImageNet folder layout, list files and unlabeled folders over the sample corpus; start-up errors for
// missing roots, empty class folders and malformed list lines; the loader skipping and counting bad files
// (or failing under on_bad_image: fail) with batches that do not depend on the thread count.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "corpus.h"
#include "input_error.h"
#include "semaim/data/dataset.h"
#include "semaim/data/loader.h"
#include "temp_dir.h"

namespace semaim::data {
namespace {

namespace fs = std::filesystem;
using semaim::test::corpus;
using semaim::test::expect_input_error;
using semaim::test::TempDir;

void write(const std::string& path, const std::string& text) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path) << text;
}

TEST(Dataset, ImageFolderSortsClassesAndLabelsFilesByFolder) {
  const auto ds = FileDataset::image_folder(corpus("train"));
  ASSERT_EQ(ds->classes().size(), 10u);
  EXPECT_EQ(ds->classes().front(), "astronaut");
  EXPECT_EQ(ds->classes().back(), "temple");
  EXPECT_EQ(ds->size(), 2005);  // 2000 images + 5 broken files
  EXPECT_EQ(ds->channels(), 3);
  std::map<int64_t, int64_t> per_class;
  for (int64_t i = 0; i < ds->size(); ++i) {
    const fs::path p(ds->source(i));
    EXPECT_EQ(p.parent_path().filename().string(), ds->classes()[static_cast<size_t>(ds->label(i))]);
    ++per_class[ds->label(i)];
  }
  EXPECT_EQ(per_class[0], 200);
  EXPECT_TRUE(std::is_sorted(ds->files().begin(), ds->files().end(),
                             [](const ImageFile& a, const ImageFile& b) { return a.path < b.path; }));
}

TEST(Dataset, ListFileGivesTheSameFilesAndLabelsAsTheFolder) {
  const auto folder = FileDataset::image_folder(corpus("train"));
  const auto list = FileDataset::image_list(corpus(), corpus("train.txt"));
  ASSERT_EQ(list->size(), folder->size());
  std::map<std::string, int64_t> want;
  for (const ImageFile& f : folder->files()) want[fs::path(f.path).lexically_normal().string()] = f.label;
  for (const ImageFile& f : list->files()) {
    const auto it = want.find(fs::path(f.path).lexically_normal().string());
    ASSERT_NE(it, want.end()) << f.path;
    EXPECT_EQ(it->second, f.label) << f.path;
  }
}

TEST(Dataset, UnlabeledFolderTakesEveryImageRecursively) {
  const auto ds = FileDataset::unlabeled_folder(corpus("val"));
  EXPECT_EQ(ds->size(), 200);
  EXPECT_EQ(ds->label(0), -1);
  EXPECT_TRUE(ds->classes().empty());
}

TEST(Dataset, ListFileAcceptsCommentsBlankLinesSpacesInPathsAndAbsolutePaths) {
  TempDir dir;
  const std::string img = corpus("val/cat/cat_00000.JPEG");
  fs::create_directories(dir.path() / "a b");
  fs::copy_file(img, dir.path() / "a b" / "x.JPEG");
  write(dir.file("list.txt"), "# header\n\na b/x.JPEG 3\r\n" + img + "\t7\n");
  const auto ds = FileDataset::image_list(dir.path().string(), dir.file("list.txt"));
  ASSERT_EQ(ds->size(), 2);
  EXPECT_EQ(ds->source(0), (dir.path() / "a b/x.JPEG").string());
  EXPECT_EQ(ds->label(0), 3);
  EXPECT_EQ(ds->source(1), img);
  EXPECT_EQ(ds->label(1), 7);
  EXPECT_EQ(ds->classes().size(), 8u);
}

TEST(Dataset, BadRootsClassFoldersAndListLinesAreClearErrors) {
  TempDir dir;
  expect_input_error([&] { FileDataset::image_folder(dir.file("missing")); }, {"missing", "does not exist"});
  expect_input_error([&] { FileDataset::image_folder(dir.path().string()); }, {"no class folders"});
  fs::create_directories(dir.path() / "root" / "a");
  fs::create_directories(dir.path() / "root" / "b");
  fs::copy_file(corpus("val/cat/cat_00000.JPEG"), dir.path() / "root" / "a" / "x.jpg");
  write(dir.file("root/b/readme.txt"), "not an image extension");
  expect_input_error([&] { FileDataset::image_folder(dir.file("root")); },
                     {"root/b", "class folder holds no images"});
  expect_input_error([&] { FileDataset::unlabeled_folder(dir.file("root/b")); }, {"no image files"});
  write(dir.file("l1.txt"), "a/x.jpg 0\nonlyonefield\n");
  expect_input_error([&] { FileDataset::image_list(dir.file("root"), dir.file("l1.txt")); },
                     {"l1.txt:2", "expected '<path> <label>'"});
  write(dir.file("l2.txt"), "a/x.jpg -1\n");
  expect_input_error([&] { FileDataset::image_list(dir.file("root"), dir.file("l2.txt")); },
                     {"l2.txt:1", "not a non-negative integer"});
  // A huge label would make the class list (every class up to it) exhaust memory.
  write(dir.file("l9.txt"), "a/x.jpg 9999999999999\n");
  expect_input_error([&] { FileDataset::image_list(dir.file("root"), dir.file("l9.txt")); },
                     {"l9.txt:1", "too large"});
  // The cap: labels 0..99 999 (100 000 classes) and no more.
  write(dir.file("l10.txt"), "a/x.jpg 99999\n");
  EXPECT_EQ(FileDataset::image_list(dir.file("root"), dir.file("l10.txt"))->classes().size(), 100000u);
  write(dir.file("l11.txt"), "a/x.jpg 100000\n");
  expect_input_error([&] { FileDataset::image_list(dir.file("root"), dir.file("l11.txt")); },
                     {"l11.txt:1", "too large", "100000"});
  write(dir.file("l3.txt"), "a/x.jpg cat\n");
  expect_input_error([&] { FileDataset::image_list(dir.file("root"), dir.file("l3.txt")); },
                     {"l3.txt:1", "'cat'"});
  write(dir.file("l4.txt"), "# nothing\n");
  expect_input_error([&] { FileDataset::image_list(dir.file("root"), dir.file("l4.txt")); },
                     {"names no images"});
  expect_input_error([&] { FileDataset::image_list(dir.file("root"), dir.file("nope.txt")); },
                     {"nope.txt", "cannot open"});
}

// A small folder: 2 classes of 9 good JPEGs each plus the corpus's 5 broken files spread over both.
std::shared_ptr<FileDataset> small_set_with_broken(const TempDir& dir) {
  const std::vector<std::string> broken = {"cat/broken_empty.JPEG", "coffee/broken_truncated.JPEG",
                                           "flower/broken_text.JPEG", "galaxy/broken_header.JPEG",
                                           "temple/broken_truncated_png.JPEG"};
  for (int k = 0; k < 9; ++k) {
    char name[32];
    std::snprintf(name, sizeof(name), "%05d.JPEG", k);
    fs::create_directories(dir.path() / "root" / "a");
    fs::create_directories(dir.path() / "root" / "b");
    fs::copy_file(corpus(std::string("train/cat/cat_") + name), dir.path() / "root" / "a" / name);
    fs::copy_file(corpus(std::string("train/rocket/rocket_") + name), dir.path() / "root" / "b" / name);
  }
  for (size_t i = 0; i < broken.size(); ++i)
    fs::copy_file(corpus("train/" + broken[i]),
                  dir.path() / "root" / (i % 2 ? "a" : "b") / fs::path(broken[i]).filename());
  return FileDataset::image_folder(dir.file("root"));
}

LoaderConfig file_loader_config(int64_t workers) {
  LoaderConfig cfg;
  cfg.batch_size = 4;
  cfg.num_workers = workers;
  cfg.drop_last = false;
  cfg.seed = 11;
  cfg.augment.out_size = 64;
  cfg.augment.mean = {0.485, 0.456, 0.406};
  cfg.augment.std = {0.229, 0.224, 0.225};
  return cfg;
}

TEST(FileLoader, BadFilesAreSkippedCountedAndBatchesIgnoreTheThreadCount) {
  TempDir dir;
  const auto ds = small_set_with_broken(dir);
  ASSERT_EQ(ds->size(), 23);
  std::vector<at::Tensor> reference;
  for (int64_t workers : {0, 1, 2}) {
    Loader loader(ds, file_loader_config(workers));
    for (int64_t epoch = 0; epoch < 2; ++epoch) {
      loader.start_epoch(epoch);
      std::vector<at::Tensor> images;
      int64_t seen = 0;
      while (auto b = loader.next()) {
        images.push_back(b->images);
        seen += b->images.size(0);
        for (int64_t k = 0; k < b->indices.size(0); ++k) {
          const std::string src = ds->source(b->indices[k].item<int64_t>());
          EXPECT_EQ(src.find("broken"), std::string::npos) << "a bad file reached a batch: " << src;
          EXPECT_EQ(b->labels[k].item<int64_t>(), ds->label(b->indices[k].item<int64_t>()));
        }
        EXPECT_TRUE(b->images.isfinite().all().item<bool>());
      }
      EXPECT_EQ(seen, 23);  // a bad sample is replaced, never dropped: every rank keeps its step count
      EXPECT_EQ(loader.bad_images(), 5) << "workers " << workers << " epoch " << epoch;
      EXPECT_EQ(loader.bad_files(), 5);
      if (epoch == 0 && workers == 0) {
        reference = images;
      } else if (epoch == 0) {
        ASSERT_EQ(images.size(), reference.size());
        for (size_t i = 0; i < images.size(); ++i)
          EXPECT_TRUE(at::equal(images[i], reference[i])) << "batch " << i;
      }
    }
  }
}

TEST(FileLoader, OnBadImageFailStopsWithTheFileAndFault) {
  TempDir dir;
  const auto ds = small_set_with_broken(dir);
  LoaderConfig cfg = file_loader_config(2);
  cfg.fail_on_bad_image = true;
  Loader loader(ds, cfg);
  loader.start_epoch(0);
  try {
    while (loader.next()) {
    }
    ADD_FAILURE() << "the epoch finished despite bad files";
  } catch (const InputError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("broken_"), std::string::npos) << msg;
    EXPECT_NE(msg.find("on_bad_image: fail"), std::string::npos) << msg;
  }
}

TEST(FileLoader, GrayscaleCmykAndPngFilesDecodeToRgbBatches) {
  std::vector<ImageFile> files = {{corpus("train/astronaut/astronaut_00003.JPEG"), 0},  // grayscale JPEG
                                  {corpus("train/astronaut/astronaut_00005.JPEG"), 0},  // CMYK JPEG
                                  {corpus("train/coffee/coffee_00005.JPEG"), 1},        // PNG named .JPEG
                                  {corpus("train/coffee/coffee_00000.JPEG"), 1}};       // RGB JPEG
  auto ds = std::make_shared<FileDataset>("mixed", files, std::vector<std::string>{"a", "b"});
  LoaderConfig cfg = file_loader_config(0);
  cfg.shuffle = false;
  Loader loader(ds, cfg);
  loader.start_epoch(0);
  const auto b = loader.next();
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(b->images.sizes(), (at::IntArrayRef{4, 3, 64, 64}));
  EXPECT_EQ(loader.bad_images(), 0);
  // The grayscale sample has three equal channels after undoing the per-channel normalization.
  const at::Tensor mean = at::tensor({0.485, 0.456, 0.406}).view({3, 1, 1}).to(at::kFloat);
  const at::Tensor std = at::tensor({0.229, 0.224, 0.225}).view({3, 1, 1}).to(at::kFloat);
  const at::Tensor gray = b->images[0] * std + mean;
  EXPECT_LT((gray[0] - gray[1]).abs().max().item<float>(), 1e-5);
  EXPECT_GT((b->images[1][0] - b->images[1][2]).abs().max().item<float>(), 0.1);  // CMYK sample has colour
}

TEST(FileLoader, RankShardsOfAFileDatasetAreDisjointWithEqualStepCounts) {
  const auto ds = FileDataset::image_folder(corpus("val"));  // 200 files
  std::set<int64_t> seen;
  int64_t steps = -1;
  for (int64_t rank : {0, 1, 2}) {
    LoaderConfig cfg = file_loader_config(1);
    cfg.batch_size = 8;
    cfg.drop_last = true;
    cfg.rank = rank;
    cfg.world_size = 3;
    Loader loader(ds, cfg);
    if (steps < 0) steps = loader.steps_per_epoch();
    EXPECT_EQ(loader.steps_per_epoch(), steps);
    loader.start_epoch(4);
    while (auto b = loader.next()) {
      for (int64_t k = 0; k < b->indices.size(0); ++k)
        EXPECT_TRUE(seen.insert(b->indices[k].item<int64_t>()).second) << "sample on two ranks";
    }
  }
  EXPECT_EQ(steps, 200 / 3 / 8);
  EXPECT_EQ(static_cast<int64_t>(seen.size()), 3 * steps * 8);
}

TEST(FileLoader, BatchesArePinnedWhenCudaIsPresent) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device: page-locked batches need one";
  auto ds = std::make_shared<FileDataset>(
      "one", std::vector<ImageFile>{{corpus("val/cat/cat_00000.JPEG"), 0}}, std::vector<std::string>{"cat"});
  LoaderConfig cfg = file_loader_config(1);
  cfg.batch_size = 1;
  Loader loader(ds, cfg);
  loader.start_epoch(0);
  EXPECT_TRUE(loader.next()->images.is_pinned());
  cfg.pin_memory = false;
  Loader unpinned(ds, cfg);
  unpinned.start_epoch(0);
  EXPECT_FALSE(unpinned.next()->images.is_pinned());
}

}  // namespace
}  // namespace semaim::data
