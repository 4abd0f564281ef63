// COCO instances datasets: ids, contiguous categories, boxes and masks as targets (masks equal to
// pycocotools' annToMask), crowd handling, skipped images, errors naming the file and annotation, degenerate
// data dropped and counted, bad image files through BadImage, and the fmnist-det dataset
// tools/make_detdata.py builds.
#include <gtest/gtest.h>
#include <opencv2/imgcodecs.hpp>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "input_error.h"
#include "run_command.h"
#include "semaim/data/coco_dataset.h"
#include "semaim/data/decode.h"
#include "semaim/data/loader.h"
#include "semaim_paths.h"
#include "temp_dir.h"

namespace {
namespace fs = std::filesystem;
using json = nlohmann::json;
using semaim::data::CocoDataset;
using semaim::data::CocoOptions;

// Three images: 1 (30x40) with a polygon, a compressed RLE and a crowd region; 5 (20x20) with only a crowd
// region; 9 (24x32) with an uncompressed RLE. Categories 7, 3, 11 (contiguous 1, 0, 2).
json small_coco() {
  json j;
  j["images"] = {{{"id", 5}, {"file_name", "b.png"}, {"height", 20}, {"width", 20}},
                 {{"id", 1}, {"file_name", "a.png"}, {"height", 30}, {"width", 40}},
                 {{"id", 9}, {"file_name", "sub/c.png"}, {"height", 24}, {"width", 32}}};
  j["categories"] = {
      {{"id", 7}, {"name", "seven"}}, {{"id", 3}, {"name", "three"}}, {{"id", 11}, {"name", "eleven"}}};
  // The RLE counts are filled in by with_rles.
  j["annotations"] = {{{"id", 10},
                       {"image_id", 1},
                       {"category_id", 7},
                       {"bbox", {2.0, 3.0, 10.0, 8.0}},
                       {"area", 60.0},
                       {"iscrowd", 0},
                       {"segmentation", {{2.0, 3.0, 12.0, 3.0, 12.0, 11.0, 2.0, 11.0}}}},
                      {{"id", 11},
                       {"image_id", 1},
                       {"category_id", 3},
                       {"bbox", {20.0, 5.0, 4.0, 3.0}},
                       {"area", 12.0},
                       {"iscrowd", 0},
                       {"segmentation", {{"size", {30, 40}}, {"counts", ""}}}},
                      {{"id", 12},
                       {"image_id", 1},
                       {"category_id", 11},
                       {"bbox", {0.0, 20.0, 40.0, 10.0}},
                       {"area", 400.0},
                       {"iscrowd", 1},
                       {"segmentation", {{"size", {30, 40}}, {"counts", json::array()}}}},
                      {{"id", 13},
                       {"image_id", 5},
                       {"category_id", 7},
                       {"bbox", {0.0, 0.0, 5.0, 5.0}},
                       {"area", 25.0},
                       {"iscrowd", 1},
                       {"segmentation", {{"size", {20, 20}}, {"counts", json::array()}}}},
                      {{"id", 14},
                       {"image_id", 9},
                       {"category_id", 11},
                       {"bbox", {1.0, 2.0, 3.0, 4.0}},
                       {"area", 12.0},
                       {"iscrowd", 0},
                       {"segmentation", {{"size", {24, 32}}, {"counts", json::array()}}}}};
  return j;
}

// Column-major runs (zeros first) of an (h, w) mask holding the rectangle rows [y0, y1) x cols [x0, x1).
std::vector<uint32_t> rect_runs(int64_t h, int64_t w, int64_t y0, int64_t y1, int64_t x0, int64_t x1) {
  at::Tensor m = at::zeros({h, w}, at::kByte);
  m.slice(0, y0, y1).slice(1, x0, x1).fill_(1);
  return semaim::data::coco::rle_from_mask(m).counts;
}

json with_rles(json j) {
  auto& a = j["annotations"];
  a[1]["segmentation"]["counts"] =
      semaim::data::coco::rle_to_string({30, 40, rect_runs(30, 40, 5, 8, 20, 24)});
  a[2]["segmentation"]["counts"] = rect_runs(30, 40, 20, 30, 0, 40);
  a[3]["segmentation"]["counts"] = rect_runs(20, 20, 0, 5, 0, 5);
  a[4]["segmentation"]["counts"] = rect_runs(24, 32, 2, 6, 1, 4);
  return j;
}

struct CocoFiles {
  semaim::test::TempDir dir;
  std::string json_path = dir.file("instances.json");
  std::string images = dir.file("images");

