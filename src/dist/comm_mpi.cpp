// The MPI communicator (comm.h) on MPI_COMM_WORLD: CPU tensors, non-blocking collectives waited on under
// dist.timeout_seconds, with arrival reports that let a timed-out rank name the rank that stalled.
// Compiled only with SEMAIM_WITH_MPI (the build drops *_mpi.cpp otherwise).
#include <ATen/ATen.h>
#include <mpi.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "semaim/core/errors.h"
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

// Backstop: ends the process when a collective's wait loop itself stops making progress (the wait loop in
// MpiCommunicator::wait_for handles ordinary timeouts and names the stalled rank). A message naming this rank
// and the collective, then _Exit(1), after which mpirun stops the other ranks. MPI itself cannot be called
// from this thread (the library runs at MPI_THREAD_FUNNELED).
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
            "semaim: rank %d: %s did not complete within %.0f s and MPI stopped responding; stopping "
            "this rank\n",
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

// Which collective each rank has reached, so a rank whose collective times out can name the peers that never
// arrived. Every rank numbers its collectives (all ranks issue them in the same order); when it starts to
// wait, it reports the newest number it has launched with one 8-byte message to two observer ranks, 0 and 1,
// on a duplicate of MPI_COMM_WORLD. The observers read the reports whenever they wait; the sends complete
// eagerly.
class ArrivalBook {
 public:
  ArrivalBook(int rank, int size) : rank_(rank), size_(size), arrived_(static_cast<size_t>(size), 0) {
    check_mpi(MPI_Comm_dup(MPI_COMM_WORLD, &comm_), "MPI_Comm_dup");
    MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
    if (observer(rank_)) post_receive();
  }
  ~ArrivalBook() {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (finalized) return;
    if (recv_ != MPI_REQUEST_NULL) {
      MPI_Cancel(&recv_);
      MPI_Wait(&recv_, MPI_STATUS_IGNORE);
    }
    for (auto& s : sends_) MPI_Wait(&s.first, MPI_STATUS_IGNORE);
    MPI_Comm_free(&comm_);
  }
  ArrivalBook(const ArrivalBook&) = delete;
  ArrivalBook& operator=(const ArrivalBook&) = delete;

  bool observer(int r) const { return r < std::min(2, size_); }

  // This rank starts its next collective. -> its number (1, 2, ...)
  int64_t arrive() { return ++seq_; }

  // This rank is about to wait: tells the observers the newest collective it has started (once per new
  // number). Reporting at waits rather than at launches keeps the messages out of backward, where launches
  // happen while the peers compute.
  void report() {
    if (seq_ > reported_) {
      reported_ = seq_;
      for (int obs = 0; obs < std::min(2, size_); ++obs) {
        if (obs == rank_) continue;
        sends_.emplace_back(MPI_REQUEST_NULL, seq_);
        auto& s = sends_.back();
        check_mpi(MPI_Isend(&s.second, 1, MPI_INT64_T, obs, kTag, comm_, &s.first), "MPI_Isend(arrival)");
      }
    }
    drain();
  }

  // Reads the reports that came in and retires completed sends.
  void drain() {
    while (recv_ != MPI_REQUEST_NULL) {
      int done = 0;
      MPI_Status st;
      check_mpi(MPI_Test(&recv_, &done, &st), "MPI_Test(arrival)");
      if (!done) break;
      int64_t& a = arrived_[static_cast<size_t>(st.MPI_SOURCE)];
      a = std::max(a, recv_buf_);
      post_receive();
    }
    for (auto it = sends_.begin(); it != sends_.end();) {
      int done = 0;
      check_mpi(MPI_Test(&it->first, &done, MPI_STATUS_IGNORE), "MPI_Test(arrival send)");
      it = done ? sends_.erase(it) : std::next(it);
    }
  }

  // Ranks (other than this one) that have not reported reaching collective `seq`; observers only.
  std::vector<int> missing(int64_t seq) {
    drain();
    std::vector<int> out;
    for (int r = 0; r < size_; ++r)
      if (r != rank_ && arrived_[static_cast<size_t>(r)] < seq) out.push_back(r);
    return out;
  }

 private:
  static constexpr int kTag = 7001;
  void post_receive() {
    check_mpi(MPI_Irecv(&recv_buf_, 1, MPI_INT64_T, MPI_ANY_SOURCE, kTag, comm_, &recv_),
              "MPI_Irecv(arrival)");
  }
  int rank_, size_;
  MPI_Comm comm_ = MPI_COMM_NULL;
  int64_t seq_ = 0, reported_ = 0;
  std::vector<int64_t> arrived_;
  MPI_Request recv_ = MPI_REQUEST_NULL;
  int64_t recv_buf_ = 0;
  std::list<std::pair<MPI_Request, int64_t>> sends_;  // list: stable buffer addresses until completion
};

// Waits for one request under dist.timeout_seconds, reading arrival reports meanwhile. On a timeout an
// observer names the ranks that never reached this collective; the other ranks give the observers a head
// start (1 s for rank 1, 3 s for the rest) so the naming message comes first, then stop too.
class Waiter {
 public:
  Waiter(double timeout_seconds, int rank, int size)
      : timeout_(timeout_seconds),
        rank_(rank),
        book_(rank, size),
        backstop_(timeout_seconds > 0 ? timeout_seconds + 15.0 : 0.0, rank) {}

  int64_t arrive() { return book_.arrive(); }

