// A run's process-wide context (MAE's misc.init_distributed_mode + output_dir handling): intra-op threads,
// the device, this rank's communicator from the launcher's environment, the run directory (created by rank
// 0), and the fault points a cluster rehearsal can set.
#pragma once
#include <ATen/ATen.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "semaim/config/config.h"
#include "semaim/data/loader.h"
#include "semaim/dist/comm.h"
#include "semaim/engine/run_lock.h"
#include "semaim/engine/settings.h"

namespace semaim::engine {

// SEMAIM_FAULT_EXIT="R:S" makes rank R exit abruptly (code 3, as a crash would) when it reaches step S;
// SEMAIM_FAULT_STALL="R:S" makes it hang there (a stalled rank). For the launcher tests and cluster
// rehearsals.
struct FaultPoints {
  std::optional<std::pair<int, int64_t>> exit_at, stall_at;
  static FaultPoints from_env();
  // Exits or hangs when this rank reaches a fault step; otherwise returns.
  void check(int rank, int64_t step) const;
};

struct RunContext {
  RunSettings run;
  at::Device device{at::kCPU};
  std::unique_ptr<dist::Communicator> comm;
  FaultPoints faults;
  bool quiet = false;                 // this rank prints nothing (non-zero ranks, tests)
  std::unique_ptr<RunLock> run_lock;  // rank 0 of a training run: held while the run writes run.dir

  // Threads, device, communicator and run directory for `cfg`; quiet mutes the console of every rank.
  static RunContext open(const config::Config& cfg, bool quiet);
  int rank() const { return comm->rank(); }
  int world() const { return comm->world_size(); }
  bool rank0() const { return comm->rank() == 0; }
  // Rank 0 takes the lock of run.dir (the directory a training run writes, after any subdirectory was chosen)
  // for the context's lifetime; InputError naming the directory and the holder's pid when another process
  // holds it. Other ranks, and a context already holding the lock of run.dir, do nothing.
  void lock_run_dir();
  // Every rank waits for every other (no-op on one rank).
  void barrier() const;
  // The mean (or sum) of a value over ranks.
  double mean_over_ranks(double v) const;
  double sum_over_ranks(double v) const;
};

// A shuffled, drop-last training loader of `batch_size` images per micro-batch over this rank's shard of
// `set`; post_batch (optional) runs on each finished batch in its worker thread (batch mixing).
data::Loader make_train_loader(const config::Config& cfg, const RunContext& ctx, int64_t batch_size,
                               const data::AugmentConfig& augment, std::shared_ptr<const data::Dataset> set,
                               std::function<void(data::Batch&)> post_batch = {});

// "auto" (CUDA when available), "cpu" or "cuda" (an InputError when no CUDA device exists).
at::Device select_device(const std::string& name);

}  // namespace semaim::engine