  explicit CocoFiles(const json& j) {
    fs::create_directories(images + "/sub");
    for (const auto& im : j.value("images", json::array())) {
      if (!im.is_object() || !im.contains("file_name") || !im["height"].is_number_integer()) continue;
      cv::imwrite(images + "/" + im["file_name"].get<std::string>(),
                  cv::Mat(im["height"].get<int>(), im["width"].get<int>(), CV_8UC3, cv::Scalar(40, 80, 120)));
    }
    write(j.dump());
  }
  void write(const std::string& text) const { std::ofstream(json_path) << text; }
  CocoDataset load(CocoOptions opt = {}) const { return CocoDataset(json_path, images, opt); }
};

semaim::data::Pipeline identity_pipeline(int64_t side) {
  semaim::data::AugmentConfig cfg;
  cfg.out_size = side;
  cfg.transforms = {"center_crop"};
  cfg.mean = {0.5};
  cfg.std = {0.5};
  return semaim::data::Pipeline::build(cfg, 3);
}

TEST(CocoDataset, ImagesSortedByIdWithContiguousCategoriesAndTargets) {
  const CocoFiles f(with_rles(small_coco()));
  const CocoDataset set = f.load();
  ASSERT_EQ(set.size(), 2);  // image 5 holds only a crowd region
  EXPECT_EQ(set.stats().skipped_images, 1);
  EXPECT_EQ(set.image(0).id, 1);
  EXPECT_EQ(set.image(0).file_name, "a.png");
  EXPECT_EQ(set.image(0).height, 30);
  EXPECT_EQ(set.image(0).width, 40);
  EXPECT_EQ(set.image(1).id, 9);
  EXPECT_EQ(set.source(1), f.images + "/sub/c.png");
  EXPECT_EQ(set.category_ids(), (std::vector<int64_t>{3, 7, 11}));
  EXPECT_EQ(set.classes(), (std::vector<std::string>{"three", "seven", "eleven"}));
  EXPECT_EQ(set.contiguous_id(11), 2);
  EXPECT_EQ(set.contiguous_id(4), -1);
  EXPECT_TRUE(set.has_masks());

  const semaim::data::Target t = set.target(0);  // the crowd region is no target
  ASSERT_EQ(t.boxes.size(0), 2);
  EXPECT_TRUE(at::equal(t.boxes, at::tensor({2.f, 3.f, 12.f, 11.f, 20.f, 5.f, 24.f, 8.f}).reshape({2, 4})));
  EXPECT_TRUE(at::equal(t.box_classes, at::tensor({1, 0}, at::kLong)));
  ASSERT_EQ(t.masks.sizes(), (at::IntArrayRef{2, 30, 40}));
  EXPECT_EQ(t.masks[1].sum().item<int64_t>(), 12);
  EXPECT_EQ(t.masks[1].slice(0, 5, 8).slice(1, 20, 24).sum().item<int64_t>(), 12);
  ASSERT_EQ(set.annotations(0).size(), 3u);
  EXPECT_TRUE(set.annotations(0)[2].iscrowd);
  EXPECT_DOUBLE_EQ(set.annotations(0)[2].area, 400.0);
  EXPECT_EQ(set.target(1).masks[0].slice(0, 2, 6).slice(1, 1, 4).sum().item<int64_t>(), 12);

  CocoOptions all;
  all.skip_empty = false;
  const CocoDataset eval = f.load(all);
  ASSERT_EQ(eval.size(), 3);
  EXPECT_EQ(eval.image(1).id, 5);
  EXPECT_EQ(eval.target(1).boxes.size(0), 0);
  EXPECT_EQ(eval.target(1).masks.sizes(), (at::IntArrayRef{0, 20, 20}));
}

TEST(CocoDataset, MasksEqualPycocotoolsAnnToMask) {
  if (!fs::exists(SEMAIM_PYTHON))
    GTEST_SKIP() << "no venv python at " << SEMAIM_PYTHON << " (run tools/setup.sh)";
  const CocoFiles f(with_rles(small_coco()));
  const std::string out = f.dir.file("ref");
  const auto r =
      semaim::testing::run_command(std::string(SEMAIM_PYTHON) + " " + SEMAIM_SOURCE_DIR +
                                   "/tests/data/coco_reference_masks.py " + f.json_path + " " + out + " 1");
  if (r.exit_code == 3) GTEST_SKIP() << r.output;
  ASSERT_EQ(r.exit_code, 0) << r.output;
  CocoOptions all;
  all.skip_empty = false;
  const CocoDataset set = f.load(all);
  int checked = 0;
  for (int64_t i = 0; i < set.size(); ++i) {
    const auto& im = set.image(i);
    for (const auto& a : set.annotations(i)) {
      std::ifstream in(out + "/" + std::to_string(a.id) + ".bin", std::ios::binary);
      ASSERT_TRUE(in) << "no reference mask for annotation " << a.id;
      std::vector<char> ref(static_cast<size_t>(im.height * im.width));
      in.read(ref.data(), static_cast<std::streamsize>(ref.size()));
      const at::Tensor expect = at::from_blob(ref.data(), {im.height, im.width}, at::kByte).clone();
      EXPECT_TRUE(at::equal(
          semaim::data::coco::rle_to_mask(semaim::data::annotation_rle(a, im.height, im.width)), expect))
          << "annotation " << a.id;
      ++checked;
    }
  }
  EXPECT_EQ(checked, 5);
}

// Each edit of a valid file and a needle its error must carry besides the file name.
TEST(CocoDataset, MalformedFilesAreInputErrorsNamingFileAndAnnotation) {
  const json good = with_rles(small_coco());
  auto edit = [&](auto&& change) {
    json j = good;
    change(j);
    return j;
  };
  const std::vector<std::pair<json, std::string>> cases = {
      {edit([](json& j) { j.erase("annotations"); }), "\"annotations\""},
      {edit([](json& j) { j["images"][1].erase("height"); }), "images[1]: has no \"height\""},
      {edit([](json& j) { j["images"][1]["id"] = "one"; }), "id must be an integer"},
      {edit([](json& j) { j["annotations"][0]["image_id"] = 2; }), "annotation id 10: unknown image id 2"},
      {edit([](json& j) { j["annotations"][1]["category_id"] = 4; }),
       "annotation id 11: unknown category id 4"},
      {edit([](json& j) {
         j["annotations"][0]["bbox"] = {30.0, 3.0, 20.0, 8.0};
       }),
       "annotation id 10: bbox"},
      {edit([](json& j) {
         j["annotations"][0]["bbox"] = {2.0, 3.0};
       }),
       "annotation id 10: bbox must be"},
      {edit([](json& j) { j["annotations"][0]["segmentation"] = json::array(); }),
       "annotation id 10: segmentation is "
       "an empty polygon list"},
      {edit([](json& j) { j["annotations"][0]["segmentation"] = {json::array()}; }),
       "annotation id 10: "
       "segmentation holds an empty"},
      {edit([](json& j) {
         j["annotations"][0]["segmentation"] = {{1.0, 2.0, 3.0}};
       }),
       "odd number"},
      {edit([](json& j) {
         j["annotations"][0]["segmentation"] = {{1.0, 2.0, 300.0, 2.0, 3.0, 9.0}};
       }),
       "outside"},
      {edit([](json& j) {
         j["annotations"][1]["segmentation"]["size"] = {30, 41};
       }),
       "annotation id 11: RLE size"},
      {edit([](json& j) {
         j["annotations"][2]["segmentation"]["counts"] = {5, 7};
       }),
       "annotation id 12"},
      {edit([](json& j) { j["annotations"][1]["segmentation"]["counts"] = "!!"; }), "annotation id 11"},
      {edit([](json& j) { j["annotations"][4]["id"] = 10; }), "annotation id 10: appears twice"},
      {edit([](json& j) { j["annotations"][4].erase("segmentation"); }),
       "annotation id 14: has no segmentation"},
      {edit([](json& j) { j["annotations"][0]["iscrowd"] = 2; }), "iscrowd must be 0 or 1"},
  };
  for (const auto& [j, needle] : cases) {
    const CocoFiles f(j);
    semaim::test::expect_input_error([&] { f.load(); }, {f.json_path.c_str(), needle.c_str()});
  }
  const CocoFiles f(good);
  f.write("{\"images\": [");
  semaim::test::expect_input_error([&] { f.load(); }, {f.json_path.c_str(), "malformed JSON"});
  semaim::test::expect_input_error([&] { CocoDataset(f.dir.file("missing.json"), f.images); },
                                   "missing.json");
}

TEST(CocoDataset, DegenerateAnnotationsAreDroppedOrClippedAndCounted) {
  json j = with_rles(small_coco());
  j["annotations"][0]["bbox"] = {2.0, 3.0, 0.0, 8.0};   // no area: dropped
  j["annotations"][1]["bbox"] = {37.5, 5.0, 3.0, 3.0};  // 0.5 px out: clipped
  j["annotations"][4]["segmentation"] = json::array();
  j["annotations"][4]["segmentation"].push_back({1.0, 2.0, 3.0, 4.0});  // 2 points: dropped
  j["annotations"].push_back({{"id", 15},
                              {"image_id", 9},
                              {"category_id", 3},
                              {"bbox", {1.0, 1.0, 5.0, 5.0}},
                              {"segmentation", {{1.0, 1.0, 6.0, 1.0, 6.0, 6.0}, {1.0, 1.0, 2.0, 2.0}}}});
  const CocoFiles f(j);
  const CocoDataset set = f.load();
  EXPECT_EQ(set.stats().dropped_empty_boxes, 1);
  EXPECT_EQ(set.stats().clipped_boxes, 1);
  EXPECT_EQ(set.stats().dropped_bad_polygons, 1);
  ASSERT_EQ(set.size(), 2);
  const auto t = set.target(0);
  ASSERT_EQ(t.boxes.size(0), 1);
  EXPECT_TRUE(at::equal(t.boxes[0], at::tensor({37.5f, 5.f, 40.f, 8.f})));
  ASSERT_EQ(set.annotations(1).size(), 1u);  // annotation 15, its 2-point polygon left out
  EXPECT_EQ(set.annotations(1)[0].id, 15);
  EXPECT_EQ(set.annotations(1)[0].polygons.size(), 1u);
  EXPECT_DOUBLE_EQ(set.annotations(1)[0].area, 25.0);  // no "area": the box's
}

TEST(CocoDataset, UndecodableOrResizedImagesAreBadImages) {
  const CocoFiles f(with_rles(small_coco()));
  const CocoDataset set = f.load();
  const auto pipeline = identity_pipeline(16);
  std::vector<float> dst(3 * 16 * 16);
  std::mt19937_64 rng(0);
  semaim::data::Target t;
  const auto g = set.load_with_target(0, pipeline, rng, dst.data(), &t);
  EXPECT_EQ(g.src_h, 30);
  EXPECT_EQ(t.boxes.size(0), 2);
  std::ofstream(f.images + "/a.png") << "not an image";
  EXPECT_THROW(set.load_with_target(0, pipeline, rng, dst.data(), &t), semaim::data::BadImage);
  cv::imwrite(f.images + "/sub/c.png", cv::Mat(25, 32, CV_8UC3, cv::Scalar(1, 2, 3)));
  try {
    set.load_with_target(1, pipeline, rng, dst.data(), &t);
    ADD_FAILURE() << "no BadImage for an image of another size than the JSON's";
  } catch (const semaim::data::BadImage& e) {
    EXPECT_NE(std::string(e.what()).find("c.png"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("32x24"), std::string::npos) << e.what();
  }
}

TEST(CocoDataset, LayoutPrefersCoco2017Names) {
  semaim::test::TempDir dir;
  const std::string root = dir.path().string();
  EXPECT_EQ(semaim::data::coco_layout(root, "val").annotations, root + "/annotations/instances_val.json");
  EXPECT_EQ(semaim::data::coco_layout(root, "val").image_dir, root + "/val");
  fs::create_directories(root + "/val2017");
  EXPECT_EQ(semaim::data::coco_layout(root, "val").annotations, root + "/annotations/instances_val2017.json");
  EXPECT_EQ(semaim::data::coco_layout(root, "val").image_dir, root + "/val2017");
}

// The seed corpus of fuzz_coco_json reaches both outcomes: its valid and degenerate files load, its broken
// ones are InputErrors.
TEST(CocoDataset, FuzzSeedsLoadOrFailAsNamed) {
  semaim::test::TempDir dir;
  fs::create_directories(dir.path());
  int valid = 0, broken = 0;
  for (const auto& e : fs::directory_iterator(std::string(SEMAIM_SOURCE_DIR) + "/fuzz/corpus/coco_json")) {
    const std::string name = e.path().filename().string(), path = e.path().string();
    CocoOptions all;
    all.skip_empty = false;
    if (name.rfind("broken-", 0) == 0) {
      EXPECT_THROW(CocoDataset(path, dir.path().string(), all), semaim::InputError) << name;
      ++broken;
    } else {
      EXPECT_GT(CocoDataset(path, dir.path().string(), all).size(), 0) << name;
      ++valid;
    }
  }
  EXPECT_GE(valid, 3);
  EXPECT_GE(broken, 8);
}

// fmnist-det (tools/make_detdata.py, built by tools/setup.sh): every annotation's mask holds `area` pixels
// and has `bbox` as its box, targets lie inside their images, and masks equal pycocotools' on a sample.
class FmnistDet : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(std::string(SEMAIM_DETDATA_DIR) + "/.complete"))
      GTEST_SKIP() << "no fmnist-det dataset at " << SEMAIM_DETDATA_DIR << " (run tools/setup.sh)";
  }
};

