// The bucketed gradient reducer (reducer.h), after DDP's Reducer: buckets, views, hooks, ordered async
// launch.
#include "semaim/dist/reducer.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/function_hook.h>
#include <torch/csrc/autograd/variable.h>

#include <chrono>
#include <string>

#include "semaim/core/errors.h"

namespace semaim::dist {
namespace {

struct ReadyHook final : torch::autograd::PostAccumulateGradHook {
  ReadyHook(Reducer* r, size_t i, void (*fn)(Reducer*, size_t)) : reducer(r), index(i), call(fn) {}
  void operator()(const torch::autograd::Variable&) override { call(reducer, index); }
  Reducer* reducer;
  size_t index;
  void (*call)(Reducer*, size_t);
};

std::string shape_str(const at::Tensor& t) {
  std::string s = "(";
  for (int64_t i = 0; i < t.dim(); ++i) s += (i ? ", " : "") + std::to_string(t.size(i));
  return s + ")";
}

// FNV-1a of a parameter's name and shape, as a non-negative int64 for the all-gather.
int64_t param_hash(const std::string& name, const at::Tensor& t) {
  uint64_t h = 1469598103934665603ull;
  auto mix = [&](const std::string& s) {
    for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  };
  mix(name);
  mix(shape_str(t));
  mix(c10::toString(t.scalar_type()));
  return static_cast<int64_t>(h >> 1);
}

}  // namespace

struct Reducer::Impl {
  static void ready(Reducer* r, size_t i) { r->on_ready(i); }
};

Reducer::Reducer(std::vector<std::pair<std::string, at::Tensor>> params, Communicator& comm,
                 ReducerConfig cfg)
    : params_(std::move(params)), comm_(comm), overlap_(cfg.overlap) {
  if (cfg.bucket_cap_bytes < 1 || cfg.first_bucket_cap_bytes < 1) {
    throw InputError("dist.bucket_cap_mb", "bucket sizes must be positive");
  }
  bucket_of_.assign(params_.size(), -1);
  // Reverse registration order: gradients of the last layers are ready first in backward.
  int64_t bytes = 0;
  for (size_t k = params_.size(); k-- > 0;) {
    const at::Tensor& p = params_[k].second;
    if (!p.requires_grad())
      throw InputError("dist", "parameter '" + params_[k].first + "' does not require grad");
    const int64_t pbytes = p.numel() * static_cast<int64_t>(p.element_size());
    const bool same_kind = !buckets_.empty() && buckets_.back().dtype == p.scalar_type() &&
                           params_[buckets_.back().params.front()].second.device() == p.device();
    // The open bucket is the first one (smaller cap) while only one exists.
    const int64_t this_cap = buckets_.size() == 1 ? cfg.first_bucket_cap_bytes : cfg.bucket_cap_bytes;
    if (buckets_.empty() || !same_kind || (bytes > 0 && bytes + pbytes > this_cap)) {
      buckets_.push_back(BucketInfo{{}, 0, p.scalar_type()});
      bytes = 0;
    }
    buckets_.back().params.push_back(k);
    buckets_.back().numel += p.numel();
    bytes += pbytes;
    bucket_of_[k] = static_cast<int>(buckets_.size()) - 1;
  }
  // Flat storage per bucket; every gradient becomes a view into it.
  for (const BucketInfo& b : buckets_) {
    const at::Tensor& first = params_[b.params.front()].second;
    at::Tensor flat = at::zeros({b.numel}, first.options().requires_grad(false));
    int64_t off = 0;
    for (size_t k : b.params) {
      at::Tensor& p = params_[k].second;
      p.mutable_grad() = flat.narrow(0, off, p.numel()).view(p.sizes());
      off += p.numel();
    }
    flat_.push_back(flat);
  }
  for (size_t k = 0; k < params_.size(); ++k) {
    torch::autograd::impl::set_post_acc_grad_hooks(params_[k].second,
                                                   std::make_unique<ReadyHook>(this, k, &Impl::ready));
  }
  pending_.assign(buckets_.size(), 0);
  work_.resize(buckets_.size());
}

Reducer::~Reducer() {
  for (auto& [name, p] : params_) torch::autograd::impl::set_post_acc_grad_hooks(p, nullptr);
  for (auto& w : work_) {
    if (w) {
      try {
        w->wait();
      } catch (...) {
      }
    }
  }
}

void Reducer::prepare(bool sync) {
  sync_ = sync;
  last_ready_ = std::chrono::steady_clock::now();
  armed_ = sync;
  next_launch_ = 0;
  launch_order_.clear();
  for (size_t b = 0; b < buckets_.size(); ++b) pending_[b] = static_cast<int>(buckets_[b].params.size());
}

void Reducer::on_ready(size_t param) {
  if (!armed_) return;
  last_ready_ = std::chrono::steady_clock::now();
  const int b = bucket_of_[param];
  if (--pending_[b] != 0 || !overlap_) return;
  // Launch in bucket order only, so every rank issues the same sequence of collectives.
  while (next_launch_ < static_cast<int>(buckets_.size()) && pending_[next_launch_] == 0)
    launch(next_launch_++);
}

void Reducer::launch(int bucket) {
  for (size_t k : buckets_[bucket].params) {
    // A gradient replaced by a non-view (e.g. set_to_none zeroing) would silently escape the bucket.
    if (!params_[k].second.grad().is_alias_of(flat_[bucket])) {
      throw RuntimeFailure("dist: the gradient of '" + params_[k].first +
                           "' is no longer a view into its bucket (zero gradients with Reducer::zero_grad)");
    }
  }
  work_[bucket] = comm_.all_reduce_async(flat_[bucket], ReduceOp::kAvg);
  launch_order_.push_back(bucket);
}

void Reducer::finish() {
  if (!armed_) return;
  // Buckets with parameters that got no gradient this step go out now, still in bucket order.
  for (; next_launch_ < static_cast<int>(buckets_.size()); ++next_launch_) launch(next_launch_);
  for (auto& w : work_) {
    if (w) w->wait();
    w.reset();
  }
  last_tail_seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - last_ready_).count();
  armed_ = false;
}

