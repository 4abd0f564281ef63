// The single-process communicator and the backend choice (comm.h).
#include "semaim/dist/comm.h"

#include <ATen/ATen.h>

#include <memory>
#include <string>

#include "semaim/core/errors.h"

namespace semaim::dist {
namespace {

class DoneWork final : public Work {
 public:
  void wait() override {}
};

class SingleCommunicator final : public Communicator {
 public:
  int rank() const override { return 0; }
  int world_size() const override { return 1; }
  std::string backend() const override { return "single"; }
  std::unique_ptr<Work> all_reduce_async(at::Tensor&, ReduceOp) override {
    return std::make_unique<DoneWork>();
  }
  void broadcast(at::Tensor&, int root) override {
    if (root != 0) throw InputError("dist", "broadcast root " + std::to_string(root) + " in a 1-process job");
  }
  at::Tensor all_gather(const at::Tensor& t) override { return t.unsqueeze(0).clone(); }
  void barrier() override {}
};

}  // namespace

std::unique_ptr<Communicator> make_single_communicator() { return std::make_unique<SingleCommunicator>(); }

#ifndef SEMAIM_WITH_MPI
std::unique_ptr<Communicator> make_mpi_communicator(double) {
  throw RuntimeFailure(
      "dist: this build has no MPI backend (configure with SEMAIM_WITH_MPI=ON and OpenMPI installed)");
}
bool mpi_built() { return false; }
#endif

std::unique_ptr<Communicator> make_communicator(const std::string& backend, const Rendezvous& rdv,
                                                double timeout_seconds) {
  if (backend == "single") {
    if (rdv.world_size != 1) {
      throw InputError("dist.backend", "'single' in a job of " + std::to_string(rdv.world_size) +
                                           " ranks (launcher " + rdv.launcher + ")");
    }
    return make_single_communicator();
  }
  if (backend == "mpi") return make_mpi_communicator(timeout_seconds);
  if (backend == "auto") {
    if (rdv.world_size == 1) return make_single_communicator();
    if (rdv.launcher == "openmpi") return make_mpi_communicator(timeout_seconds);
    return make_nccl_communicator(rdv, timeout_seconds);  // torchrun / srun: GPU ranks over NCCL
  }
  if (backend == "nccl") return make_nccl_communicator(rdv, timeout_seconds);
  throw InputError("dist.backend", "unknown backend '" + backend + "' (valid: auto, single, mpi, nccl)");
}

}  // namespace semaim::dist