TEST_F(FmnistDet, AreasBoxesAndTargetsAgreeWithTheMasks) {
  for (const char* split : {"train", "val"}) {
    const auto l = semaim::data::coco_layout(SEMAIM_DETDATA_DIR, split);
    CocoOptions all;
    all.skip_empty = false;
    const CocoDataset set(l.annotations, l.image_dir, all);
    EXPECT_EQ(set.classes().size(), 10u);
    EXPECT_EQ(set.stats().dropped_empty_boxes + set.stats().dropped_bad_polygons + set.stats().clipped_boxes,
              0);
    int64_t crowd = 0, checked = 0;
    for (int64_t i = 0; i < set.size(); ++i) {
      const auto& im = set.image(i);
      for (const auto& a : set.annotations(i)) {
        const auto rle = semaim::data::annotation_rle(a, im.height, im.width);
        ASSERT_EQ(static_cast<double>(semaim::data::coco::rle_area(rle)), a.area)
            << split << " annotation " << a.id;
        const auto box = semaim::data::coco::rle_to_bbox(rle);
        for (int k = 0; k < 4; ++k) ASSERT_EQ(box[k], a.bbox[k]) << split << " annotation " << a.id;
        crowd += a.iscrowd;
        ++checked;
      }
      const auto t = set.target(i);
      EXPECT_TRUE((t.boxes.select(1, 0) >= 0).all().item<bool>() &&
                  (t.boxes.select(1, 1) >= 0).all().item<bool>());
      EXPECT_TRUE((t.boxes.select(1, 2) <= im.width).all().item<bool>() &&
                  (t.boxes.select(1, 3) <= im.height).all().item<bool>());
      EXPECT_EQ(t.masks.size(0), t.boxes.size(0));
    }
    EXPECT_GT(crowd, 0) << split;
    EXPECT_GT(checked, set.size()) << split;
  }
}

