// `semaim knn`: frozen-encoder features of this rank's shard of both splits, the training bank gathered on
// every rank, each rank classifying its test shard; counts summed over ranks (DINO eval_knn).
#include <filesystem>

#include <nlohmann/json.hpp>

#include "semaim/core/log.h"
#include "semaim/core/timing.h"
#include "semaim/data/settings.h"
#include "semaim/engine/run.h"
#include "semaim/eval/knn.h"
#include "semaim/io/atomic_file.h"
#include "semaim/tasks/init_weights.h"
#include "semaim/tasks/jobs.h"
#include "semaim/tasks/models.h"

namespace semaim::tasks {
namespace {

// Every rank's rows in rank order; shards differ in size by at most one, so they travel padded to the
// largest, labels -1 marking the padding. x: (n_r, D), y: (n_r) -> all ranks' (sum n_r, D) and (sum n_r)
std::pair<at::Tensor, at::Tensor> gather_rows(const engine::RunContext& ctx, const at::Tensor& x,
                                              const at::Tensor& y, int64_t most) {
  if (ctx.world() == 1) return {x, y};
  at::Tensor px = at::zeros({most, x.size(1)}, x.options()), py = at::full({most}, -1, y.options());
  px.narrow(0, 0, x.size(0)).copy_(x);
  py.narrow(0, 0, y.size(0)).copy_(y);
  const at::Tensor gx = ctx.comm->all_gather(px).reshape({-1, x.size(1)});
  const at::Tensor gy = ctx.comm->all_gather(py).reshape({-1});
  const at::Tensor keep = gy.ge(0).nonzero().squeeze(1);
  return {gx.index_select(0, keep), gy.index_select(0, keep)};
}

}  // namespace

KnnResult knn(const config::Config& cfg, const LinprobeOptions& opts) {
  const auto t0 = core::Clock::now();
  engine::RunContext ctx = engine::RunContext::open(cfg, opts.quiet);
  std::string source;
  models::VitEncoder enc =
      frozen_encoder(cfg, opts.random_init, opts.checkpoint.empty() ? ctx.run.dir : opts.checkpoint, source);
  enc->to(ctx.device);
  const int64_t chans = enc->vit_config().in_chans;
  const std::string pool = cfg.get_string("knn.pool");
  const data::AugmentConfig eval_tf = data::augment_config(cfg, enc->vit_config().img_size, chans, false);
  eval::FeatureFn fn = [&](const at::Tensor& imgs) {
    return enc->forward_features(imgs.to(ctx.device)).to(at::kCPU);
  };
  auto features = [&](const std::string& split, const char* limit_key) {
    const auto all = data::take_first(data::load_dataset(cfg, split, chans), cfg.get_int(limit_key));
    const int64_t most = (all->size() + ctx.world() - 1) / ctx.world();
    eval::Features f = eval::extract_features(
        fn, data::take_shard(all, ctx.rank(), ctx.world()), eval_tf, pool, cfg.get_int("knn.batch_size"), 0,
        cfg.get_int("data.num_workers"), cfg.get_string("data.on_bad_image") == "fail");
    return std::make_tuple(f, most, data::count_classes(*all));
  };
  core::log_info("k-NN of " + source + " (" + pool + " features)");
  auto [train, train_most, classes] = features("train", "knn.train_limit");
  auto [test, test_most, test_classes] = features("test", "knn.test_limit");
  (void)test_most, (void)test_classes;
  const auto [bank_x, bank_y] = gather_rows(ctx, train.x, train.y, train_most);
  const eval::KnnCounts c =
      eval::knn_counts(bank_x, bank_y, test.x, test.y, cfg.get_ints("knn.k"),
                       cfg.get_float("knn.temperature"), classes, cfg.get_int("knn.chunk_size"));
  KnnResult r;
  r.ks = c.ks;
  r.n_train = bank_x.size(0);
  r.n_test = static_cast<int64_t>(ctx.sum_over_ranks(static_cast<double>(c.count)));
  nlohmann::json per_k = nlohmann::json::object();
  for (size_t i = 0; i < c.ks.size(); ++i) {
    const double n = std::max<double>(1.0, static_cast<double>(r.n_test));
    r.top1.push_back(100.0 * ctx.sum_over_ranks(static_cast<double>(c.correct1[i])) / n);
    r.top5.push_back(100.0 * ctx.sum_over_ranks(static_cast<double>(c.correct5[i])) / n);
    per_k[std::to_string(c.ks[i])] = {{"top1_percent", r.top1.back()}, {"top5_percent", r.top5.back()}};
  }
  r.seconds = core::seconds_since(t0);
  const nlohmann::json j{
      {"source", source},     {"pool", pool},       {"temperature", cfg.get_float("knn.temperature")},
      {"n_train", r.n_train}, {"n_test", r.n_test}, {"k", per_k},
      {"seconds", r.seconds}};
  std::string out = opts.out_json;
  if (out.empty())
    out = (std::filesystem::path(ctx.run.dir) / (opts.random_init ? "knn_random.json" : "knn.json")).string();
  if (ctx.rank0()) io::atomic_write(out, j.dump(2) + "\n");
  std::string line;
  for (size_t i = 0; i < r.ks.size(); ++i)
    line +=
        (i ? ", " : "") + std::string("k=") + std::to_string(r.ks[i]) + " " + std::to_string(r.top1[i]) + "%";
  core::log_info("k-NN top-1: " + line + " (" + std::to_string(r.n_test) + " test images), written to " +
                 out);
  return r;
}

}  // namespace semaim::tasks
