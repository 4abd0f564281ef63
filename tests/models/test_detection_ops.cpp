// Tests of the detection ops semaim::roi_align and semaim::nms (kernels/roi_align, kernels/nms; issue 18 item
// 4): both held to torchvision.ops in the venv (outputs and input gradients to 1e-5, kept indices identical),
// the CPU twins to their ATen compositions, bf16 / autocast, empty inputs, bad input, and the CUDA kernels to
// the twins (skipped without a device).
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <ATen/autocast_mode.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <gtest/gtest.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/cuda.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "input_error.h"
#include "kernels/nms/nms.h"
#include "kernels/ops.h"
#include "kernels/roi_align/roi_align.h"
#include "python_suite.h"
#include "semaim/io/safetensors.h"

namespace {

namespace k = semaim::kernels;
using semaim::test::expect_input_error;

at::Generator seeded(uint64_t seed) { return at::make_generator<at::CPUGeneratorImpl>(seed); }

struct RoiCase {
  std::string name;
  at::Tensor input, rois;  // (N, C, H, W), (K, 5)
  double scale;
  int64_t ph, pw, sampling;
  bool aligned;
};

// Random rois over an (n, h, w) map seen at spatial_scale, in input coordinates: boxes inside, partly and
// fully outside the map, and degenerate ones (zero width, zero height, a point, inverted). -> (count + 6, 5)
at::Tensor random_rois(int64_t n, int64_t h, int64_t w, double scale, int64_t count, at::Generator& gen) {
  const double big_h = h / scale, big_w = w / scale;
  const auto opts = at::TensorOptions().dtype(at::kFloat);
  const at::Tensor b = at::randint(0, n, {count, 1}, gen, opts);
  const at::Tensor x1 = at::rand({count, 1}, gen, opts) * (1.4 * big_w) - 0.2 * big_w;
  const at::Tensor y1 = at::rand({count, 1}, gen, opts) * (1.4 * big_h) - 0.2 * big_h;
  const at::Tensor bw = at::rand({count, 1}, gen, opts) * (0.7 * big_w);
  const at::Tensor bh = at::rand({count, 1}, gen, opts) * (0.7 * big_h);
  const at::Tensor random = at::cat({b, x1, y1, x1 + bw, y1 + bh}, 1);
  const float W = static_cast<float>(big_w), H = static_cast<float>(big_h);
  const float bi = n > 1 ? 1.f : 0.f;
  const std::vector<std::vector<float>> odd = {
      {0.f, 3.f, 2.f, 3.f, 9.f},                        // zero width
      {bi, 2.f, 5.f, 11.f, 5.f},                        // zero height
      {0.f, 4.f, 4.f, 4.f, 4.f},                        // a point
      {bi, W + 3, H + 1, W + 9, H + 8},                 // fully outside
      {0.f, -9.f, -7.f, -2.f, -1.5f},                   // outside, negative
      {bi, 0.9f * W, 0.9f * H, 0.05f * W, 0.05f * H}};  // inverted (a negative adaptive grid)
  std::vector<at::Tensor> rows;
  for (const auto& r : odd) rows.push_back(at::tensor(r));
  const at::Tensor degenerate = at::stack(rows);
  return at::cat({random, degenerate}, 0);
}

// Every combination of aligned, sampling ratio 0 / 2 and spatial scale 0.25 / 1, pooled 7x7 or 3x5, fp32; and
// one fp64 case.
std::vector<RoiCase> roi_cases() {
  std::vector<RoiCase> cases;
  uint64_t seed = 100;
  for (const bool aligned : {false, true})
    for (const int64_t sampling : {0, 2})
      for (const double scale : {0.25, 1.0}) {
        auto gen = seeded(++seed);
        const int64_t n = 2, h = scale < 1 ? 12 : 9, w = scale < 1 ? 16 : 11;
        const int64_t ph = aligned ? 7 : 3, pw = aligned ? 7 : 5;
        cases.push_back({"a" + std::to_string(aligned) + "s" + std::to_string(sampling) + "x" +
                             std::to_string(static_cast<int>(scale * 100)),
                         at::randn({n, 3, h, w}, gen, at::TensorOptions()),
                         random_rois(n, h, w, scale, 30, gen), scale, ph, pw, sampling, aligned});
      }
  auto gen = seeded(7);
  cases.push_back({"f64", at::randn({2, 2, 10, 10}, gen, at::TensorOptions().dtype(at::kDouble)),
                   random_rois(2, 10, 10, 0.5, 20, gen).to(at::kDouble), 0.5, 4, 4, 0, true});
  return cases;
}

// (K, 4) xyxy boxes of random sizes with every fifth a duplicate of an earlier one and every seventh of zero
// width; scores on a coarse grid (many ties). -> boxes, scores
std::pair<at::Tensor, at::Tensor> random_boxes(int64_t count, uint64_t seed) {
  auto gen = seeded(seed);
  const at::Tensor xy = at::rand({count, 2}, gen, at::TensorOptions()) * 100;
  const at::Tensor wh = at::rand({count, 2}, gen, at::TensorOptions()) * 30 + 1;
  at::Tensor boxes = at::cat({xy, xy + wh}, 1);
  for (int64_t i = 5; i < count; i += 5) boxes[i].copy_(boxes[i / 3]);
  for (int64_t i = 3; i < count; i += 7) boxes[i][2] = boxes[i][0];
  const at::Tensor scores = at::randint(0, 12, {count}, gen, at::TensorOptions()) / 12.0;
  return {boxes, scores};
}

struct NmsCase {
  std::string name;
  at::Tensor boxes, scores, idxs;  // idxs undefined: plain nms
  double threshold;
};

std::vector<NmsCase> nms_cases() {
  std::vector<NmsCase> cases;
  uint64_t seed = 200;
  for (const int64_t count : {1, 64, 65, 500})
    for (const double thr : {0.3, 0.7}) {
      auto [boxes, scores] = random_boxes(count, ++seed);
      cases.push_back({"k" + std::to_string(count) + "t" + std::to_string(static_cast<int>(thr * 10)), boxes,
                       scores, at::Tensor(), thr});
    }
  // batched: at most 1000 boxes, where torchvision uses the coordinate trick too.
  for (const int64_t classes : {1, 5}) {
    auto [boxes, scores] = random_boxes(300, ++seed);
    const at::Tensor idxs =
        at::randint(0, classes, {300}, seeded(seed), at::TensorOptions().dtype(at::kLong));
    cases.push_back({"c" + std::to_string(classes), boxes, scores, idxs, 0.5});
  }
  return cases;
}

class TorchvisionOps : public semaim::test::PythonSuite<TorchvisionOps> {
 protected:
  static void SetUpTestSuite() {
    if (!have_python()) return;
    semaim::io::NamedTensors in;
    for (const RoiCase& c : roi_cases()) {
      const std::string p = "roi." + c.name + ".";
      in.emplace_back(p + "input", c.input);
      in.emplace_back(p + "rois", c.rois);
      in.emplace_back(p + "weight", weight(c));
      in.emplace_back(p + "params", at::tensor({c.scale, double(c.ph), double(c.pw), double(c.sampling),
                                                c.aligned ? 1.0 : 0.0},
                                               at::kDouble));
    }
    for (const NmsCase& c : nms_cases()) {
      const std::string p = (c.idxs.defined() ? "bnms." : "nms.") + c.name + ".";
      in.emplace_back(p + "boxes", c.boxes);
      in.emplace_back(p + "scores", c.scores);
      if (c.idxs.defined()) in.emplace_back(p + "idxs", c.idxs);
      in.emplace_back(p + "params", at::tensor({c.threshold}, at::kDouble));
    }
    semaim::io::save_safetensors(file("in.safetensors"), in);
    if (run_script("models/torchvision_ops_reference.py",
                   semaim::test::quoted(file("in.safetensors")) + " " +
                       semaim::test::quoted(file("out.safetensors")),
                   &skip_reason_))
      for (auto& [name, t] : semaim::io::load_safetensors(file("out.safetensors")).tensors) ref_[name] = t;
  }
  // The loss weight of a roi case: sum(roi_align(input) * weight), so every output element's gradient
  // differs.
  static at::Tensor weight(const RoiCase& c) {
    auto gen = seeded(static_cast<uint64_t>(c.rois.size(0) * 31 + c.ph));
    return at::randn({c.rois.size(0), c.input.size(1), c.ph, c.pw}, gen, c.input.options());
  }
  static const at::Tensor& ref(const std::string& key) {
    static const at::Tensor kNone;
    const auto it = ref_.find(key);
    EXPECT_NE(it, ref_.end()) << "torchvision produced no " << key;
    return it == ref_.end() ? kNone : it->second;
  }
  static inline std::map<std::string, at::Tensor> ref_;
};

TEST_F(TorchvisionOps, RoiAlignOutputsAndInputGradientsMatchTorchvision) {
  for (const RoiCase& c : roi_cases()) {
    at::Tensor x = c.input.clone().requires_grad_();
    const at::Tensor y = k::roi_align(x, c.rois, c.scale, c.ph, c.pw, c.sampling, c.aligned);
    (y * weight(c)).sum().backward();
    const at::Tensor& out = ref("roi." + c.name + ".output");
    const at::Tensor& grad = ref("roi." + c.name + ".grad");
    ASSERT_TRUE(out.defined() && grad.defined()) << c.name;
    ASSERT_EQ(y.sizes(), out.sizes()) << c.name;
    EXPECT_TRUE(at::allclose(y, out, 0, 1e-5))
        << c.name << " max diff " << (y - out).abs().max().item<double>();
    EXPECT_TRUE(at::allclose(x.grad(), grad, 0, 1e-5))
        << c.name << " max diff " << (x.grad() - grad).abs().max().item<double>();
    // The degenerate rois are in the cases: some outputs are exactly zero, as torchvision's.
    EXPECT_TRUE(at::equal(y.eq(0), out.eq(0))) << c.name;
  }
}

TEST_F(TorchvisionOps, NmsKeepsTheSameIndicesAsTorchvision) {
  for (const NmsCase& c : nms_cases()) {
    const std::string key = (c.idxs.defined() ? "bnms." : "nms.") + c.name + ".keep";
    const at::Tensor keep = c.idxs.defined() ? k::batched_nms(c.boxes, c.scores, c.idxs, c.threshold)
                                             : k::nms(c.boxes, c.scores, c.threshold);
    const at::Tensor& want = ref(key);
    ASSERT_TRUE(want.defined()) << key;
    EXPECT_EQ(keep.scalar_type(), at::kLong) << key;
    EXPECT_TRUE(at::equal(keep, want)) << key << ": " << keep.numel() << " kept vs " << want.numel();
    // Not vacuous: something was suppressed in the larger cases.
    if (c.boxes.size(0) >= 64) EXPECT_LT(keep.numel(), c.boxes.size(0)) << key;
  }
}

// The twin against the ATen composition, forward and the input gradient by autograd, in fp32 and fp64.
TEST(RoiAlignKernel, CpuTwinEqualsAtenReferenceForwardAndBackward) {
  for (const RoiCase& c : roi_cases()) {
    const double tol = c.input.scalar_type() == at::kDouble ? 1e-12 : 1e-5;
    at::Tensor a = c.input.clone().requires_grad_(), b = c.input.clone().requires_grad_();
    const at::Tensor w = at::randn({c.rois.size(0), c.input.size(1), c.ph, c.pw}, c.input.options());
    const at::Tensor ya = k::roi_align(a, c.rois, c.scale, c.ph, c.pw, c.sampling, c.aligned);
    const at::Tensor yb = k::roi_align_reference(b, c.rois, c.scale, c.ph, c.pw, c.sampling, c.aligned);
    EXPECT_EQ(ya.scalar_type(), c.input.scalar_type()) << c.name;
    EXPECT_TRUE(at::allclose(ya, yb, 0, tol)) << c.name << " " << (ya - yb).abs().max().item<double>();
    (ya * w).sum().backward();
    (yb * w).sum().backward();
    EXPECT_TRUE(at::allclose(a.grad(), b.grad(), 0, tol))
        << c.name << " " << (a.grad() - b.grad()).abs().max().item<double>();
  }
  // ViTDet's sizes: 7x7 from a 64x64 map at stride 16 with adaptive sampling.
  auto gen = seeded(3);
  const at::Tensor x = at::randn({2, 8, 64, 64}, gen, at::TensorOptions());
  const at::Tensor rois = random_rois(2, 64, 64, 1.0 / 16, 100, gen);
  const at::Tensor twin = k::roi_align(x, rois, 1.0 / 16, 7, 7, 0, true);
  const at::Tensor reference = k::roi_align_reference(x, rois, 1.0 / 16, 7, 7, 0, true);
  const at::Tensor diff = (twin - reference).abs().amax({1, 2, 3});
  EXPECT_TRUE(at::allclose(twin, reference, 0, 1e-5))
      << "max diff " << diff.max().item<double>() << " at roi " << diff.argmax().item<int64_t>() << " "
      << rois[diff.argmax().item<int64_t>()];
}

// The backward scatters channel by channel in roi order: the same bits on every run and thread count.
TEST(RoiAlignKernel, BackwardIsDeterministicAcrossThreadCounts) {
  auto gen = seeded(5);
  const at::Tensor x = at::randn({2, 16, 20, 20}, gen, at::TensorOptions());
  const at::Tensor rois = random_rois(2, 20, 20, 0.5, 200, gen);
  const at::Tensor w = at::randn({206, 16, 7, 7}, gen, at::TensorOptions());
  const auto grad = [&] {
    at::Tensor leaf = x.clone().requires_grad_();
    return torch::autograd::grad({k::roi_align(leaf, rois, 0.5, 7, 7, 0, true)}, {leaf}, {w})[0];
  };
  const int threads = at::get_num_threads();
  const at::Tensor first = grad();
  EXPECT_TRUE(at::equal(first, grad()));
  at::set_num_threads(1);
  const at::Tensor serial = grad();
  at::set_num_threads(threads);
  EXPECT_TRUE(at::equal(first, serial));
}

// bf16 features (autocast's): computed in fp32 from the bf16 values, returned (and differentiated) in bf16.
TEST(RoiAlignKernel, ReducedPrecisionInputIsComputedInFloat) {
  auto gen = seeded(9);
  const at::Tensor x = at::randn({2, 4, 16, 16}, gen, at::TensorOptions()).to(at::kBFloat16);
  const at::Tensor rois = random_rois(2, 16, 16, 0.25, 40, gen);
  for (const at::ScalarType dt : {at::kBFloat16, at::kHalf}) {
    const at::Tensor xr = x.to(dt);
    at::Tensor leaf = xr.clone().requires_grad_(), leaf32 = xr.to(at::kFloat).requires_grad_();
    const at::Tensor y = k::roi_align(leaf, rois, 0.25, 7, 7, 0, true);
    const at::Tensor y32 = k::roi_align(leaf32, rois, 0.25, 7, 7, 0, true);
    EXPECT_EQ(y.scalar_type(), dt);
    EXPECT_TRUE(at::equal(y, y32.to(dt))) << c10::toString(dt);
    const at::Tensor w = at::randn(y.sizes(), gen, at::TensorOptions()).to(dt);
    y.backward(w);
    y32.backward(w.to(at::kFloat));
    EXPECT_EQ(leaf.grad().scalar_type(), dt);
    EXPECT_TRUE(at::equal(leaf.grad(), leaf32.grad().to(dt))) << c10::toString(dt);
  }
  // Under CPU bf16 autocast the features come out of a convolution in bf16; the op keeps them so.
  at::autocast::set_autocast_dtype(at::kCPU, at::kBFloat16);
  at::autocast::set_autocast_enabled(at::kCPU, true);
  const at::Tensor feat = at::conv2d(at::randn({2, 3, 16, 16}, gen, at::TensorOptions()),
                                     at::randn({4, 3, 1, 1}, gen, at::TensorOptions()));
  const at::Tensor pooled = k::roi_align(feat, rois, 0.25, 7, 7, 0, true);
  at::autocast::set_autocast_enabled(at::kCPU, false);
  at::autocast::clear_cache();
  EXPECT_EQ(feat.scalar_type(), at::kBFloat16);
  EXPECT_EQ(pooled.scalar_type(), at::kBFloat16);
  EXPECT_TRUE(
      at::equal(pooled, k::roi_align(feat.to(at::kFloat), rois, 0.25, 7, 7, 0, true).to(at::kBFloat16)));
}

TEST(RoiAlignKernel, NoRoisGiveEmptyOutputAndZeroGradient) {
  at::Tensor x = at::randn({2, 3, 8, 8}).requires_grad_();
  const at::Tensor y = k::roi_align(x, at::empty({0, 5}), 1.0, 7, 7, 0, true);
  EXPECT_EQ(y.sizes(), at::IntArrayRef({0, 3, 7, 7}));
  y.sum().backward();
  EXPECT_TRUE(at::equal(x.grad(), at::zeros_like(x)));
  EXPECT_EQ(k::roi_align_reference(x, at::empty({0, 5}), 1.0, 7, 7, 0, true).sizes(), y.sizes());
}

TEST(RoiAlignKernel, BadArgumentsThrowInputErrorAndTheOpChecks) {
  const at::Tensor x = at::randn({2, 3, 8, 8}), rois = at::tensor({0.f, 1.f, 1.f, 5.f, 5.f}).view({1, 5});
  expect_input_error([&] { k::roi_align(x[0], rois, 1, 7, 7, 0, true); }, "input must be (N, C, H, W)");
  expect_input_error([&] { k::roi_align(x.to(at::kInt), rois, 1, 7, 7, 0, true); }, "floating point");
  expect_input_error([&] { k::roi_align(x, rois.narrow(1, 0, 4), 1, 7, 7, 0, true); }, "rois must be (K, 5)");
  expect_input_error([&] { k::roi_align(x, rois.to(at::kLong), 1, 7, 7, 0, true); }, "rois must be floating");
  expect_input_error([&] { k::roi_align(x, rois, 1, 0, 7, 0, true); }, "pooled size");
  expect_input_error([&] { k::roi_align(x, rois, 0, 7, 7, 0, true); }, "spatial_scale");
  expect_input_error(
      [&] {
        k::roi_align(x, rois + at::tensor({2.f, 0.f, 0.f, 0.f, 0.f}), 1, 7, 7, 0, true);
      },
      {"kernels.roi_align", "batch indices"});
  // The registered op, called past the entry point, checks with TORCH_CHECK.
  semaim::kernels::link_ops();
  const auto op =
      c10::Dispatcher::singleton()
          .findSchemaOrThrow("semaim::roi_align", "")
          .typed<at::Tensor(const at::Tensor&, const at::Tensor&, double, int64_t, int64_t, int64_t, bool)>();
  EXPECT_THROW(op.call(x, rois.narrow(1, 0, 4), 1.0, 7, 7, 0, true), c10::Error);
  EXPECT_THROW(op.call(x, rois + at::tensor({3.f, 0.f, 0.f, 0.f, 0.f}), 1.0, 7, 7, 0, true),
               c10::Error);  // batch index 3 of 2 images
}

TEST(NmsKernel, CpuTwinEqualsAtenReference) {
  uint64_t seed = 300;
  for (const int64_t count : {1, 2, 63, 64, 65, 128, 129, 700})
    for (const double thr : {0.0, 0.3, 0.5, 0.9}) {
      auto [boxes, scores] = random_boxes(count, ++seed);
      const std::string what = std::to_string(count) + " thr " + std::to_string(thr);
      const at::Tensor keep = k::nms(boxes, scores, thr);
      EXPECT_TRUE(at::equal(keep, k::nms_reference(boxes, scores, thr))) << what;
      // Kept boxes come by decreasing score and overlap each other by at most the threshold.
      const at::Tensor s = scores.index_select(0, keep);
      if (keep.numel() > 1)
        EXPECT_TRUE((s.narrow(0, 0, s.numel() - 1) >= s.narrow(0, 1, s.numel() - 1)).all().item<bool>())
            << what;
      // fp64 and bf16 boxes: computed in their op-math type, as the reference.
      const at::Tensor b16 = boxes.to(at::kBFloat16);
      EXPECT_TRUE(at::equal(k::nms(b16, scores, thr), k::nms_reference(b16, scores, thr))) << what;
      EXPECT_TRUE(at::equal(k::nms(boxes.to(at::kDouble), scores, thr),
                            k::nms_reference(boxes.to(at::kDouble), scores, thr)))
          << what;
    }
}

TEST(NmsKernel, DuplicatesTiesEmptyAndClasses) {
  const at::Tensor box = at::tensor({10.f, 10.f, 20.f, 20.f}).view({1, 4});
  const at::Tensor boxes = at::cat({box, box, box + 100, box}, 0);
  // Equal scores: the earliest of the duplicates is kept.
  EXPECT_TRUE(at::equal(k::nms(boxes, at::ones({4}), 0.5), at::tensor({0, 2}, at::kLong)));
  EXPECT_TRUE(
      at::equal(k::nms(boxes, at::tensor({0.1f, 0.9f, 0.5f, 0.9f}), 0.5), at::tensor({1, 2}, at::kLong)));
  // Per class: the same box in three classes is kept three times.
  EXPECT_TRUE(at::equal(k::batched_nms(boxes, at::ones({4}), at::tensor({0, 1, 0, 2}, at::kLong), 0.5),
                        at::tensor({0, 1, 2, 3}, at::kLong)));
  // Zero-area boxes suppress nothing.
  const at::Tensor flat = at::tensor({5.f, 5.f, 5.f, 9.f, 5.f, 5.f, 5.f, 9.f}).view({2, 4});
  EXPECT_EQ(k::nms(flat, at::ones({2}), 0.1).numel(), 2);
  const at::Tensor none = k::nms(at::empty({0, 4}), at::empty({0}), 0.5);
  EXPECT_EQ(none.numel(), 0);
  EXPECT_EQ(none.scalar_type(), at::kLong);
  EXPECT_EQ(k::batched_nms(at::empty({0, 4}), at::empty({0}), at::empty({0}, at::kLong), 0.5).numel(), 0);
}

TEST(NmsKernel, BadArgumentsThrowInputError) {
  const at::Tensor boxes = at::rand({5, 4}), scores = at::rand({5});
  expect_input_error([&] { k::nms(boxes.narrow(1, 0, 3), scores, 0.5); },
                     {"kernels.nms", "boxes must be (K, 4)"});
  expect_input_error([&] { k::nms(boxes, scores.narrow(0, 0, 4), 0.5); }, "scores must be (K) = (5)");
  expect_input_error([&] { k::nms(boxes.to(at::kInt), scores, 0.5); }, "floating point");
  expect_input_error([&] { k::batched_nms(boxes, scores, at::zeros({5}), 0.5); },
                     "idxs must be (K) = (5) int64");
  expect_input_error([&] { k::batched_nms(boxes, scores, at::zeros({4}, at::kLong), 0.5); }, "idxs must be");
}

TEST(DetectionOpsCuda, CudaKernelsEqualCpuTwins) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  if (!k::cuda_ops_built()) GTEST_SKIP() << "built without the CUDA kernels (kernels/*.cu)";
  for (const RoiCase& c : roi_cases()) {
    at::Tensor a = c.input.clone().requires_grad_(), g = c.input.cuda().requires_grad_();
    const at::Tensor w = at::randn({c.rois.size(0), c.input.size(1), c.ph, c.pw}, c.input.options());
    const at::Tensor ya = k::roi_align(a, c.rois, c.scale, c.ph, c.pw, c.sampling, c.aligned);
    const at::Tensor yg = k::roi_align(g, c.rois.cuda(), c.scale, c.ph, c.pw, c.sampling, c.aligned);
    EXPECT_TRUE(at::allclose(yg.cpu(), ya, 0, 1e-5)) << c.name;
    (ya * w).sum().backward();
    (yg * w.cuda()).sum().backward();
    EXPECT_TRUE(at::allclose(g.grad().cpu(), a.grad(), 0, 1e-5)) << c.name;
  }
  for (const NmsCase& c : nms_cases()) {
    const at::Tensor keep = c.idxs.defined() ? k::batched_nms(c.boxes, c.scores, c.idxs, c.threshold)
                                             : k::nms(c.boxes, c.scores, c.threshold);
    const at::Tensor kg = c.idxs.defined()
                              ? k::batched_nms(c.boxes.cuda(), c.scores.cuda(), c.idxs.cuda(), c.threshold)
                              : k::nms(c.boxes.cuda(), c.scores.cuda(), c.threshold);
    EXPECT_TRUE(kg.is_cuda());
    EXPECT_TRUE(at::equal(kg.cpu(), keep)) << c.name;
  }
  EXPECT_EQ(k::nms(at::empty({0, 4}).cuda(), at::empty({0}).cuda(), 0.5).numel(), 0);
}

}  // namespace
