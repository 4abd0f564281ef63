// Tests of the geometry record and targets: boxes, instance masks and label maps follow the crop, resize,
// flip and pad of their image; batches collate soft labels, label maps and variable numbers of boxes per
// image.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <vector>

#include "input_error.h"
#include "semaim/core/rng.h"
#include "semaim/data/dataset.h"
#include "semaim/data/geometry.h"
#include "semaim/data/loader.h"
#include "semaim/data/target.h"

namespace semaim::data {
namespace {

using semaim::test::expect_input_error;

// Pixel rows [top, bottom) and cols [left, right).
struct Rect {
  int64_t top, left, bottom, right;
};

// A (3, h, w) black uint8 image with every rect white.
at::Tensor rect_image(int64_t h, int64_t w, const std::vector<Rect>& rects) {
  at::Tensor img = at::zeros({3, h, w}, at::kByte);
  for (const Rect& r : rects)
    img.narrow(1, r.top, r.bottom - r.top).narrow(2, r.left, r.right - r.left).fill_(255);
  return img;
}

// The rects as a target of an (h, w) image: xyxy boxes, classes, 0/1 masks and a label map holding each
// rect's class (0 elsewhere).
Target rect_target(int64_t h, int64_t w, const std::vector<Rect>& rects,
                   const std::vector<int64_t>& classes) {
  const auto m = static_cast<int64_t>(rects.size());
  Target t;
  t.boxes = at::zeros({m, 4}, at::kFloat);
  t.box_classes = at::tensor(classes, at::kLong).view({m});
  t.masks = at::zeros({m, h, w}, at::kByte);
  t.label_map = at::zeros({h, w}, at::kByte);
  for (int64_t i = 0; i < m; ++i) {
    const Rect& r = rects[static_cast<size_t>(i)];
    t.boxes[i].copy_(at::tensor({static_cast<float>(r.left), static_cast<float>(r.top),
                                 static_cast<float>(r.right), static_cast<float>(r.bottom)}));
    t.masks[i].narrow(0, r.top, r.bottom - r.top).narrow(1, r.left, r.right - r.left).fill_(1);
    t.label_map.narrow(0, r.top, r.bottom - r.top)
        .narrow(1, r.left, r.right - r.left)
        .fill_(classes[static_cast<size_t>(i)]);
  }
  return t;
}

// Source 100x80 (h x w); box rows 10..60, cols 20..60 resized 2x to 100x80; window rows 10..90, cols 0..80.
Geometry scaled_record() {
  Geometry g;
  g.src_h = 100;
  g.src_w = 80;
  g.box = CropBox{10, 20, 50, 40};
  g.resize_h = 100;
  g.resize_w = 80;
  g.window = CropBox{10, 0, 80, 80};
  return g;
}

// The identity record of an (h, w) image.
Geometry identity_record(int64_t h, int64_t w) {
  Geometry g;
  g.src_h = g.resize_h = h;
  g.src_w = g.resize_w = w;
  g.box = g.window = CropBox{0, 0, h, w};
  return g;
}

TEST(GeometryRecord, BoxesMapThroughCropResizeAndWindowAndClipToTheContent) {
  // x -> (x - 20) * 2, y -> (y - 10) * 2 - 10, then clipped to [0, 80].
  const at::Tensor boxes = at::tensor({30.f, 20.f, 50.f, 40.f,   // inside
                                       15.f, 12.f, 25.f, 30.f,   // left part outside the box
                                       0.f, 0.f, 10.f, 60.f,     // left of the box: nothing left
                                       50.f, 55.f, 70.f, 99.f})  // below the window: nothing left
                               .view({4, 4});
  const auto [out, keep] = transform_boxes(scaled_record(), boxes);
  const at::Tensor want =
      at::tensor({20.f, 10.f, 60.f, 50.f, 0.f, 0.f, 10.f, 30.f, 0.f, 0.f, 0.f, 80.f, 60.f, 80.f, 80.f, 80.f})
          .view({4, 4});
  EXPECT_TRUE(at::allclose(out, want)) << out;
  EXPECT_TRUE(at::equal(keep, at::tensor({1, 1, 0, 0}, at::kLong).to(at::kBool)));
}

TEST(GeometryRecord, FlipMirrorsBoxesInTheWindow) {
  Geometry g = scaled_record();
  const at::Tensor boxes = at::tensor({25.f, 20.f, 35.f, 40.f, 21.f, 11.f, 58.f, 59.f}).view({2, 4});
  const at::Tensor plain = transform_boxes(g, boxes).first;
  g.flipped = true;
  const at::Tensor flipped = transform_boxes(g, boxes).first;
  const double w = static_cast<double>(g.window.width);
  EXPECT_TRUE(at::allclose(flipped.select(1, 0), w - plain.select(1, 2)));  // x0' = W - x1
  EXPECT_TRUE(at::allclose(flipped.select(1, 2), w - plain.select(1, 0)));
  EXPECT_TRUE(at::equal(flipped.select(1, 1), plain.select(1, 1)));
  EXPECT_TRUE(at::equal(flipped.select(1, 3), plain.select(1, 3)));
  EXPECT_FLOAT_EQ(flipped[0][0].item<float>(), 50.f);  // (25 - 20) * 2 = 10 from the left: 80 - 30
}

TEST(GeometryRecord, LabelMapsTakeTheNearestSourcePixelCenter) {
  // Each value names its source pixel: r * w + c.
  const at::Tensor src = at::arange(9 * 12, at::kLong).view({9, 12});
  Geometry up = identity_record(9, 12);
  up.resize_h = up.window.height = 18;
  up.resize_w = up.window.width = 24;
  const at::Tensor rows = at::arange(18, at::kLong).div(2, "floor"),
                   cols = at::arange(24, at::kLong).div(2, "floor");
  EXPECT_TRUE(at::equal(transform_label_map(up, src), rows.view({18, 1}) * 12 + cols.view({1, 24})));
  Geometry down = identity_record(9, 12);
  down.resize_h = down.window.height = 3;
  down.resize_w = down.window.width = 4;
  // A 3x shrink takes the center pixel of each 3x3 block.
  const at::Tensor centers = at::arange(3, at::kLong).mul(3).add(1);
  const at::Tensor col_centers = at::arange(4, at::kLong).mul(3).add(1);
  EXPECT_TRUE(
      at::equal(transform_label_map(down, src), centers.view({3, 1}) * 12 + col_centers.view({1, 4})));
  down.flipped = true;
  EXPECT_TRUE(at::equal(transform_label_map(down, src),
                        centers.view({3, 1}) * 12 + col_centers.flip({0}).view({1, 4})));
}

TEST(GeometryRecord, PaddingFillsLabelMapsWithTheIgnoreIndexAndMasksWithZero) {
  Geometry g = identity_record(8, 8);
  g.pad_h = 10;
  g.pad_w = 12;
  g.label_fill = 255;
  const at::Tensor map = at::randint(0, 5, {8, 8}, at::kByte);
  const at::Tensor out = transform_label_map(g, map);
  ASSERT_EQ(out.sizes(), (at::IntArrayRef{10, 12}));
  EXPECT_EQ(out.scalar_type(), at::kLong);
  EXPECT_TRUE(at::equal(out.narrow(0, 0, 8).narrow(1, 0, 8), map.to(at::kLong)));
  EXPECT_TRUE(out.narrow(0, 8, 2).eq(255).all().item<bool>());
  EXPECT_TRUE(out.narrow(1, 8, 4).eq(255).all().item<bool>());
  const at::Tensor masks = at::ones({2, 8, 8}, at::kByte);
  const at::Tensor padded = transform_masks(g, masks);
  ASSERT_EQ(padded.sizes(), (at::IntArrayRef{2, 10, 12}));
  EXPECT_EQ(padded.sum().item<int64_t>(), 2 * 64);
  EXPECT_EQ(padded.narrow(1, 0, 8).narrow(2, 0, 8).sum().item<int64_t>(), 2 * 64);
}

TEST(Target, TransformDropsVanishedBoxesWithTheirClassesAndMasksAndCountsThem) {
  const std::vector<Rect> rects = {{20, 30, 40, 50}, {0, 0, 10, 10}, {50, 50, 60, 70}};
  Target t = rect_target(100, 80, rects, {1, 2, 3});
  t.label = 4;
  t.soft_label = at::tensor({0.25f, 0.75f});
  const Target out = transform_target(scaled_record(), t, "toy[0]");
  EXPECT_EQ(out.label, 4);
  EXPECT_TRUE(at::equal(out.soft_label, t.soft_label));
  EXPECT_EQ(out.dropped_boxes, 1);  // the rect at the top left lies outside the box
  ASSERT_EQ(out.boxes.size(0), 2);
  EXPECT_TRUE(at::equal(out.box_classes, at::tensor({1, 3}, at::kLong)));
  ASSERT_EQ(out.masks.sizes(), (at::IntArrayRef{2, 80, 80}));
  // Each mask covers its box exactly (the 2x resize maps whole pixels to whole pixels).
  for (int64_t i = 0; i < 2; ++i) {
    const at::Tensor b = out.boxes[i];
    const double area = ((b[2] - b[0]) * (b[3] - b[1])).item<double>();
    EXPECT_EQ(out.masks[i].sum().item<int64_t>(), static_cast<int64_t>(area)) << "mask " << i;
  }
  EXPECT_TRUE(at::equal(out.label_map.eq(1), out.masks[0].to(at::kBool)));
}

TEST(Target, MismatchedLabelMapsAndInvertedBoxesAreInputErrorsNamingTheSample) {
  Target t = rect_target(4, 4, {{0, 0, 2, 2}}, {1});
  t.label_map = at::zeros({5, 4}, at::kByte);
  expect_input_error([&] { transform_target(identity_record(4, 4), t, "toy[3]"); },
                     {"toy[3]", "label map is 5x4 but its image is 4x4"});
  t = rect_target(4, 4, {{0, 0, 2, 2}}, {1});
  t.boxes = at::tensor({3.f, 0.f, 1.f, 2.f}).view({1, 4});
  expect_input_error([&] { transform_target(identity_record(4, 4), t, "toy[3]"); }, {"toy[3]", "x1 < x0"});
  t = rect_target(4, 4, {{0, 0, 2, 2}}, {1});
  t.box_classes = at::tensor({1, 2}, at::kLong);
  expect_input_error([&] { transform_target(identity_record(4, 4), t, "toy[3]"); }, {"toy[3]", "classes"});
  // A dataset checks its targets when built.
  ImageSet set{at::zeros({2, 3, 4, 4}, at::kByte), at::zeros({2}, at::kLong), "toy"};
  std::vector<Target> targets = {rect_target(4, 4, {}, {}), rect_target(4, 4, {}, {})};
  targets[1].label_map = at::zeros({4, 3}, at::kByte);
  expect_input_error([&] { (void)MemoryDataset(set, targets); }, {"toy[1]", "label map is 4x3"});
}

TEST(PipelineRecord, FlipIsDrawnRightAfterTheCropDraws) {
  AugmentConfig cfg;
  const Pipeline p = Pipeline::build(cfg, 1);
  for (uint64_t seed = 0; seed < 20; ++seed) {
    std::mt19937_64 rng(seed), expect(seed);
    const Geometry g = p.plan(30, 40, rng);
    const CropBox box = random_resized_crop_params(30, 40, cfg.scale, cfg.ratio, expect);
    EXPECT_EQ(g.box.top, box.top);
    EXPECT_EQ(g.box.left, box.left);
    EXPECT_EQ(g.box.height, box.height);
    EXPECT_EQ(g.box.width, box.width);
    EXPECT_EQ(g.flipped, core::uniform01(expect) < cfg.hflip);
    EXPECT_TRUE(rng == expect) << "the plan drew more than the crop and one uniform";
    EXPECT_EQ(g.src_h, 30);
    EXPECT_EQ(g.out_h(), cfg.out_size);
  }
}

TEST(PipelineRecord, PadPlacesTheImageTopLeftOnAZeroCanvas) {
  AugmentConfig cfg;
  cfg.out_size = 6;
  cfg.pad_size = 9;
  cfg.mean = {0.5};
  cfg.std = {0.25};
  cfg.transforms = {"center_crop", "pad", "normalize"};
  const Pipeline p = Pipeline::build(cfg, 1);
  EXPECT_EQ(p.out_size(), 9);
  EXPECT_EQ(p.names(), cfg.transforms);
  const at::Tensor img = at::randint(0, 256, {1, 6, 6}, at::kByte);
  std::mt19937_64 rng(0);
  const at::Tensor out = transform_sample(img, cfg, rng);
  ASSERT_EQ(out.sizes(), (at::IntArrayRef{1, 9, 9}));
  EXPECT_TRUE(at::allclose(out[0].narrow(0, 0, 6).narrow(1, 0, 6), (img[0].to(at::kFloat) / 255 - 0.5) / 0.25,
                           1e-5, 1e-5));
  EXPECT_TRUE(out[0].narrow(0, 6, 3).eq(0).all().item<bool>());
  EXPECT_TRUE(out[0].narrow(1, 6, 3).eq(0).all().item<bool>());
}

TEST(PipelineRecord, FlipAndPadNamesAreOrderedAndChecked) {
  AugmentConfig cfg;
  auto expect_error = [&](std::vector<std::string> names, int64_t pad, const std::string& needle) {
    cfg.transforms = std::move(names);
    cfg.pad_size = pad;
    expect_input_error([&] { Pipeline::build(cfg, 1); }, needle);
  };
  expect_error({"random_resized_crop", "pad", "hflip"}, 0, "out of order");
  expect_error({"hflip", "random_resized_crop"}, 0, "out of order");
  expect_error({"random_resized_crop", "hflip", "hflip"}, 0, "hflip listed twice");
  expect_error({"random_resized_crop", "pad"}, 10, "pad_size");
  expect_error({"hflip", "pad"}, 0, "does not end at out_size");
  cfg.transforms = {"random_resized_crop", "hflip", "pad"};
  cfg.pad_size = 0;  // pads to out_size: nothing to pad
  EXPECT_EQ(Pipeline::build(cfg, 1).out_size(), cfg.out_size);
}

// 24 images of 48x64 with one white rectangle each (at least 8 pixels a side) and its target.
std::shared_ptr<const MemoryDataset> rectangle_dataset() {
  const int64_t n = 24, h = 48, w = 64;
  std::mt19937_64 rng(123);
  ImageSet set{at::empty({n, 3, h, w}, at::kByte), at::arange(n, at::kLong).remainder(5), "rects"};
  std::vector<Target> targets;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t rh = 8 + core::uniform_int(rng, 20), rw = 8 + core::uniform_int(rng, 30);
    const int64_t top = core::uniform_int(rng, h - rh + 1), left = core::uniform_int(rng, w - rw + 1);
    const Rect r{top, left, top + rh, left + rw};
    set.images[i].copy_(rect_image(h, w, {r}));
    targets.push_back(rect_target(h, w, {r}, {1 + i % 7}));
  }
  return std::make_shared<const MemoryDataset>(set, targets);
}

LoaderConfig rectangle_loader_config(double hflip) {
  LoaderConfig cfg;
  cfg.batch_size = 4;
  cfg.num_workers = 0;
  cfg.shuffle = false;
  cfg.seed = 5;
  cfg.augment.out_size = 32;
  cfg.augment.pad_size = 40;
  cfg.augment.scale = {0.25, 1.0};
  cfg.augment.hflip = hflip;
  cfg.augment.interpolation = "bilinear";
  cfg.augment.mean = {0.0};
  cfg.augment.std = {1.0};  // outputs are pixels / 255
  cfg.augment.transforms = {"random_resized_crop", "hflip", "pad", "normalize"};
  return cfg;
}

std::vector<Batch> run_epoch(Loader& loader, int64_t epoch) {
  loader.start_epoch(epoch);
  std::vector<Batch> out;
  while (auto b = loader.next()) out.push_back(std::move(*b));
  return out;
}

// One transformed sample: the white rectangle's pixels lie in its box (within a pixel of interpolation), the
// label map and mask follow the image (nearest on pixel centers), the padding holds 0 / ignore / 0.
void expect_sample_follows_its_image(const Batch& b, int64_t k, int64_t cls) {
  const at::Tensor image = b.images[k][0], labels = b.label_maps[k];
  EXPECT_TRUE(image.narrow(0, 32, 8).eq(0).all().item<bool>());
  EXPECT_TRUE(image.narrow(1, 32, 8).eq(0).all().item<bool>());
  EXPECT_TRUE(labels.narrow(0, 32, 8).eq(255).all().item<bool>());
  EXPECT_TRUE(labels.narrow(1, 32, 8).eq(255).all().item<bool>());
  const at::Tensor content = image.narrow(0, 0, 32).narrow(1, 0, 32);
  const at::Tensor content_labels = labels.narrow(0, 0, 32).narrow(1, 0, 32);
  // Bilinear gives the nearest source pixel a weight of at least 1/4, so a value above 0.8 (below 0.2) means
  // the nearest source pixel is white (black).
  EXPECT_TRUE(content_labels.masked_select(content > 0.8).eq(cls).all().item<bool>());
  EXPECT_TRUE(content_labels.masked_select(content < 0.2).eq(0).all().item<bool>());
  const at::Tensor bright = (content > 0.5).nonzero();  // (P, 2) rows, cols
  if (b.boxes[static_cast<size_t>(k)].size(0) == 0) {
    EXPECT_EQ(bright.size(0), 0) << "a dropped box left white pixels";
    return;
  }
  const at::Tensor box = b.boxes[static_cast<size_t>(k)][0];
  EXPECT_TRUE(at::equal(b.masks[static_cast<size_t>(k)][0].to(at::kBool), labels.eq(cls)));
  if (bright.size(0) == 0) {  // only a sliver of the rectangle is left inside the crop
    EXPECT_LT(std::min((box[2] - box[0]).item<float>(), (box[3] - box[1]).item<float>()), 1.5f);
    return;
  }
  const auto edge = [&](int64_t dim, bool hi) {
    const at::Tensor v = bright.select(1, dim);
    return static_cast<float>(hi ? v.max().item<int64_t>() + 1 : v.min().item<int64_t>());
  };
  EXPECT_NEAR(edge(1, false), box[0].item<float>(), 1.0f);
  EXPECT_NEAR(edge(0, false), box[1].item<float>(), 1.0f);
  EXPECT_NEAR(edge(1, true), box[2].item<float>(), 1.0f);
  EXPECT_NEAR(edge(0, true), box[3].item<float>(), 1.0f);
}

TEST(TargetLoader, BoxesMasksAndLabelMapsFollowRandomResizedCropFlipAndPad) {
  const auto ds = rectangle_dataset();
  Loader loader(ds, rectangle_loader_config(0.5));
  int64_t kept = 0, dropped = 0;
  for (int64_t epoch = 0; epoch < 4; ++epoch) {
    for (const Batch& b : run_epoch(loader, epoch)) {
      ASSERT_EQ(b.images.sizes(), (at::IntArrayRef{4, 3, 40, 40}));
      ASSERT_EQ(b.label_maps.sizes(), (at::IntArrayRef{4, 40, 40}));
      ASSERT_EQ(b.boxes.size(), 4u);
      ASSERT_EQ(b.masks.size(), 4u);
      EXPECT_FALSE(b.soft_labels.defined());
      for (int64_t k = 0; k < 4; ++k) {
        const int64_t idx = b.indices[k].item<int64_t>();
        EXPECT_EQ(b.labels[k].item<int64_t>(), idx % 5);
        ASSERT_EQ(b.box_classes[static_cast<size_t>(k)].size(0), b.boxes[static_cast<size_t>(k)].size(0));
        if (b.boxes[static_cast<size_t>(k)].size(0) == 1)
          EXPECT_EQ(b.box_classes[static_cast<size_t>(k)][0].item<int64_t>(), 1 + idx % 7);
        kept += b.boxes[static_cast<size_t>(k)].size(0);
        SCOPED_TRACE("epoch " + std::to_string(epoch) + " sample " + std::to_string(idx));
        expect_sample_follows_its_image(b, k, 1 + idx % 7);
      }
      dropped += b.dropped_boxes;
    }
  }
  EXPECT_EQ(kept + dropped, 4 * 24);
}

TEST(TargetLoader, FlipMirrorsImagesBoxesMasksAndLabelMapsOfTheSameCrop) {
  const auto ds = rectangle_dataset();
  Loader plain_loader(ds, rectangle_loader_config(0.0)), flip_loader(ds, rectangle_loader_config(1.0));
  const std::vector<Batch> plain = run_epoch(plain_loader, 1), flipped = run_epoch(flip_loader, 1);
  ASSERT_EQ(plain.size(), flipped.size());
  for (size_t i = 0; i < plain.size(); ++i) {
    // The flip draw comes after the crop draws, so both loaders crop alike; only the mirror differs.
    auto content = [](const at::Tensor& t) { return t.narrow(-2, 0, 32).narrow(-1, 0, 32); };
    EXPECT_TRUE(at::equal(content(flipped[i].images), content(plain[i].images).flip({-1})));
    EXPECT_TRUE(at::equal(content(flipped[i].label_maps), content(plain[i].label_maps).flip({-1})));
    for (size_t k = 0; k < plain[i].boxes.size(); ++k) {
      const at::Tensor a = plain[i].boxes[k], b = flipped[i].boxes[k];
      ASSERT_EQ(a.size(0), b.size(0));
      if (a.size(0) == 0) continue;
      EXPECT_TRUE(at::allclose(b.select(1, 0), 32.0 - a.select(1, 2)));  // x0' = W - x1
      EXPECT_TRUE(at::allclose(b.select(1, 2), 32.0 - a.select(1, 0)));
      EXPECT_TRUE(at::equal(b.select(1, 1), a.select(1, 1)));
      EXPECT_TRUE(at::equal(content(flipped[i].masks[k]), content(plain[i].masks[k]).flip({-1})));
    }
  }
}

TEST(TargetLoader, BatchesWithZeroOneAndThreeBoxesPerImageCollate) {
  // 48x64 images through center_crop 32 (rows 8..40, cols 16..48) and pad 40.
  const std::vector<std::vector<Rect>> rects = {
      {},
      {{10, 20, 20, 30}},
      {{10, 20, 20, 30}, {0, 0, 10, 10}, {30, 40, 45, 60}, {12, 30, 14, 34}}};  // the second one vanishes
  ImageSet set{at::empty({3, 3, 48, 64}, at::kByte), at::tensor({7, 8, 9}, at::kLong), "boxes"};
  std::vector<Target> targets;
  for (size_t i = 0; i < rects.size(); ++i) {
    set.images[static_cast<int64_t>(i)].copy_(rect_image(48, 64, rects[i]));
    std::vector<int64_t> classes;
    for (size_t j = 0; j < rects[i].size(); ++j) classes.push_back(static_cast<int64_t>(10 * i + j));
    targets.push_back(rect_target(48, 64, rects[i], classes));
  }
  LoaderConfig cfg = rectangle_loader_config(0.0);
  cfg.batch_size = 3;
  cfg.augment.transforms = {"center_crop", "pad"};
  Loader loader(std::make_shared<const MemoryDataset>(set, targets), cfg);
  const std::vector<Batch> batches = run_epoch(loader, 0);
  ASSERT_EQ(batches.size(), 1u);
  const Batch& b = batches[0];
  EXPECT_TRUE(at::equal(b.labels, set.labels));
  ASSERT_EQ(b.boxes.size(), 3u);
  EXPECT_EQ(b.boxes[0].sizes(), (at::IntArrayRef{0, 4}));
  EXPECT_EQ(b.masks[0].sizes(), (at::IntArrayRef{0, 40, 40}));
  EXPECT_EQ(b.box_classes[0].size(0), 0);
  EXPECT_TRUE(at::equal(b.boxes[1], at::tensor({4.f, 2.f, 14.f, 12.f}).view({1, 4})));
  EXPECT_TRUE(at::equal(
      b.boxes[2],
      at::tensor({4.f, 2.f, 14.f, 12.f, 24.f, 22.f, 32.f, 32.f, 14.f, 4.f, 18.f, 6.f}).view({3, 4})));
  EXPECT_TRUE(at::equal(b.box_classes[2], at::tensor({20, 22, 23}, at::kLong)));
  EXPECT_EQ(b.masks[2].sizes(), (at::IntArrayRef{3, 40, 40}));
  EXPECT_EQ(b.masks[2][1].sum().item<int64_t>(), 8 * 10);  // the clipped rectangle
  EXPECT_EQ(b.dropped_boxes, 1);
  EXPECT_EQ(b.label_maps.sizes(), (at::IntArrayRef{3, 40, 40}));
}

TEST(TargetLoader, SoftLabelsStackAndMixedTargetPartsAreInputErrors) {
  ImageSet set{at::zeros({4, 1, 8, 8}, at::kByte), at::arange(4, at::kLong), "soft"};
  std::vector<Target> targets(4);
  for (int64_t i = 0; i < 4; ++i) {  // label smoothing 0.1 over 4 classes
    targets[static_cast<size_t>(i)].soft_label = at::full({4}, 0.025f);
    targets[static_cast<size_t>(i)].soft_label[i] = 0.925f;
  }
  LoaderConfig cfg;
  cfg.batch_size = 4;
  cfg.num_workers = 1;
  cfg.shuffle = false;
  cfg.augment.out_size = 8;
  Loader loader(std::make_shared<const MemoryDataset>(set, targets), cfg);
  const Batch b = run_epoch(loader, 0).at(0);
  ASSERT_EQ(b.soft_labels.sizes(), (at::IntArrayRef{4, 4}));
  EXPECT_TRUE(at::allclose(b.soft_labels.sum(1), at::ones({4})));
  EXPECT_TRUE(at::equal(b.soft_labels.argmax(1), b.labels));
  EXPECT_FALSE(b.label_maps.defined());
  EXPECT_TRUE(b.boxes.empty());
  targets[2].soft_label = at::Tensor();
  Loader mixed(std::make_shared<const MemoryDataset>(set, targets), cfg);
  mixed.start_epoch(0);
  expect_input_error([&] { mixed.next(); }, {"soft", "3 of the 4 samples", "soft label"});
}

}  // namespace
}  // namespace semaim::data