  void wait(MPI_Request* req, const char* what, int64_t seq) {
    Watchdog::Scope scope(backstop_, what);
    book_.report();
    const double limit = timeout_ + (rank_ == 0 ? 0.0 : rank_ == 1 ? 1.0 : 3.0);
    const auto t0 = std::chrono::steady_clock::now();
    for (int64_t spins = 0;; ++spins) {
      int done = 0;
      check_mpi(MPI_Test(req, &done, MPI_STATUS_IGNORE), what);
      if (done) return;
      book_.drain();
      if (timeout_ > 0 && (spins & 255) == 0 &&
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() > limit) {
        stop(what, seq);
      }
      std::this_thread::yield();
    }
  }

 private:
  [[noreturn]] void stop(const char* what, int64_t seq) {
    std::string who;
    if (book_.observer(rank_)) {
      const std::vector<int> missing = book_.missing(seq);
      for (int r : missing) who += (who.empty() ? "" : ", ") + std::to_string(r);
      who = missing.empty() ? "every rank reached it, so the collective itself hangs (network?)"
                            : "rank(s) " + who + " never reached it (stalled or died)";
    } else {
      who = "another rank stalled or died (ranks 0 and 1 name it)";
    }
    std::fprintf(
        stderr,
        "semaim: rank %d: %s (collective #%lld) did not complete within %.0f s (dist.timeout_seconds): %s; "
        "stopping this rank\n",
        rank_, what, static_cast<long long>(seq), timeout_, who.c_str());
    std::fflush(stderr);
    std::_Exit(1);
  }

  double timeout_;
  int rank_;
  ArrivalBook book_;
  Watchdog backstop_;
};

class MpiWork final : public Work {
 public:
  MpiWork(MPI_Request req, at::Tensor t, bool average, int world, Waiter& waiter, int64_t seq)
      : req_(req), t_(std::move(t)), average_(average), world_(world), waiter_(waiter), seq_(seq) {}
  ~MpiWork() override {
    if (req_ != MPI_REQUEST_NULL) MPI_Wait(&req_, MPI_STATUS_IGNORE);
  }
  void wait() override {
    waiter_.wait(&req_, "all_reduce", seq_);
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
  Waiter& waiter_;
  int64_t seq_;
};

class MpiCommunicator final : public Communicator {
 public:
  explicit MpiCommunicator(double timeout_seconds) {
    ensure_mpi();
    check_mpi(MPI_Comm_rank(MPI_COMM_WORLD, &rank_), "MPI_Comm_rank");
    check_mpi(MPI_Comm_size(MPI_COMM_WORLD, &size_), "MPI_Comm_size");
    waiter_ = std::make_unique<Waiter>(timeout_seconds, rank_, size_);
  }
  int rank() const override { return rank_; }
  int world_size() const override { return size_; }
  std::string backend() const override { return "mpi"; }
  std::unique_ptr<Work> all_reduce_async(at::Tensor& t, ReduceOp op) override {
    const MPI_Datatype type = mpi_type(t);
    MPI_Request req = MPI_REQUEST_NULL;
    const int64_t seq = waiter_->arrive();
    check_mpi(MPI_Iallreduce(MPI_IN_PLACE, t.data_ptr(), static_cast<int>(t.numel()), type, MPI_SUM,
                             MPI_COMM_WORLD, &req),
              "MPI_Iallreduce");
    return std::make_unique<MpiWork>(req, t, op == ReduceOp::kAvg, size_, *waiter_, seq);
  }
  void broadcast(at::Tensor& t, int root) override {
    if (root < 0 || root >= size_)
      throw InputError("dist", "broadcast root " + std::to_string(root) + " out of range");
    MPI_Request req = MPI_REQUEST_NULL;
    const int64_t seq = waiter_->arrive();
    check_mpi(MPI_Ibcast(t.data_ptr(), static_cast<int>(t.numel()), mpi_type(t), root, MPI_COMM_WORLD, &req),
              "MPI_Ibcast");
    waiter_->wait(&req, "broadcast", seq);
  }
  at::Tensor all_gather(const at::Tensor& t) override {
    const at::Tensor src = t.contiguous();
    std::vector<int64_t> shape{size_};
    for (int64_t s : src.sizes()) shape.push_back(s);
    at::Tensor out = at::empty(shape, src.options());
    MPI_Request req = MPI_REQUEST_NULL;
    const int64_t seq = waiter_->arrive();
    check_mpi(MPI_Iallgather(src.data_ptr(), static_cast<int>(src.numel()), mpi_type(src), out.data_ptr(),
                             static_cast<int>(src.numel()), mpi_type(src), MPI_COMM_WORLD, &req),
              "MPI_Iallgather");
    waiter_->wait(&req, "all_gather", seq);
    return out;
  }
  void barrier() override {
    MPI_Request req = MPI_REQUEST_NULL;
    const int64_t seq = waiter_->arrive();
    check_mpi(MPI_Ibarrier(MPI_COMM_WORLD, &req), "MPI_Ibarrier");
    waiter_->wait(&req, "barrier", seq);
  }

 private:
  int rank_ = 0, size_ = 1;
  std::unique_ptr<Waiter> waiter_;
};

}  // namespace

std::unique_ptr<Communicator> make_mpi_communicator(double timeout_seconds) {
  return std::make_unique<MpiCommunicator>(timeout_seconds);
}
bool mpi_built() { return true; }

}  // namespace semaim::dist
