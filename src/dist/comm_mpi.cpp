// The MPI communicator (comm.h) on MPI_COMM_WORLD: CPU tensors, MPI_Iallreduce for the async all-reduce.
// Compiled only with SEMAIM_WITH_MPI (the build drops *_mpi.cpp otherwise).
#include <ATen/ATen.h>
#include <mpi.h>

#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "semaim/config/errors.h"
#include "semaim/dist/comm.h"

namespace semaim::dist {
namespace {

void check_mpi(int code, const char* what) {
  if (code == MPI_SUCCESS) return;
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(code, msg, &len);
  throw RuntimeFailure(std::string("dist (mpi): ") + what +
                       " failed: " + std::string(msg, static_cast<size_t>(len)));
}

MPI_Datatype mpi_type(const at::Tensor& t) {
  if (!t.defined() || !t.is_cpu() || !t.is_contiguous()) {
    throw InputError("dist", "the MPI backend carries contiguous CPU tensors only");
  }
  switch (t.scalar_type()) {
    case at::kFloat:
      return MPI_FLOAT;
    case at::kDouble:
      return MPI_DOUBLE;
    case at::kInt:
      return MPI_INT32_T;
    case at::kLong:
      return MPI_INT64_T;
    default:
      throw InputError("dist", std::string("the MPI backend cannot carry ") + c10::toString(t.scalar_type()) +
                                   " tensors (float32, float64, int32, int64)");
  }
}

// MPI is initialized once per process (errors returned, not fatal) and finalized at exit.
void ensure_mpi() {
  static std::once_flag once;
  std::call_once(once, [] {
    int inited = 0;
    MPI_Initialized(&inited);
    if (!inited) {
      int provided = 0;
      check_mpi(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
      std::atexit([] {
        int finalized = 0;
        MPI_Finalized(&finalized);
        if (!finalized) MPI_Finalize();
      });
    }
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  });
}

class MpiWork final : public Work {
 public:
  MpiWork(MPI_Request req, at::Tensor t, bool average, int world)
      : req_(req), t_(std::move(t)), average_(average), world_(world) {}
  ~MpiWork() override {
    if (req_ != MPI_REQUEST_NULL) MPI_Wait(&req_, MPI_STATUS_IGNORE);
  }
  void wait() override {
    check_mpi(MPI_Wait(&req_, MPI_STATUS_IGNORE), "MPI_Wait(all_reduce)");
    if (average_) {
      if (at::isFloatingType(t_.scalar_type())) {
        t_.div_(world_);
      } else {
        t_.div_(world_, "floor");
      }
    }
  }

 private:
  MPI_Request req_;
  at::Tensor t_;
  bool average_;
  int world_;
};

class MpiCommunicator final : public Communicator {
 public:
  MpiCommunicator() {
    ensure_mpi();
    check_mpi(MPI_Comm_rank(MPI_COMM_WORLD, &rank_), "MPI_Comm_rank");
    check_mpi(MPI_Comm_size(MPI_COMM_WORLD, &size_), "MPI_Comm_size");
  }
  int rank() const override { return rank_; }
  int world_size() const override { return size_; }
  std::string backend() const override { return "mpi"; }
  std::unique_ptr<Work> all_reduce_async(at::Tensor& t, ReduceOp op) override {
    const MPI_Datatype type = mpi_type(t);
    MPI_Request req = MPI_REQUEST_NULL;
    check_mpi(MPI_Iallreduce(MPI_IN_PLACE, t.data_ptr(), static_cast<int>(t.numel()), type, MPI_SUM,
                             MPI_COMM_WORLD, &req),
              "MPI_Iallreduce");
    return std::make_unique<MpiWork>(req, t, op == ReduceOp::kAvg, size_);
  }
  void broadcast(at::Tensor& t, int root) override {
    if (root < 0 || root >= size_)
      throw InputError("dist", "broadcast root " + std::to_string(root) + " out of range");
    check_mpi(MPI_Bcast(t.data_ptr(), static_cast<int>(t.numel()), mpi_type(t), root, MPI_COMM_WORLD),
              "MPI_Bcast");
  }
  at::Tensor all_gather(const at::Tensor& t) override {
    const at::Tensor src = t.contiguous();
    std::vector<int64_t> shape{size_};
    for (int64_t s : src.sizes()) shape.push_back(s);
    at::Tensor out = at::empty(shape, src.options());
    check_mpi(MPI_Allgather(src.data_ptr(), static_cast<int>(src.numel()), mpi_type(src), out.data_ptr(),
                            static_cast<int>(src.numel()), mpi_type(src), MPI_COMM_WORLD),
              "MPI_Allgather");
    return out;
  }
  void barrier() override { check_mpi(MPI_Barrier(MPI_COMM_WORLD), "MPI_Barrier"); }

 private:
  int rank_ = 0, size_ = 1;
};

}  // namespace

std::unique_ptr<Communicator> make_mpi_communicator() { return std::make_unique<MpiCommunicator>(); }
bool mpi_built() { return true; }

}  // namespace semaim::dist