void Reducer::zero_grad() {
  for (auto& f : flat_) f.zero_();
}

void Reducer::broadcast_parameters(int root) {
  at::NoGradGuard ng;
  for (auto& [name, p] : params_) {
    at::Tensor data = p.detach();
    if (data.is_contiguous()) {
      comm_.broadcast(data, root);
    } else {
      at::Tensor c = data.contiguous();
      comm_.broadcast(c, root);
      data.copy_(c);
    }
  }
}

void check_parameters_match(const std::vector<std::pair<std::string, at::Tensor>>& params,
                            Communicator& comm) {
  const at::Tensor count = comm.all_gather(at::full({1}, static_cast<int64_t>(params.size()), at::kLong));
  for (int r = 0; r < comm.world_size(); ++r) {
    if (count[r][0].item<int64_t>() != static_cast<int64_t>(params.size())) {
      throw InputError("dist", "rank " + std::to_string(comm.rank()) + " has " +
                                   std::to_string(params.size()) + " parameters but rank " +
                                   std::to_string(r) + " has " + std::to_string(count[r][0].item<int64_t>()));
    }
  }
  at::Tensor mine = at::empty({static_cast<int64_t>(params.size())}, at::kLong);
  for (size_t i = 0; i < params.size(); ++i)
    mine[static_cast<int64_t>(i)] = param_hash(params[i].first, params[i].second);
  const at::Tensor all = comm.all_gather(mine);
  for (size_t i = 0; i < params.size(); ++i) {
    for (int r = 0; r < comm.world_size(); ++r) {
      if (!at::equal(all[r][static_cast<int64_t>(i)], all[0][static_cast<int64_t>(i)])) {
        throw InputError("dist", "parameter #" + std::to_string(i) + " differs across ranks: rank " +
                                     std::to_string(comm.rank()) + " has '" + params[i].first + "' " +
                                     shape_str(params[i].second) + ", rank " + std::to_string(r) +
                                     " disagrees with rank 0");
      }
    }
  }
}

}  // namespace semaim::dist
