// `semaim visualize`'s maps and drawing (include/semaim/tasks/visualize.h): the cls attention against an ATen
// composition over the last block's q/k, the similarity against the ordering area's, the order colours, the
// un-normalized reconstruction, TensorBoard images read back by the tensorboard package, and the pretraining
// hook leaving the model and the generators untouched.
#include <gtest/gtest.h>

#include <ATen/CPUGeneratorImpl.h>
#include <torch/nn/utils.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "run_command.h"
#include "semaim/config/config.h"
#include "semaim/core/errors.h"
#include "semaim/engine/run.h"
#include "semaim/io/tensorboard.h"
#include "semaim/models/targets.h"
#include "semaim/models/weights.h"
#include "semaim/tasks/models.h"
#include "semaim/tasks/schema.h"
#include "semaim/tasks/visualize.h"
#include "semaim_paths.h"
#include "temp_dir.h"

namespace fs = std::filesystem;
using namespace semaim;

namespace {

models::AimConfig tiny_aim() {
  models::AimConfig c;
  c.vit.img_size = 16;
  c.vit.patch_size = 4;
  c.vit.in_chans = 1;
  c.vit.embed_dim = 32;
  c.vit.depth = 2;
  c.vit.num_heads = 2;
  c.decoder_depth = 2;
  return c;
}

tasks::PictureSettings tiny_settings() {
  tasks::PictureSettings s;
  for (const auto& n : tasks::default_picture_strategies()) s.strategies.push_back(ordering::parse_strategy(n));
  s.mean = {0.5};
  s.std = {0.25};
  s.seed = 7;
  return s;
}

// A model with weights away from their init, so attention is not uniform.
models::AimVit tiny_model() {
  at::manual_seed(3);
  models::AimVit m(tiny_aim());
  at::NoGradGuard ng;
  for (auto& p : m->parameters()) p.add_(at::randn_like(p) * 0.2);
  m->eval();
  return m;
}

std::string read_all(const fs::path& p) {
  std::ifstream is(p, std::ios::binary);
  std::stringstream ss;
  ss << is.rdbuf();
  return ss.str();
}

// Runs a Python snippet with the venv's python; rc 77 = the tensorboard package is missing.
semaim::testing::CommandResult python(const test::TempDir& tmp, const std::string& code) {
  const std::string script = tmp.file("read.py");
  std::ofstream(script) << code;
  return semaim::testing::run_command("'" + std::string(SEMAIM_PYTHON) + "' '" + script + "'");
}

// Every image event of the files in dir as "tag step width height" lines.
const char* kReadImages = R"(
import sys
try:
    from tensorboard.backend.event_processing import event_accumulator as ea
except ImportError:
    sys.exit(77)
acc = ea.EventAccumulator(sys.argv[1] if len(sys.argv) > 1 else DIR, size_guidance={ea.IMAGES: 0})
acc.Reload()
for tag in sorted(acc.Tags()[ea.IMAGES]):
    for e in acc.Images(tag):
        print(tag, e.step, e.width, e.height, len(e.encoded_image_string))
)";

}  // namespace

TEST(VisualizeMaps, EncodeWithAttentionKeepsTheTokensOfForwardFeatures) {
  models::AimVit m = tiny_model();
  const at::Tensor imgs = at::randn({2, 1, 16, 16});
  auto [tokens, probs] = m->encode_with_attention(imgs);
  EXPECT_TRUE(at::equal(tokens, m->forward_features(imgs)));
  EXPECT_EQ(probs.sizes(), (std::vector<int64_t>{2, 2, 17, 17}));
  EXPECT_TRUE(at::allclose(probs.sum(-1), at::ones({2, 2, 17}), 1e-5, 1e-6));
}

