// The bucketed reducer on an in-process fake communicator: bucket layout, launch order during backward,
// no communication on accumulation micro-steps, averaging, and the parameter check.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "semaim/core/errors.h"
#include "semaim/dist/comm.h"
#include "semaim/dist/reducer.h"

namespace {

using namespace semaim::dist;

// A world of `world` ranks whose peers all hold `peer_scale` times this rank's tensor: all-reduce sums give
// (1 + (world-1)*peer_scale) x, averages that over world. Records every launch (size, and the moment).
class FakeComm final : public Communicator {
 public:
  FakeComm(int world, double peer_scale, std::vector<std::string> peer_names = {})
      : world_(world), peer_scale_(peer_scale), peer_names_(std::move(peer_names)) {}
  int rank() const override { return 0; }
  int world_size() const override { return world_; }
  std::string backend() const override { return "fake"; }
  struct Launch {
    int64_t numel;
    bool probe;  // on_launch's answer at that moment
  };
  std::vector<Launch> launches;
  std::function<bool()> on_launch;
  class FakeWork final : public Work {
   public:
    FakeWork(at::Tensor t, double factor) : t_(std::move(t)), factor_(factor) {}
    void wait() override { t_.mul_(factor_); }

   private:
    at::Tensor t_;
    double factor_;
  };
  std::unique_ptr<Work> all_reduce_async(at::Tensor& t, ReduceOp op) override {
    launches.push_back({t.numel(), on_launch ? on_launch() : false});
    const double sum = 1.0 + (world_ - 1) * peer_scale_;
    return std::make_unique<FakeWork>(t, op == ReduceOp::kAvg ? sum / world_ : sum);
  }
  void broadcast(at::Tensor& t, int) override { t.fill_(7.0); }
  at::Tensor all_gather(const at::Tensor& t) override {
    std::vector<at::Tensor> rows;
    for (int r = 0; r < world_; ++r) rows.push_back(t);
    at::Tensor out = at::stack(rows);
    if (!peer_names_.empty() && t.numel() == static_cast<int64_t>(peer_names_.size()) && t.dim() == 1 &&
        t.size(0) > 1) {
      out[1][1] = out[1][1] + 1;  // rank 1 disagrees on parameter #1
    }
    return out;
  }
  void barrier() override {}

