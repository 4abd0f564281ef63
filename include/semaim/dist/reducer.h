// Bucketed gradient all-reduce in the manner of PyTorch DDP: parameters in flat buckets
// (reverse registration order, first bucket smaller), gradients as views into their bucket, a post-accumulate
// hook per parameter, each bucket all-reduced asynchronously as soon as all its gradients are in -- in bucket
// order on every rank -- while backward continues; averaged over ranks at the end. No communication on
// gradient-accumulation micro-steps.
#pragma once
#include <ATen/core/Tensor.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "semaim/dist/comm.h"

namespace semaim::dist {

struct ReducerConfig {
  int64_t bucket_cap_bytes = 25 * 1024 * 1024;   // DDP's bucket_cap_mb = 25
  int64_t first_bucket_cap_bytes = 1024 * 1024;  // DDP's first bucket: 1 MB, so communication starts early
  // false: every bucket waits for finish() (no overlap with backward); for the overlap benchmark.
  bool overlap = true;
};

struct BucketInfo {
  std::vector<size_t> params;  // indices into the reducer's parameter list, in bucket order
  int64_t numel = 0;
  at::ScalarType dtype = at::kFloat;
};

class Reducer {
 public:
  // params: (name, tensor) of every trainable parameter, the same on every rank (check_parameters_match).
  Reducer(std::vector<std::pair<std::string, at::Tensor>> params, Communicator& comm, ReducerConfig cfg = {});
  ~Reducer();
  Reducer(const Reducer&) = delete;
  Reducer& operator=(const Reducer&) = delete;

  const std::vector<BucketInfo>& buckets() const { return buckets_; }
  // Before each backward: sync = false on accumulation micro-steps (gradients only accumulate locally).
  void prepare(bool sync);
  // After backward: launches buckets whose parameters got no gradient, waits for all, leaves the rank average
  // in every gradient. Nothing happens after a prepare(false).
  void finish();
  // Zeroes the buckets (the gradients stay views into them).
  void zero_grad();
  // Every parameter's value from rank root (start of training).
  void broadcast_parameters(int root = 0);
  // Bucket indices in the order the last synced backward launched them (for tests and the benchmark).
  const std::vector<int>& launch_order() const { return launch_order_; }
  // Seconds from the last gradient's hook to the end of finish() in the last synced step: the communication
  // left over after backward, which delays the optimizer step.
  double last_tail_seconds() const { return last_tail_seconds_; }

 private:
  struct Impl;
  void on_ready(size_t param);
  void launch(int bucket);

  std::vector<std::pair<std::string, at::Tensor>> params_;
  Communicator& comm_;
  std::vector<BucketInfo> buckets_;
  std::vector<at::Tensor> flat_;  // one flat tensor per bucket
  std::vector<int> bucket_of_;    // param -> bucket
  std::vector<int> pending_;      // gradients still to come per bucket
  std::vector<std::unique_ptr<Work>> work_;
  std::vector<int> launch_order_;
  int next_launch_ = 0;
  bool sync_ = true, armed_ = false, overlap_ = true;
  std::chrono::steady_clock::time_point last_ready_;
  double last_tail_seconds_ = 0;
};

// Start-up check that every rank holds the same parameter names and shapes, in the same order. Throws
// InputError naming the first parameter that differs from rank 0 (or the count when that differs).
void check_parameters_match(const std::vector<std::pair<std::string, at::Tensor>>& params,
                            Communicator& comm);

}  // namespace semaim::dist