TEST(VisualizeMaps, ClsAttentionEqualsSoftmaxOfTheLastBlocksQueriesAndKeys) {
  models::AimVit m = tiny_model();
  const at::Tensor imgs = at::randn({2, 1, 16, 16});
  at::NoGradGuard ng;
  // The last block's input: block 0's output with its cls token, from the public intermediates.
  models::IntermediatesOptions o;
  o.indices = std::vector<int64_t>{0};
  o.output_fmt = models::FeatureFormat::kNLC;
  o.return_prefix_tokens = true;
  o.intermediates_only = true;
  const models::Intermediates it = m->forward_intermediates(imgs, o);
  const at::Tensor x = at::cat({it.prefix_tokens[0], it.intermediates[0]}, 1);  // (2, 17, 32)
  models::Block blk = m->block(1);  // a handle sharing the block
  const at::Tensor qkv = blk->attn->qkv(blk->norm1(x)).view({2, 17, 3, 2, 16});
  const at::Tensor q = qkv.select(2, 0).transpose(1, 2), k = qkv.select(2, 1).transpose(1, 2);
  const at::Tensor attn = at::softmax(at::matmul(q, k.transpose(-2, -1)) / std::sqrt(16.0), -1);
  const at::Tensor want = attn.select(2, 0).narrow(-1, 1, 16).mean(1);  // (2, 16)

  auto [tokens, probs] = m->encode_with_attention(imgs);
  EXPECT_TRUE(at::allclose(tasks::cls_attention_map(probs), want, 1e-5, 1e-7));
  const tasks::PictureMaps maps = tasks::picture_maps(*m, imgs, {0, 1}, tiny_settings());
  EXPECT_TRUE(at::allclose(maps.attention, want, 1e-5, 1e-7));
  EXPECT_FALSE(at::allclose(want, at::full_like(want, 1.0 / 16), 1e-3, 1e-4)) << "attention is uniform";
}

TEST(VisualizeMaps, SimilarityIsTheOrderingAreasAndOrdersFollowTheStrategies) {
  models::AimVit m = tiny_model();
  const at::Tensor imgs = at::randn({3, 1, 16, 16});
  const tasks::PictureSettings s = tiny_settings();
  const tasks::PictureMaps maps = tasks::picture_maps(*m, imgs, {0, 1, 2}, s);
  at::NoGradGuard ng;
  const at::Tensor sim = ordering::cls_similarity(m->encode(imgs), ordering::SimilaritySource::kCls);
  EXPECT_TRUE(at::equal(maps.similarity, sim));
  ASSERT_EQ(maps.ranks.size(), 4u);
  // raster: patch j is j-th; similarity: the most similar patch first; semantic: its seed (argmax) first.
  EXPECT_TRUE(at::equal(maps.ranks[0], at::arange(16, at::kLong).expand({3, 16})));
  const at::Tensor best = sim.argmax(1, true);
  EXPECT_TRUE(at::equal(maps.ranks[2].gather(1, best), at::zeros({3, 1}, at::kLong)));
  EXPECT_TRUE(at::equal(maps.ranks[3].gather(1, best), at::zeros({3, 1}, at::kLong)));
  for (const auto& r : maps.ranks) EXPECT_TRUE(at::equal(std::get<0>(r.sort(1)), at::arange(16, at::kLong).expand({3, 16})));
  // Exact and deterministic: the same ids draw the same random orders; another id, another order.
  const tasks::PictureMaps again = tasks::picture_maps(*m, imgs, {0, 1, 2}, s);
  for (size_t k = 0; k < maps.ranks.size(); ++k) EXPECT_TRUE(at::equal(maps.ranks[k], again.ranks[k]));
  EXPECT_TRUE(at::equal(maps.reconstruction, again.reconstruction));
  const tasks::PictureMaps other = tasks::picture_maps(*m, imgs, {5, 1, 2}, s);
  EXPECT_FALSE(at::equal(maps.ranks[1][0], other.ranks[1][0]));
  EXPECT_TRUE(at::equal(maps.ranks[1][1], other.ranks[1][1]));
}

// Hue in degrees (0 red, 60 yellow, 120 green, 180 cyan, 240 blue): colder as it grows along jet.
static double hue(int r, int g, int b) {
  const int mx = std::max({r, g, b}), mn = std::min({r, g, b});
  if (mx == mn) return 0;
  const double d = mx - mn;
  double h = mx == r ? std::fmod((g - b) / d, 6.0) : mx == g ? (b - r) / d + 2 : (r - g) / d + 4;
  h *= 60;
  return h < 0 ? h + 360 : h;
}