 private:
  int world_;
  double peer_scale_;
  std::vector<std::string> peer_names_;
};

// A 3-layer MLP's parameters in registration order: w0 (16x8), b0 (16), w1 (16x16), b1 (16), w2 (4x16), b2
// (4).
std::vector<std::pair<std::string, at::Tensor>> mlp_params(torch::nn::Sequential& net) {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (auto& p : net->named_parameters()) out.emplace_back(p.key(), p.value());
  return out;
}

torch::nn::Sequential make_mlp() {
  torch::manual_seed(0);
  return torch::nn::Sequential(torch::nn::Linear(8, 16), torch::nn::ReLU(), torch::nn::Linear(16, 16),
                               torch::nn::ReLU(), torch::nn::Linear(16, 4));
}

TEST(Reducer, BucketsFollowReverseOrderAndCapsWithASmallerFirstBucket) {
  auto net = make_mlp();
  auto params = mlp_params(net);
  FakeComm comm(2, 1.0);
  // Bytes: b2 16, w2 256, b1 64, w1 1024, b0 64, w0 512. First cap 300 B, later caps 1100 B.
  Reducer red(params, comm, ReducerConfig{1100, 300});
  const auto& b = red.buckets();
  ASSERT_EQ(b.size(), 3u);
  EXPECT_EQ(b[0].params, (std::vector<size_t>{5, 4}));  // b2, w2 (272 B <= 300)
  EXPECT_EQ(b[1].params, (std::vector<size_t>{3, 2}));  // b1, w1 (1088 B <= 1100)
  EXPECT_EQ(b[2].params, (std::vector<size_t>{1, 0}));  // b0, w0
  EXPECT_EQ(b[0].numel, 4 + 64);
  // Every gradient is a view into its bucket.
  for (auto& [name, p] : params) EXPECT_TRUE(p.grad().defined()) << name;
  EXPECT_TRUE(params[0].second.grad().is_alias_of(params[1].second.grad())) << "w0 and b0 share bucket 2";
  EXPECT_FALSE(params[0].second.grad().is_alias_of(params[5].second.grad()));
}

TEST(Reducer, BucketsLaunchInOrderDuringBackwardAndAverage) {
  auto net = make_mlp();
  auto params = mlp_params(net);
  FakeComm comm(4, 3.0);  // peers hold 3x this rank's gradient: average = (1 + 9) / 4 = 2.5x
  Reducer red(params, comm, ReducerConfig{1100, 300});
  const at::Tensor x = at::randn({32, 8});
  // Reference gradients without the reducer.
  auto ref_net = make_mlp();
  ref_net->forward(x).pow(2).mean().backward();
  red.zero_grad();
  red.prepare(/*sync=*/true);
  // At each launch: has the first layer's weight (the last gradient backward produces) got its gradient yet?
  comm.on_launch = [&] { return params[0].second.grad().abs().sum().item<double>() > 0; };
  net->forward(x).pow(2).mean().backward();
  EXPECT_EQ(red.launch_order(), (std::vector<int>{0, 1, 2}));
  red.finish();
  ASSERT_EQ(comm.launches.size(), 3u);
  // Buckets 0 and 1 went out while backward was still running; bucket 2 (holding w0) after its gradient.
  EXPECT_FALSE(comm.launches[0].probe);
  EXPECT_FALSE(comm.launches[1].probe);
  EXPECT_TRUE(comm.launches[2].probe);
  auto ref_params = mlp_params(ref_net);
  for (size_t i = 0; i < params.size(); ++i) {
    EXPECT_TRUE(at::allclose(params[i].second.grad(), ref_params[i].second.grad() * 2.5, 1e-6, 1e-7))
        << params[i].first;
  }
}

TEST(Reducer, NoCommunicationOnAccumulationMicroStepsAndTheSumIsReduced) {
  auto net = make_mlp();
  auto params = mlp_params(net);
  FakeComm comm(2, 1.0);  // identical peers: the average is the local sum
  Reducer red(params, comm);
  const at::Tensor x1 = at::randn({8, 8}), x2 = at::randn({8, 8});
  red.zero_grad();
  red.prepare(false);
  net->forward(x1).sum().backward();
  red.finish();
  EXPECT_TRUE(comm.launches.empty());
  red.prepare(true);
  net->forward(x2).sum().backward();
  red.finish();
  EXPECT_EQ(comm.launches.size(), red.buckets().size());
  auto ref = make_mlp();
  ref->forward(x1).sum().backward();
  ref->forward(x2).sum().backward();
  auto rp = mlp_params(ref);
  for (size_t i = 0; i < params.size(); ++i) {
    EXPECT_TRUE(at::allclose(params[i].second.grad(), rp[i].second.grad(), 1e-6, 1e-6)) << params[i].first;
  }
  // A parameter that gets no gradient still has its bucket launched by finish().
  comm.launches.clear();
  red.zero_grad();
  red.prepare(true);
  params[0].second.sum().mul(0).backward();  // only w0 gets a (zero) gradient
  red.finish();
  EXPECT_EQ(comm.launches.size(), red.buckets().size());
}

TEST(Reducer, WithoutOverlapEveryBucketWaitsForFinish) {
  auto net = make_mlp();
  auto params = mlp_params(net);
  FakeComm comm(2, 1.0);
  ReducerConfig cfg{1100, 300};
  cfg.overlap = false;
  Reducer red(params, comm, cfg);
  red.zero_grad();
  red.prepare(true);
  net->forward(at::randn({4, 8})).sum().backward();
  EXPECT_TRUE(comm.launches.empty());
  red.finish();
  EXPECT_EQ(red.launch_order(), (std::vector<int>{0, 1, 2}));
  EXPECT_GE(red.last_tail_seconds(), 0.0);
}

TEST(Reducer, ReplacedGradientIsAClearError) {
  auto net = make_mlp();
  auto params = mlp_params(net);
  FakeComm comm(2, 1.0);
  Reducer red(params, comm);
  params[5].second.mutable_grad() = at::Tensor();  // as zero_grad(set_to_none) would
  red.prepare(true);
  // The bucket launch happens inside backward (or at the latest in finish): either way a clear error.
  try {
    net->forward(at::randn({2, 8})).sum().backward();
    red.finish();
    ADD_FAILURE() << "no error";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("'4.bias' is no longer a view into its bucket"), std::string::npos)
        << e.what();
  }
}

TEST(Reducer, BroadcastSetsEveryParameterFromTheRoot) {
  auto net = make_mlp();
  auto params = mlp_params(net);
  FakeComm comm(2, 1.0);
  Reducer red(params, comm);
  red.broadcast_parameters(0);
  for (auto& [name, p] : params) EXPECT_TRUE(at::equal(p, at::full_like(p, 7.0))) << name;
}

TEST(ParameterCheck, AMismatchNamesTheFirstDifferingParameter) {
  auto net = make_mlp();
  auto params = mlp_params(net);
  FakeComm same(2, 1.0);
  EXPECT_NO_THROW(check_parameters_match(params, same));
  std::vector<std::string> names;
  for (auto& [n, p] : params) names.push_back(n);
  FakeComm differ(2, 1.0, names);
  try {
    check_parameters_match(params, differ);
    ADD_FAILURE() << "no error";
  } catch (const semaim::InputError& e) {
    EXPECT_NE(std::string(e.what()).find("parameter #1"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(params[1].first), std::string::npos) << e.what();
  }
}

}  // namespace
