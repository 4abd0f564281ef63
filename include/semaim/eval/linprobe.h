// Linear probe on frozen encoder features (method.md §8, MAE main_linprobe.py scaled down): BatchNorm without
// affine + Linear, SGD with momentum, half-cosine lr per iteration; top-1 on the test split.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <functional>
#include <string>

#include <memory>

#include "semaim/data/dataset.h"
#include "semaim/data/idx.h"
#include "semaim/data/transforms.h"

namespace semaim::eval {

struct LinprobeConfig {
  int64_t epochs = 10;
  int64_t batch_size = 256;
  double base_lr = 0.1;  // lr = base_lr * batch / 256
  double momentum = 0.9;
  double weight_decay = 0.0;
  std::string pool = "cls";                 // cls | mean (mean of the patch tokens, cls excluded)
  int64_t train_limit = 0, test_limit = 0;  // first n samples; 0 = all
  int64_t feature_batch = 500;
  uint64_t seed = 0;
  int64_t warmup_epochs = 0;  // linear warmup before the half-cosine (MAE uses 10 of 90)
  int64_t num_workers = 0;    // loader threads decoding images for feature extraction
  bool fail_on_bad_image = false;
};

struct LinprobeResult {
  double top1 = 0, train_top1 = 0;  // percent, 0..100
  int64_t n_train = 0, n_test = 0;
  int64_t feature_dim = 0;
  double feature_seconds = 0, train_seconds = 0;
  int64_t bad_images = 0;  // samples replaced because their file did not decode (train + test)
};

// Pooled features of a dataset, its labels in dataset order, and how many samples had to be replaced.
struct Features {
  at::Tensor x;  // (N, D) float32
  at::Tensor y;  // (N) int64
  int64_t bad_images = 0;
};

// images: (B, C, H, W) float normalized -> tokens (B, L+1, D), cls token first; called under NoGradGuard.
using FeatureFn = std::function<at::Tensor(const at::Tensor& images)>;

// tokens: (B, L+1, D) -> (B, D): the cls token, or the mean of the L patch tokens.
at::Tensor pool_tokens(const at::Tensor& tokens, const std::string& pool);

// Features of the first `limit` samples (0 = all) under the evaluation transform (eval_tf.random is
// ignored; eval_tf.transforms names the pipeline), in dataset order, in chunks of feature_batch.
Features extract_features(const FeatureFn& features, std::shared_ptr<const data::Dataset> set,
                          const data::AugmentConfig& eval_tf, const std::string& pool, int64_t feature_batch,
                          int64_t limit = 0, int64_t num_workers = 0, bool fail_on_bad_image = false);
// The same over an in-memory set. -> (N, D) float32
at::Tensor extract_features(const FeatureFn& features, const data::ImageSet& set,
                            const data::AugmentConfig& eval_tf, const std::string& pool,
                            int64_t feature_batch, int64_t limit = 0);

// Trains BN(no affine) + Linear on fixed features and reports top-1 (cfg's pool, limits and feature_batch
// are not used here). train_x: (N, D), train_y: (N), test_x: (M, D), test_y: (M) -> result
LinprobeResult fit_linear_probe(const at::Tensor& train_x, const at::Tensor& train_y,
                                const at::Tensor& test_x, const at::Tensor& test_y,
                                const LinprobeConfig& cfg);

// Extracts features once (evaluation transform) and fits the probe. Throws InputError for a bad config.
// Both datasets must be labelled.
LinprobeResult run_linprobe(const FeatureFn& features, std::shared_ptr<const data::Dataset> train,
                            std::shared_ptr<const data::Dataset> test, const data::AugmentConfig& eval_tf,
                            const LinprobeConfig& cfg);
LinprobeResult run_linprobe(const FeatureFn& features, const data::ImageSet& train,
                            const data::ImageSet& test, const data::AugmentConfig& eval_tf,
                            const LinprobeConfig& cfg);

}  // namespace semaim::eval