TEST(VisualizeDrawing, OrderColoursPutTheFirstPatchInTheWarmestColour) {
  const int64_t l = 16;
  const at::Tensor ranks = at::randperm(l, at::kLong).reshape({4, 4});
  const at::Tensor c = tasks::order_colours(ranks, l).to(at::kInt);  // (4, 4, 3)
  ASSERT_EQ(c.sizes(), (std::vector<int64_t>{4, 4, 3}));
  const at::Tensor by_rank = c.reshape({l, 3}).index_select(0, ranks.flatten().argsort());  // row r: rank r
  std::vector<double> hues;
  for (int64_t r = 0; r < l; ++r)
    hues.push_back(hue(by_rank[r][0].item<int>(), by_rank[r][1].item<int>(), by_rank[r][2].item<int>()));
  // The first patch is red (jet's warm end), the last blue (its cold end), and hue never goes back to warm.
  EXPECT_EQ(hues.front(), 0.0);
  EXPECT_GT(by_rank[0][0].item<int>(), 100);
  EXPECT_EQ(by_rank[0][2].item<int>(), 0);
  EXPECT_EQ(hues.back(), 240.0);
  for (int64_t r = 1; r < l; ++r) EXPECT_GE(hues[r], hues[r - 1]) << "rank " << r;
  EXPECT_TRUE(at::equal(tasks::order_colours(at::zeros({1}, at::kLong), 5), by_rank[0].to(at::kByte).unsqueeze(0)));
}

TEST(VisualizeDrawing, PerfectPredictionUnnormalizesToTheInputPatches) {
  const at::Tensor imgs = at::randn({2, 3, 16, 16}, at::kDouble).to(at::kFloat);
  models::TargetConfig t;
  t.blur_kernel = 1;  // no blur: the target is the input itself
  const at::Tensor perfect = models::pixel_target(imgs, 4, t);
  const at::Tensor back = tasks::unnormalize_prediction(perfect, imgs, 4, t);
  EXPECT_TRUE(at::allclose(back, models::patchify(imgs, 4), 0, 1e-5));
  models::TargetConfig blurred;  // the default 9x9 blur: the blurred patches come back
  models::TargetConfig raw = blurred;
  raw.norm_pix = false;
  const at::Tensor back_blur =
      tasks::unnormalize_prediction(models::pixel_target(imgs, 4, blurred), imgs, 4, blurred);
  EXPECT_TRUE(at::allclose(back_blur, models::pixel_target(imgs, 4, raw), 0, 1e-5));
  EXPECT_FALSE(at::allclose(perfect, models::patchify(imgs, 4), 0, 1e-2));
}

TEST(VisualizeDrawing, RowHasOnePanelPerMapAndIsDeterministic) {
  models::AimVit m = tiny_model();
  const at::Tensor imgs = at::randn({2, 1, 16, 16});
  const tasks::PictureSettings s = tiny_settings();
  const tasks::PictureMaps maps = tasks::picture_maps(*m, imgs, {0, 1}, s);
  const at::Tensor row = tasks::picture_row(maps, imgs, 1, s);
  const auto [h, w] = tasks::row_size(tasks::row_panels(s), tasks::panel_side(16));
  EXPECT_EQ(tasks::panel_side(16), 112);
  EXPECT_EQ(tasks::panel_side(224), 224);
  EXPECT_EQ(row.sizes(), (std::vector<int64_t>{h, w, 3}));
  EXPECT_EQ(row.scalar_type(), at::kByte);
  EXPECT_TRUE(at::equal(row, tasks::picture_row(maps, imgs, 1, s)));
  EXPECT_EQ(tasks::encode_png(row), tasks::encode_png(tasks::picture_row(maps, imgs, 1, s)));
  EXPECT_FALSE(at::equal(row, tasks::picture_row(maps, imgs, 0, s)));
}

TEST(VisualizeDrawing, UnknownStrategyNamesTheOption) {
  const config::Config cfg = config::Config::defaults(tasks::schema());
  try {
    tasks::picture_settings(cfg, {"raster", "zigzag"});
    FAIL() << "no error";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("--strategies"), std::string::npos) << e.what();
  }
}

TEST(VisualizeDrawing, PngHoldsTheExactPixelsForPil) {
  test::TempDir tmp;
  const at::Tensor rgb = at::randint(0, 256, {5, 9, 3}, at::kLong).to(at::kByte);
  std::ofstream(tmp.file("x.png"), std::ios::binary) << tasks::encode_png(rgb);
  std::ofstream(tmp.file("x.raw"), std::ios::binary)
      .write(reinterpret_cast<const char*>(rgb.contiguous().data_ptr<uint8_t>()), rgb.numel());
  const auto r = python(tmp, "import sys\ntry:\n    from PIL import Image\nexcept ImportError:\n    sys.exit(77)\n"
                             "im = Image.open('" + tmp.file("x.png") + "')\nim.load()\n"
                             "print(im.mode, im.size[0], im.size[1], im.tobytes() == open('" + tmp.file("x.raw") +
                             "', 'rb').read())\n");
  if (r.exit_code == 77) GTEST_SKIP() << "PIL is not installed";
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output, "RGB 9 5 True\n");
  EXPECT_THROW(tasks::encode_png(at::zeros({4, 4}, at::kByte)), InputError);
}

