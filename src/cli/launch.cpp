// `semaim launch` (launch.h), torchrun's role without Python: fork + exec per local rank, pipes for the
// rank's stdout and stderr, a poll loop that prefixes lines, and fail-fast shutdown of the survivors.
#include "semaim/cli/launch.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "semaim/core/errors.h"

namespace semaim::cli {
namespace {

const char* const kSubcommands[] = {"pretrain", "linprobe", "export", "config"};

bool is_subcommand(const std::string& s) {
  for (const char* c : kSubcommands)
    if (s == c) return true;
  return false;
}

struct Rank {
  pid_t pid = -1;
  int fd = -1;  // read end of the rank's output pipe; -1 once closed
  std::string pending;
  bool exited = false;
  int code = 0;
};

// Stop signals to the launcher: the ranks run in their own process groups, so the terminal's Ctrl-C does not
// reach them; the poll loop forwards each signal.
volatile sig_atomic_t g_signal = 0, g_signals = 0;
void on_signal(int sig) {
  g_signal = sig;
  g_signals = g_signals + 1;
}

constexpr int kExitPreempted = 75;  // every rank saved and stopped (engine::Trainer on a stop signal)

void emit(int rank, const std::string& line) {
  std::string out = "[rank " + std::to_string(rank) + "] " + line + "\n";
  std::fwrite(out.data(), 1, out.size(), stdout);
  std::fflush(stdout);
}

void validate(const LaunchOptions& o) {
  if (o.nproc_per_node < 1 || o.nproc_per_node > 1024)
    throw InputError("--nproc-per-node", "must be in 1..1024");
  if (o.nnodes < 1 || o.node_rank < 0 || o.node_rank >= o.nnodes) {
    throw InputError("--node-rank", "must be in 0.." + std::to_string(o.nnodes - 1));
  }
  if (o.master_port < 1 || o.master_port > 65535) throw InputError("--master-port", "must be in 1..65535");
  if (o.command.empty()) throw InputError("launch", "nothing to run: give a subcommand after --");
}

// What each rank executes: the program and its full argv (argv[0] included).
struct Command {
  std::string program;
  std::vector<std::string> argv;
};

// A semaim subcommand runs this binary; anything else is a program found on PATH.
Command resolve_command(const LaunchOptions& o) {
  Command c{o.command[0], o.command};
  if (is_subcommand(c.argv[0])) {
    c.program = "/proc/self/exe";
    c.argv.insert(c.argv.begin(), "semaim");
  }
  return c;
}

// Forks local rank `local_rank` with its stdout and stderr on a pipe; the parent keeps the read end.
Rank spawn_rank(const LaunchOptions& o, Command& cmd, int local_rank) {
  int fds[2];
  if (::pipe(fds) != 0) throw RuntimeFailure(std::string("launch: pipe failed: ") + std::strerror(errno));
  const pid_t pid = ::fork();
  if (pid < 0) throw RuntimeFailure(std::string("launch: fork failed: ") + std::strerror(errno));
  if (pid == 0) {  // the rank, in its own process group so that stopping it reaches its children too
    ::setpgid(0, 0);
    ::dup2(fds[1], STDOUT_FILENO);
    ::dup2(fds[1], STDERR_FILENO);
    ::close(fds[0]);
    ::close(fds[1]);
    for (const auto& [k, v] : rank_environment(o, local_rank)) ::setenv(k.c_str(), v.c_str(), 1);
    std::vector<char*> args;
    for (auto& a : cmd.argv) args.push_back(a.data());
    args.push_back(nullptr);
    if (cmd.program == "/proc/self/exe") {
      ::execv(cmd.program.c_str(), args.data());
    } else {
      ::execvp(cmd.program.c_str(), args.data());
    }
    std::fprintf(stderr, "semaim launch: cannot run '%s': %s\n", cmd.program.c_str(), std::strerror(errno));
    ::_exit(127);
  }
  ::close(fds[1]);
  ::setpgid(pid, pid);  // also here, so a kill right after fork cannot miss the group
  Rank r;
  r.pid = pid;
  r.fd = fds[0];
  return r;
}

// Waits up to 100 ms for output from the ranks whose pipes are open (or sleeps 50 ms when none is) and
// prints every complete line with its global rank; a closed pipe flushes its unterminated last line.
void forward_output(std::vector<Rank>& ranks, int first_global) {
  std::vector<pollfd> pfds;
  std::vector<size_t> who;
  for (size_t i = 0; i < ranks.size(); ++i) {
    if (ranks[i].fd >= 0) {
      pfds.push_back({ranks[i].fd, POLLIN, 0});
      who.push_back(i);
    }
  }
  if (!pfds.empty())
    ::poll(pfds.data(), pfds.size(), 100);
  else
    ::usleep(50 * 1000);
  for (size_t k = 0; k < pfds.size(); ++k) {
    if (!(pfds[k].revents & (POLLIN | POLLHUP | POLLERR))) continue;
    Rank& r = ranks[who[k]];
    const int global = first_global + static_cast<int>(who[k]);
    char buf[4096];
    const ssize_t n = ::read(r.fd, buf, sizeof(buf));
    if (n <= 0) {
      if (!r.pending.empty()) emit(global, r.pending);
      r.pending.clear();
      ::close(r.fd);
      r.fd = -1;
      continue;
    }
    r.pending.append(buf, static_cast<size_t>(n));
    for (size_t nl; (nl = r.pending.find('\n')) != std::string::npos;) {
      emit(global, r.pending.substr(0, nl));
      r.pending.erase(0, nl + 1);
    }
  }
}

// Shutdown: fail-fast (a rank failed: SIGTERM to every rank's process group, SIGKILL after the grace period)
// or a forwarded stop signal (the ranks save; SIGKILL only after the stop grace period).
struct Shutdown {
  bool stopping = false;
  bool killed = false;
  int failed_code = 0;
  double grace = 0;
  std::chrono::steady_clock::time_point since;