TEST_F(FmnistDet, MasksEqualPycocotoolsOnASample) {
  if (!fs::exists(SEMAIM_PYTHON)) GTEST_SKIP() << "no venv python at " << SEMAIM_PYTHON;
  semaim::test::TempDir dir;
  const auto l = semaim::data::coco_layout(SEMAIM_DETDATA_DIR, "val");
  const auto r = semaim::testing::run_command(std::string(SEMAIM_PYTHON) + " " + SEMAIM_SOURCE_DIR +
                                              "/tests/data/coco_reference_masks.py " + l.annotations + " " +
                                              dir.path().string() + " 40");
  if (r.exit_code == 3) GTEST_SKIP() << r.output;
  ASSERT_EQ(r.exit_code, 0) << r.output;
  CocoOptions all;
  all.skip_empty = false;
  const CocoDataset set(l.annotations, l.image_dir, all);
  int64_t polygons = 0, rles = 0;
  for (int64_t i = 0; i < set.size(); ++i) {
    const auto& im = set.image(i);
    for (const auto& a : set.annotations(i)) {
      std::ifstream in(dir.file(std::to_string(a.id) + ".bin"), std::ios::binary);
      if (!in) continue;
      std::vector<char> ref(static_cast<size_t>(im.height * im.width));
      in.read(ref.data(), static_cast<std::streamsize>(ref.size()));
      const at::Tensor expect = at::from_blob(ref.data(), {im.height, im.width}, at::kByte).clone();
      ASSERT_TRUE(at::equal(
          semaim::data::coco::rle_to_mask(semaim::data::annotation_rle(a, im.height, im.width)), expect))
          << "annotation " << a.id;
      (a.polygons.empty() ? rles : polygons) += 1;
    }
  }
  EXPECT_GT(polygons, 20);
  EXPECT_GT(rles, 5);
}