TEST(TensorBoardImages, AddImageIsReadBackWithItsWidthAndHeight) {
  test::TempDir tmp;
  const at::Tensor rgb = at::randint(0, 256, {7, 10, 3}, at::kLong).to(at::kByte);
  const std::string png = tasks::encode_png(rgb);
  {
    io::TensorBoardWriter w((tmp.path() / "tb").string());
    w.add_image("pictures/0", png, 3);
    w.add_image("pictures/0", png, 5);
    w.add_image("pictures/1", tasks::encode_png(at::zeros({4, 6, 3}, at::kByte)), 5);
    EXPECT_THROW(w.add_image("bad", "not a png at all, long enough to hold a header", 1), InputError);
  }
  const auto r = python(tmp, "DIR = '" + (tmp.path() / "tb").string() + "'\n" + kReadImages);
  if (r.exit_code == 77) GTEST_SKIP() << "the tensorboard package is not installed";
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string n = std::to_string(png.size());
  EXPECT_EQ(r.output, "pictures/0 3 10 7 " + n + "\npictures/0 5 10 7 " + n + "\npictures/1 5 6 4 " +
                          std::to_string(tasks::encode_png(at::zeros({4, 6, 3}, at::kByte)).size()) + "\n");
}

TEST(PicturesHook, LogsRowsAndLeavesModelModeWeightsAndGeneratorsAlone) {
  test::TempDir tmp;
  config::Config cfg = config::Config::defaults(tasks::schema());
  cfg.apply_overrides({"run.output_dir=" + tmp.path().string(), "run.name=hook", "run.threads=1",
                       "model.embed_dim=32", "model.depth=2", "model.num_heads=2", "model.decoder_depth=2",
                       "log.picture_every_steps=2", "log.picture_images=3"});
  engine::RunContext ctx = engine::RunContext::open(cfg, true);
  tasks::PicturesHook hook(cfg, ctx);
  ASSERT_TRUE(hook.enabled());
  models::AimVit m = tasks::build_aim(cfg);
  m->train();
  const io::NamedTensors before = models::module_weights(*m);
  at::manual_seed(11);
  const at::Tensor cpu_state = at::detail::getDefaultCPUGenerator().get_state();
  hook.maybe_log(1, *m);  // not a multiple of 2: nothing
  hook.maybe_log(2, *m);
  hook.maybe_log(4, *m);
  EXPECT_TRUE(m->is_training());
  for (const auto& sub : m->modules()) EXPECT_TRUE(sub->is_training());
  const io::NamedTensors after = models::module_weights(*m);
  for (size_t i = 0; i < before.size(); ++i) EXPECT_TRUE(at::equal(before[i].second, after[i].second)) << before[i].first;
  EXPECT_TRUE(at::equal(at::detail::getDefaultCPUGenerator().get_state(), cpu_state));

  const auto r = python(tmp, "DIR = '" + (fs::path(ctx.run.dir) / "pictures").string() + "'\n" + kReadImages);
  if (r.exit_code == 77) GTEST_SKIP() << "the tensorboard package is not installed";
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto [h, w] = tasks::row_size(8, tasks::panel_side(28));
  std::istringstream lines(r.output);
  std::string tag;
  int64_t step = 0, width = 0, height = 0, bytes = 0, count = 0;
  while (lines >> tag >> step >> width >> height >> bytes) {
    EXPECT_EQ(tag, "pictures/" + std::to_string(count / 2));
    EXPECT_EQ(step, count % 2 == 0 ? 2 : 4);
    EXPECT_EQ(width, w);
    EXPECT_EQ(height, h);
    ++count;
  }
  EXPECT_EQ(count, 6) << r.output;
}

TEST(PicturesHook, OffByDefault) {
  test::TempDir tmp;
  config::Config cfg = config::Config::defaults(tasks::schema());
  cfg.apply_overrides({"run.output_dir=" + tmp.path().string(), "run.name=off"});
  engine::RunContext ctx = engine::RunContext::open(cfg, true);
  tasks::PicturesHook hook(cfg, ctx);
  EXPECT_FALSE(hook.enabled());
  models::AimVit m = tasks::build_aim(cfg);
  hook.maybe_log(0, *m);
  EXPECT_FALSE(fs::exists(fs::path(ctx.run.dir) / "pictures"));
}
