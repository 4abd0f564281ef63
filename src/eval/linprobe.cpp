// Linear probe (method.md §8; MAE main_linprobe.py): frozen features cached, BN(affine=False, eps 1e-6)
// + Linear head (weight std 0.01, truncated at 2σ), SGD momentum, warmup + half-cosine lr per iteration.
#include "semaim/eval/linprobe.h"

#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/linear.h>
#include <torch/optim/sgd.h>

#include <cmath>

#include "semaim/core/errors.h"
#include "semaim/core/lr_schedule.h"
#include "semaim/core/timing.h"
#include "semaim/eval/classify.h"

namespace semaim::eval {
namespace {

// Percent of rows whose argmax is the label. logits: (N, K), labels: (N) -> scalar
double top1_percent(const at::Tensor& logits, const at::Tensor& labels) {
  if (labels.numel() == 0) return 0.0;
  return 100.0 * logits.argmax(1).eq(labels).to(at::kDouble).mean().item<double>();
}

void check_labels(const at::Tensor& y, int64_t n, const std::string& what) {
  if (y.dim() != 1 || y.size(0) != n)
    throw InputError("linprobe", what + " labels must be (" + std::to_string(n) + ")");
  if (n > 0 && y.min().item<int64_t>() < 0) throw InputError("linprobe", what + " labels must be >= 0");
}

}  // namespace

at::Tensor pool_tokens(const at::Tensor& tokens, const std::string& pool) {
  if (tokens.dim() != 3) {
    throw RuntimeFailure("linprobe: the feature function returned " + std::to_string(tokens.dim()) +
                         " dims, expected tokens (B, L+1, D)");
  }
  if (pool == "cls") return tokens.select(1, 0);
  if (pool == "mean") {
    if (tokens.size(1) < 2)
      throw RuntimeFailure("linprobe: mean pooling needs patch tokens after the cls token");
    return tokens.narrow(1, 1, tokens.size(1) - 1).mean(1);
  }
  throw InputError("linprobe.pool", "unknown pooling '" + pool + "' (cls | mean)");
}

Features extract_features(const FeatureFn& features, std::shared_ptr<const data::Dataset> set,
                          const data::AugmentConfig& eval_tf, const std::string& pool, int64_t feature_batch,
                          int64_t limit, int64_t num_workers, bool fail_on_bad_image) {
  if (feature_batch <= 0) throw InputError("linprobe.feature_batch", "must be positive");
  const std::shared_ptr<const data::Dataset> part = data::take_first(std::move(set), limit);
  const int64_t n = part->size();
  const auto loader = eval_loader(part, eval_tf, feature_batch, num_workers, fail_on_bad_image);
  torch::NoGradGuard no_grad;
  Features f;
  f.y = at::empty({n}, at::TensorOptions().dtype(at::kLong));
  int64_t start = 0;
  while (auto batch = loader->next()) {
    const int64_t count = batch->images.size(0);
    const at::Tensor pooled = pool_tokens(features(batch->images), pool);
    if (pooled.dim() != 2 || pooled.size(0) != count) {
      throw RuntimeFailure("linprobe: the feature function returned " + std::to_string(pooled.size(0)) +
                           " rows for a chunk of " + std::to_string(count) + " images");
    }
    if (!f.x.defined()) f.x = at::empty({n, pooled.size(1)}, at::TensorOptions().dtype(at::kFloat));
    f.x.narrow(0, start, count).copy_(pooled);
    f.y.narrow(0, start, count).copy_(batch->labels);
    start += count;
  }
  f.bad_images = loader->bad_images();
  return f;
}

at::Tensor extract_features(const FeatureFn& features, const data::ImageSet& set,
                            const data::AugmentConfig& eval_tf, const std::string& pool,
                            int64_t feature_batch, int64_t limit) {
  if (set.images.defined() && set.images.dim() == 4 && set.images.size(0) == 0) {
    return at::empty({0, 0}, at::TensorOptions().dtype(at::kFloat));
  }
  return extract_features(features, std::make_shared<const data::MemoryDataset>(set), eval_tf, pool,
                          feature_batch, limit)
      .x;
}

LinprobeResult fit_linear_probe(const at::Tensor& train_x, const at::Tensor& train_y,
                                const at::Tensor& test_x, const at::Tensor& test_y,
                                const LinprobeConfig& cfg) {
  if (cfg.epochs <= 0) throw InputError("linprobe.epochs", "must be positive");
  if (cfg.batch_size <= 0) throw InputError("linprobe.batch_size", "must be positive");
  if (!(cfg.base_lr > 0)) throw InputError("linprobe.base_lr", "must be positive");
  if (cfg.warmup_epochs < 0 || cfg.warmup_epochs >= cfg.epochs) {
    throw InputError("linprobe.warmup_epochs", "must be in 0..epochs-1");
  }
  const int64_t n = train_x.size(0), dim = train_x.dim() == 2 ? train_x.size(1) : 0;
  if (train_x.dim() != 2 || test_x.dim() != 2 || test_x.size(1) != dim) {
    throw InputError("linprobe", "features must be (N, D) for both splits with the same D");
  }
  // BatchNorm in training mode needs two samples per batch.
  if (n < 2) throw InputError("linprobe", "needs at least 2 training samples, got " + std::to_string(n));
  check_labels(train_y, n, "train");
  check_labels(test_y, test_x.size(0), "test");
  const at::Tensor ytr = train_y.to(at::kLong), yte = test_y.to(at::kLong);
  int64_t classes = ytr.max().item<int64_t>() + 1;
  if (yte.numel() > 0) classes = std::max(classes, yte.max().item<int64_t>() + 1);

  const auto t0 = core::Clock::now();
  torch::AutoGradMode grad_on(true);
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(cfg.seed);
  // Frozen features: a cumulative average gives the exact training-set statistics however few steps run
  // (MAE's momentum 0.1 converges to the same over 90 epochs).
  torch::nn::BatchNorm1d bn(
      torch::nn::BatchNorm1dOptions(dim).affine(false).eps(1e-6).momentum(std::nullopt));
  torch::nn::Linear head(dim, classes);
  {
    torch::NoGradGuard no_grad;
    head->weight.normal_(0.0, 0.01, gen).clamp_(-0.02, 0.02);
    head->bias.zero_();
  }
  const int64_t batch = std::min(cfg.batch_size, n);
  const int64_t steps = n / batch;  // drop_last, as MAE's train loader
  const double lr = cfg.base_lr * static_cast<double>(batch) / 256.0;
  torch::optim::SGD opt(head->parameters(),
                        torch::optim::SGDOptions(lr).momentum(cfg.momentum).weight_decay(cfg.weight_decay));
  const at::Tensor xtr = train_x.to(at::kFloat).contiguous();
  core::LrSchedule sched;
  sched.base_lr = lr;
  sched.warmup = static_cast<double>(cfg.warmup_epochs * steps);
  sched.total = static_cast<double>(cfg.epochs * steps);
  int64_t it = 0;
  bn->train();
  for (int64_t epoch = 0; epoch < cfg.epochs; ++epoch) {
    const at::Tensor perm = at::randperm(n, gen, at::TensorOptions().dtype(at::kLong));
    for (int64_t s = 0; s < steps; ++s, ++it) {
      for (auto& group : opt.param_groups()) {
        static_cast<torch::optim::SGDOptions&>(group.options())
            .lr(core::lr_at(sched, static_cast<double>(it)));
      }
      const at::Tensor idx = perm.narrow(0, s * batch, batch);
      const at::Tensor logits = head(bn(xtr.index_select(0, idx)));
      const at::Tensor loss = at::cross_entropy_loss(logits, ytr.index_select(0, idx));
      opt.zero_grad();
      loss.backward();
      opt.step();
    }
  }

  LinprobeResult result;
  result.n_train = n;
  result.n_test = test_x.size(0);
  result.feature_dim = dim;
  bn->eval();
  torch::NoGradGuard no_grad;
  result.train_top1 = top1_percent(head(bn(xtr)), ytr);
  result.top1 = top1_percent(head(bn(test_x.to(at::kFloat))), yte);
  result.train_seconds = core::seconds_since(t0);
  return result;
}

LinprobeResult run_linprobe(const FeatureFn& features, std::shared_ptr<const data::Dataset> train,
                            std::shared_ptr<const data::Dataset> test, const data::AugmentConfig& eval_tf,
                            const LinprobeConfig& cfg) {
  if (cfg.pool != "cls" && cfg.pool != "mean") {
    throw InputError("linprobe.pool", "unknown pooling '" + cfg.pool + "' (cls | mean)");
  }
  for (const auto* d : {train.get(), test.get()}) {
    if (d && d->size() > 0 && d->label(0) < 0)
      throw InputError(d->name(), "the linear probe needs labelled data");
  }
  const auto t0 = core::Clock::now();
  const Features tr = extract_features(features, std::move(train), eval_tf, cfg.pool, cfg.feature_batch,
                                       cfg.train_limit, cfg.num_workers, cfg.fail_on_bad_image);
  const Features te = extract_features(features, std::move(test), eval_tf, cfg.pool, cfg.feature_batch,
                                       cfg.test_limit, cfg.num_workers, cfg.fail_on_bad_image);
  const double feature_seconds = core::seconds_since(t0);
  LinprobeResult result = fit_linear_probe(tr.x, tr.y, te.x, te.y, cfg);
  result.feature_seconds = feature_seconds;
  result.bad_images = tr.bad_images + te.bad_images;
  return result;
}

LinprobeResult run_linprobe(const FeatureFn& features, const data::ImageSet& train,
                            const data::ImageSet& test, const data::AugmentConfig& eval_tf,
                            const LinprobeConfig& cfg) {
  return run_linprobe(features, std::make_shared<const data::MemoryDataset>(train),
                      std::make_shared<const data::MemoryDataset>(test), eval_tf, cfg);
}

}  // namespace semaim::eval
