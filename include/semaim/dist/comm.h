// Data-parallel communication: one small interface -- all-reduce (async), broadcast, all-gather, barrier --
// with a single-process backend, an MPI backend for CPU tensors (OpenMPI, SEMAIM_WITH_MPI) and an NCCL
// backend for CUDA tensors (c10d::ProcessGroupNCCL).
#pragma once
#include <ATen/core/Tensor.h>

#include <memory>
#include <string>

#include "semaim/dist/rendezvous.h"

namespace semaim::dist {

enum class ReduceOp { kSum, kAvg };

// An in-flight collective; wait() returns when its result is in the tensor (and rethrows its failure).
class Work {
 public:
  virtual ~Work() = default;
  virtual void wait() = 0;
};

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  virtual std::string backend() const = 0;
  // In place on a contiguous tensor; every rank calls collectives in the same order.
  virtual std::unique_ptr<Work> all_reduce_async(at::Tensor& t, ReduceOp op) = 0;
  void all_reduce(at::Tensor& t, ReduceOp op) { all_reduce_async(t, op)->wait(); }
  // t on every rank becomes root's t.
  virtual void broadcast(at::Tensor& t, int root) = 0;
  // t: (...) of the same shape on every rank -> (world_size, ...), row r from rank r.
  virtual at::Tensor all_gather(const at::Tensor& t) = 0;
  virtual void barrier() = 0;
};

// One process: collectives are identities (avg of one value is the value), all_gather adds a leading 1.
std::unique_ptr<Communicator> make_single_communicator();

// MPI_COMM_WORLD of an mpirun job (MPI is initialized on first use, finalized at exit). CPU tensors of
// float32, float64, int32 or int64 (contiguous). Throws RuntimeFailure when this build has no MPI, InputError
// for a tensor MPI cannot carry. timeout_seconds > 0: a watchdog ends this process (exit code 1, after a
// message naming the rank and the collective) when a collective has not completed after that long -- a peer
// stalled or died -- and mpirun then stops every rank. 0: wait forever.
std::unique_ptr<Communicator> make_mpi_communicator(double timeout_seconds = 0);
bool mpi_built();

// NCCL through c10d::ProcessGroupNCCL for CUDA tensors (the device is LOCAL_RANK), rendezvous through a
// c10d::TCPStore: torchrun's agent store (a client under rdv.store_prefix) or one hosted by rank 0 on
// MASTER_ADDR:MASTER_PORT. timeout_seconds bounds every collective (ProcessGroupNCCL's watchdog). Throws
// InputError without CUDA devices or in a build without CUDA.
std::unique_ptr<Communicator> make_nccl_communicator(const Rendezvous& rdv, double timeout_seconds = 0);
bool nccl_built();

// The communicator for this process: "single", "mpi", "nccl", or "auto": single for one process, mpi when
// launched by mpirun, nccl for a multi-rank job started by torchrun or srun.
std::unique_ptr<Communicator> make_communicator(const std::string& backend, const Rendezvous& rdv,
                                                double timeout_seconds = 0);

}  // namespace semaim::dist