// Through the loader at half size: every image's boxes are the JSON's halved (resize 128 -> 64) and each mask
// lies inside its box.
TEST_F(FmnistDet, BatchesThroughTheLoaderCarryInstancesPerImage) {
  const auto l = semaim::data::coco_layout(SEMAIM_DETDATA_DIR, "val");
  auto set = std::make_shared<const CocoDataset>(l.annotations, l.image_dir);
  semaim::data::LoaderConfig cfg;
  cfg.batch_size = 8;
  cfg.num_workers = 0;
  cfg.shuffle = false;
  cfg.pin_memory = false;
  cfg.augment.out_size = 64;
  cfg.augment.random = false;
  cfg.augment.mean = {0.5};
  cfg.augment.std = {0.5};
  semaim::data::Loader loader(set, cfg);
  loader.start_epoch(0);
  const auto batch = loader.next();
  ASSERT_TRUE(batch.has_value());
  ASSERT_EQ(batch->boxes.size(), 8u);
  for (int64_t k = 0; k < 8; ++k) {
    const auto source = set->target(batch->indices[k].item<int64_t>());
    ASSERT_TRUE(at::allclose(batch->boxes[static_cast<size_t>(k)], source.boxes / 2));
    EXPECT_TRUE(at::equal(batch->box_classes[static_cast<size_t>(k)], source.box_classes));
    const at::Tensor m = batch->masks[static_cast<size_t>(k)];
    ASSERT_EQ(m.sizes(), (at::IntArrayRef{source.boxes.size(0), 64, 64}));
    for (int64_t g = 0; g < m.size(0); ++g) {
      const at::Tensor rows = m[g].sum(1).nonzero(), cols = m[g].sum(0).nonzero();
      const float* b = batch->boxes[static_cast<size_t>(k)][g].data_ptr<float>();
      ASSERT_GT(rows.size(0), 0);
      EXPECT_GE(cols.min().item<float>(), b[0] - 1);
      EXPECT_LE(cols.max().item<float>() + 1, b[2] + 1);
      EXPECT_GE(rows.min().item<float>(), b[1] - 1);
      EXPECT_LE(rows.max().item<float>() + 1, b[3] + 1);
    }
  }
}

}  // namespace
