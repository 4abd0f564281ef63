// Run context: threads, device, communicator, run directory, fault points.
#include "semaim/engine/run.h"

#include <ATen/Parallel.h>
#include <torch/cuda.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include "semaim/core/errors.h"
#include "semaim/core/log.h"
#include "semaim/data/settings.h"
#include "semaim/dist/rendezvous.h"

namespace semaim::engine {
namespace {

std::optional<std::pair<int, int64_t>> fault_point(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr) return std::nullopt;
  int r = -1;
  long long st = -1;
  if (std::sscanf(v, "%d:%lld", &r, &st) != 2 || r < 0 || st < 0)
    throw InputError(name, std::string("must be RANK:STEP, got '") + v + "'");
  return std::make_pair(r, static_cast<int64_t>(st));
}

}  // namespace

FaultPoints FaultPoints::from_env() {
  return {fault_point("SEMAIM_FAULT_EXIT"), fault_point("SEMAIM_FAULT_STALL")};
}

void FaultPoints::check(int rank, int64_t step) const {
  if (exit_at && exit_at->first == rank && exit_at->second == step) {
    std::fprintf(stderr, "semaim: SEMAIM_FAULT_EXIT: rank %d exits at step %lld\n", rank, (long long)step);
    std::fflush(stderr);
    std::_Exit(3);
  }
  if (stall_at && stall_at->first == rank && stall_at->second == step) {
    std::fprintf(stderr, "semaim: SEMAIM_FAULT_STALL: rank %d stalls at step %lld\n", rank, (long long)step);
    std::fflush(stderr);
    for (;;) std::this_thread::sleep_for(std::chrono::hours(1));
  }
}

data::Loader make_train_loader(const config::Config& cfg, const RunContext& ctx, int64_t batch_size,
                               const data::AugmentConfig& augment, std::shared_ptr<const data::Dataset> set,
                               std::function<void(data::Batch&)> post_batch) {
  data::LoaderConfig lcfg = data::loader_config(cfg, batch_size, augment);
  lcfg.post_batch = std::move(post_batch);
  lcfg.rank = ctx.rank();
  lcfg.world_size = ctx.world();
  return data::Loader(std::move(set), lcfg);
}

at::Device select_device(const std::string& name) {
  const bool has_cuda = torch::cuda::is_available();
  if (name == "cuda" && !has_cuda)
    throw InputError("run.device", "'cuda' requested but no CUDA device is available");
  return (name == "cuda" || (name == "auto" && has_cuda)) ? at::Device(at::kCUDA, 0) : at::Device(at::kCPU);
}

RunContext RunContext::open(const config::Config& cfg, bool quiet) {
  RunContext ctx;
  ctx.run = RunSettings::read(cfg);
  at::set_num_threads(static_cast<int>(ctx.run.threads));
  ctx.device = select_device(ctx.run.device);
  const dist::Rendezvous rdv = dist::detect_rendezvous(dist::process_env());
  ctx.comm =
      dist::make_communicator(cfg.get_string("dist.backend"), rdv, cfg.get_float("dist.timeout_seconds"));
  ctx.faults = FaultPoints::from_env();
  ctx.quiet = quiet || !ctx.rank0();
  if (ctx.quiet) core::set_log_quiet(true);
  if (ctx.rank0()) {
    std::error_code ec;
    std::filesystem::create_directories(ctx.run.dir, ec);
    if (ec) throw RuntimeFailure("cannot create the run directory " + ctx.run.dir + ": " + ec.message());
  }
  ctx.barrier();
  return ctx;
}

void RunContext::lock_run_dir() {
  if (!rank0() || (run_lock && run_lock->dir() == run.dir)) return;
  run_lock.reset();
  run_lock = std::make_unique<RunLock>(run.dir);
}

void RunContext::barrier() const {
  if (world() > 1) comm->barrier();
}

double RunContext::mean_over_ranks(double v) const {
  if (world() == 1) return v;
  at::Tensor t = at::full({1}, v, at::kDouble);
  comm->all_reduce(t, dist::ReduceOp::kAvg);
  return t.item<double>();
}

double RunContext::sum_over_ranks(double v) const {
  if (world() == 1) return v;
  at::Tensor t = at::full({1}, v, at::kDouble);
  comm->all_reduce(t, dist::ReduceOp::kSum);
  return t.item<double>();
}

}  // namespace semaim::engine
