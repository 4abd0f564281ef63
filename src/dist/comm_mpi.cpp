// The MPI communicator (comm.h) on MPI_COMM_WORLD: CPU tensors, MPI_Iallreduce for the async all-reduce.
// Compiled only with SEMAIM_WITH_MPI (the build drops *_mpi.cpp otherwise).
#include <ATen/ATen.h>
#include <mpi.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
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

// Ends the process when a collective runs longer than the timeout (a peer stalled or died): a message naming
// this rank and the collective, then _Exit(1), after which mpirun stops the other ranks. MPI itself cannot be
// called from this thread (the library runs at MPI_THREAD_FUNNELED).
class Watchdog {
 public:
  Watchdog(double timeout_seconds, int rank) : timeout_(timeout_seconds), rank_(rank) {
    if (timeout_ > 0) thread_ = std::thread([this] { run(); });
  }
  ~Watchdog() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

  // Marks a blocking collective from construction to destruction.
  class Scope {
   public:
    Scope(Watchdog& w, const char* what) : w_(w) {
      w_.what_.store(what);
      w_.since_ns_.store(now_ns());
    }
    ~Scope() { w_.since_ns_.store(0); }

   private:
    Watchdog& w_;
  };

 private:
  static int64_t now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }
  void run() {
    while (!stop_) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      const int64_t since = since_ns_.load();
      if (since != 0 && static_cast<double>(now_ns() - since) * 1e-9 > timeout_) {
        std::fprintf(
            stderr,
            "semaim: rank %d: %s did not complete within %.0f s (dist.timeout_seconds): another rank "
            "stalled or died; stopping this rank\n",
            rank_, what_.load(), timeout_);
        std::fflush(stderr);
        std::_Exit(1);
      }
    }
  }
  double timeout_;
  int rank_;
  std::atomic<bool> stop_{false};
  std::atomic<int64_t> since_ns_{0};
  std::atomic<const char*> what_{""};
  std::thread thread_;
};

class MpiWork final : public Work {
 public:
  MpiWork(MPI_Request req, at::Tensor t, bool average, int world, Watchdog& dog)
      : req_(req), t_(std::move(t)), average_(average), world_(world), dog_(dog) {}
  ~MpiWork() override {
    if (req_ != MPI_REQUEST_NULL) MPI_Wait(&req_, MPI_STATUS_IGNORE);
  }
  void wait() override {
    {
      Watchdog::Scope scope(dog_, "all_reduce");
      check_mpi(MPI_Wait(&req_, MPI_STATUS_IGNORE), "MPI_Wait(all_reduce)");
    }
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
  Watchdog& dog_;
};

class MpiCommunicator final : public Communicator {
 public:
  explicit MpiCommunicator(double timeout_seconds) {
    ensure_mpi();
    check_mpi(MPI_Comm_rank(MPI_COMM_WORLD, &rank_), "MPI_Comm_rank");
    check_mpi(MPI_Comm_size(MPI_COMM_WORLD, &size_), "MPI_Comm_size");
    dog_ = std::make_unique<Watchdog>(timeout_seconds, rank_);
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
    return std::make_unique<MpiWork>(req, t, op == ReduceOp::kAvg, size_, *dog_);
  }
  void broadcast(at::Tensor& t, int root) override {
    if (root < 0 || root >= size_)
      throw InputError("dist", "broadcast root " + std::to_string(root) + " out of range");
    Watchdog::Scope scope(*dog_, "broadcast");
    check_mpi(MPI_Bcast(t.data_ptr(), static_cast<int>(t.numel()), mpi_type(t), root, MPI_COMM_WORLD),
              "MPI_Bcast");
  }
  at::Tensor all_gather(const at::Tensor& t) override {
    const at::Tensor src = t.contiguous();
    std::vector<int64_t> shape{size_};
    for (int64_t s : src.sizes()) shape.push_back(s);
    at::Tensor out = at::empty(shape, src.options());
    Watchdog::Scope scope(*dog_, "all_gather");
    check_mpi(MPI_Allgather(src.data_ptr(), static_cast<int>(src.numel()), mpi_type(src), out.data_ptr(),
                            static_cast<int>(src.numel()), mpi_type(src), MPI_COMM_WORLD),
              "MPI_Allgather");
    return out;
  }
  void barrier() override {
    Watchdog::Scope scope(*dog_, "barrier");
    check_mpi(MPI_Barrier(MPI_COMM_WORLD), "MPI_Barrier");
  }

 private:
  int rank_ = 0, size_ = 1;
  std::unique_ptr<Watchdog> dog_;
};

}  // namespace

std::unique_ptr<Communicator> make_mpi_communicator(double timeout_seconds) {
  return std::make_unique<MpiCommunicator>(timeout_seconds);
}
bool mpi_built() { return true; }

}  // namespace semaim::dist