  void begin(std::vector<Rank>& ranks, int code, int sig, double grace_seconds) {
    stopping = true;
    failed_code = code;
    grace = grace_seconds;
    since = std::chrono::steady_clock::now();
    forward(ranks, sig);
  }
  static void forward(std::vector<Rank>& ranks, int sig) {
    for (Rank& s : ranks)
      if (!s.exited) ::kill(-s.pid, sig);  // whole groups: a rank's children hold its pipe
  }
  void escalate(std::vector<Rank>& ranks) {
    if (!stopping || killed) return;
    const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
    if (waited > grace) {
      for (Rank& s : ranks) ::kill(-s.pid, SIGKILL);
      killed = true;
    }
  }
};

// Reaps finished ranks without blocking; the first failure stops the rest.
void reap_ranks(std::vector<Rank>& ranks, int first_global, Shutdown& shutdown, double grace_seconds) {
  for (size_t i = 0; i < ranks.size(); ++i) {
    Rank& r = ranks[i];
    if (r.exited) continue;
    int status = 0;
    if (::waitpid(r.pid, &status, WNOHANG) != r.pid) continue;
    r.exited = true;
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    // 75: the rank saved and stopped on a stop signal (its peers do the same step); not a failure to spread.
    if (r.code != 0 && r.code != kExitPreempted && !shutdown.stopping) {
      std::fprintf(stderr, "semaim launch: rank %d exited with code %d; stopping the other ranks\n",
                   first_global + static_cast<int>(i), r.code);
      shutdown.begin(ranks, r.code, SIGTERM, grace_seconds);
    }
  }
}

bool finished(const std::vector<Rank>& ranks) {
  for (const Rank& r : ranks)
    if (r.fd >= 0 || !r.exited) return false;
  return true;
}

}  // namespace

std::vector<std::pair<std::string, std::string>> rank_environment(const LaunchOptions& o, int local_rank) {
  return {{"RANK", std::to_string(o.node_rank * o.nproc_per_node + local_rank)},
          {"WORLD_SIZE", std::to_string(o.nnodes * o.nproc_per_node)},
          {"LOCAL_RANK", std::to_string(local_rank)},
          {"LOCAL_WORLD_SIZE", std::to_string(o.nproc_per_node)},
          {"GROUP_RANK", std::to_string(o.node_rank)},
          {"MASTER_ADDR", o.master_addr},
          {"MASTER_PORT", std::to_string(o.master_port)},
          {"TORCHELASTIC_RESTART_COUNT", "0"}};
}

int launch(const LaunchOptions& o) {
  validate(o);
  Command cmd = resolve_command(o);
  std::vector<Rank> ranks;
  for (int i = 0; i < o.nproc_per_node; ++i) ranks.push_back(spawn_rank(o, cmd, i));
  const int first_global = o.node_rank * o.nproc_per_node;
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  for (int sig : {SIGINT, SIGTERM, SIGUSR1, SIGHUP}) ::sigaction(sig, &sa, nullptr);
  Shutdown shutdown;
  int forwarded = 0;  // stop signals passed on to the ranks
  while (!finished(ranks)) {
    forward_output(ranks, first_global);
    reap_ranks(ranks, first_global, shutdown, o.grace_seconds);
    if (g_signals > forwarded) {
      forwarded = g_signals;
      if (!shutdown.stopping)
        shutdown.begin(ranks, 128 + g_signal, g_signal, o.stop_grace_seconds);
      else
        Shutdown::forward(ranks, g_signal);  // a second signal: the ranks exit at once
    }
    shutdown.escalate(ranks);
  }
  if (std::all_of(ranks.begin(), ranks.end(), [](const Rank& r) { return r.code == kExitPreempted; }))
    return kExitPreempted;
  return shutdown.failed_code;
}

}  // namespace semaim::cli
