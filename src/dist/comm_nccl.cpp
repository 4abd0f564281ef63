// The NCCL communicator (comm.h) for CUDA tensors: c10d::ProcessGroupNCCL over a c10d::TCPStore rendezvous
// (torchrun's agent store under /worker/attempt_<n> when TORCHELASTIC_USE_AGENT_STORE=True, else a store
// hosted by rank 0 on MASTER_ADDR:MASTER_PORT). Compiled when the build has CUDA and torch's c10d NCCL
// (USE_C10D_NCCL).
#include "semaim/dist/comm.h"

#if defined(SEMAIM_WITH_CUDA) && defined(USE_C10D_NCCL)
#include <ATen/ATen.h>
#include <c10/cuda/CUDAFunctions.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <chrono>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "semaim/core/errors.h"

namespace semaim::dist {
namespace {

class NcclWork final : public Work {
 public:
  explicit NcclWork(c10::intrusive_ptr<c10d::Work> w) : w_(std::move(w)) {}
  void wait() override { w_->wait(); }  // makes the current stream wait for the collective

 private:
  c10::intrusive_ptr<c10d::Work> w_;
};

void check_cuda_tensor(const at::Tensor& t) {
  if (!t.defined() || !t.is_cuda() || !t.is_contiguous()) {
    throw InputError("dist", "the NCCL backend carries contiguous CUDA tensors only");
  }
}

class NcclCommunicator final : public Communicator {
 public:
  NcclCommunicator(const Rendezvous& rdv, double timeout_seconds) : rank_(rdv.rank), size_(rdv.world_size) {
    if (rdv.master_addr.empty() || rdv.master_port <= 0) {
      throw InputError("MASTER_ADDR",
                       "the NCCL backend needs MASTER_ADDR and MASTER_PORT (torchrun and srun set them)");
    }
    c10::cuda::set_device(static_cast<c10::DeviceIndex>(rdv.local_rank));  // LOCAL_RANK picks the GPU
    const auto timeout = std::chrono::milliseconds(
        timeout_seconds > 0 ? static_cast<int64_t>(timeout_seconds * 1000) : int64_t{24} * 3600 * 1000);
    c10d::TCPStoreOptions so;
    so.port = static_cast<std::uint16_t>(rdv.master_port);
    so.timeout = timeout;
    c10::intrusive_ptr<c10d::Store> store;
    if (rdv.agent_store) {  // torchrun's agent hosts the store: every rank is a client, under the attempt
                            // prefix
      so.isServer = false;
      store = c10::make_intrusive<c10d::PrefixStore>(
          rdv.store_prefix, c10::make_intrusive<c10d::TCPStore>(rdv.master_addr, so));
    } else {
      so.isServer = rdv.rank == 0;
      so.numWorkers = static_cast<std::size_t>(rdv.world_size);
      store = c10::make_intrusive<c10d::PrefixStore>(
          "semaim", c10::make_intrusive<c10d::TCPStore>(rdv.master_addr, so));
    }
    auto opts = c10d::ProcessGroupNCCL::Options::create();
    opts->timeout = timeout;
    pg_ = c10::make_intrusive<c10d::ProcessGroupNCCL>(store, rank_, size_, opts);
  }
  int rank() const override { return rank_; }
  int world_size() const override { return size_; }
  std::string backend() const override { return "nccl"; }
  std::unique_ptr<Work> all_reduce_async(at::Tensor& t, ReduceOp op) override {
    check_cuda_tensor(t);
    std::vector<at::Tensor> v{t};
    c10d::AllreduceOptions o;
    o.reduceOp =
        op == ReduceOp::kAvg ? c10d::ReduceOp(c10d::ReduceOp::AVG) : c10d::ReduceOp(c10d::ReduceOp::SUM);
    return std::make_unique<NcclWork>(pg_->allreduce(v, o));
  }
  void broadcast(at::Tensor& t, int root) override {
    check_cuda_tensor(t);
    std::vector<at::Tensor> v{t};
    c10d::BroadcastOptions o;
    o.rootRank = root;
    pg_->broadcast(v, o)->wait();
  }
  at::Tensor all_gather(const at::Tensor& t) override {
    const at::Tensor src = t.contiguous();
    check_cuda_tensor(src);
    std::vector<at::Tensor> in{src};
    std::vector<std::vector<at::Tensor>> out(1);
    for (int r = 0; r < size_; ++r) out[0].push_back(at::empty_like(src));
    pg_->allgather(out, in)->wait();
    return at::stack(out[0]);
  }
  void barrier() override { pg_->barrier()->wait(); }

 private:
  int rank_, size_;
  c10::intrusive_ptr<c10d::ProcessGroupNCCL> pg_;
};

}  // namespace

std::unique_ptr<Communicator> make_nccl_communicator(const Rendezvous& rdv, double timeout_seconds) {
  if (c10::cuda::device_count() < 1) {
    throw InputError("dist.backend",
                     "nccl needs CUDA devices and there are no CUDA devices here; run CPU ranks with mpirun");
  }
  return std::make_unique<NcclCommunicator>(rdv, timeout_seconds);
}
bool nccl_built() { return true; }

}  // namespace semaim::dist

#else

#include "semaim/core/errors.h"

namespace semaim::dist {

std::unique_ptr<Communicator> make_nccl_communicator(const Rendezvous&, double) {
  throw InputError("dist.backend",
                   "this build has no NCCL backend (configure with CUDA: SEMAIM_WITH_CUDA=ON)");
}
bool nccl_built() { return false; }

}  // namespace semaim::dist

#endif
