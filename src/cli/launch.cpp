// `semaim launch` (launch.h), torchrun's role without Python: fork + exec per local rank, pipes for the
// rank's stdout and stderr, a poll loop that prefixes lines, and fail-fast shutdown of the survivors.
#include "semaim/cli/launch.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

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

// SIGINT / SIGTERM to the launcher: the ranks run in their own process groups, so the terminal's Ctrl-C does
// not reach them; the poll loop forwards it.
volatile sig_atomic_t g_signal = 0;
void on_signal(int sig) { g_signal = sig; }

void emit(int rank, const std::string& line) {
  std::string out = "[rank " + std::to_string(rank) + "] " + line + "\n";
  std::fwrite(out.data(), 1, out.size(), stdout);
  std::fflush(stdout);
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
  if (o.nproc_per_node < 1 || o.nproc_per_node > 1024)
    throw InputError("--nproc-per-node", "must be in 1..1024");
  if (o.nnodes < 1 || o.node_rank < 0 || o.node_rank >= o.nnodes) {
    throw InputError("--node-rank", "must be in 0.." + std::to_string(o.nnodes - 1));
  }
  if (o.master_port < 1 || o.master_port > 65535) throw InputError("--master-port", "must be in 1..65535");
  if (o.command.empty()) throw InputError("launch", "nothing to run: give a subcommand after --");
  // A semaim subcommand runs this binary; anything else is a program found on PATH.
  std::vector<std::string> argv_s = o.command;
  std::string program = argv_s[0];
  if (is_subcommand(argv_s[0])) {
    program = "/proc/self/exe";
    argv_s.insert(argv_s.begin(), "semaim");
  }
  std::vector<Rank> ranks(static_cast<size_t>(o.nproc_per_node));
  for (int i = 0; i < o.nproc_per_node; ++i) {
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
      for (const auto& [k, v] : rank_environment(o, i)) ::setenv(k.c_str(), v.c_str(), 1);
      std::vector<char*> args;
      for (auto& a : argv_s) args.push_back(a.data());
      args.push_back(nullptr);
      if (program == "/proc/self/exe") {
        ::execv(program.c_str(), args.data());
      } else {
        ::execvp(program.c_str(), args.data());
      }
      std::fprintf(stderr, "semaim launch: cannot run '%s': %s\n", program.c_str(), std::strerror(errno));
      ::_exit(127);
    }
    ::close(fds[1]);
    ::setpgid(pid, pid);  // also here, so a kill right after fork cannot miss the group
    ranks[static_cast<size_t>(i)].pid = pid;
    ranks[static_cast<size_t>(i)].fd = fds[0];
  }
  const int first_global = o.node_rank * o.nproc_per_node;
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);
  int failed_code = 0;
  bool stopping = false;
  auto stop_since = std::chrono::steady_clock::now();
  bool killed = false;
  for (;;) {
    std::vector<pollfd> pfds;
    std::vector<size_t> who;
    for (size_t i = 0; i < ranks.size(); ++i) {
      if (ranks[i].fd >= 0) {
        pfds.push_back({ranks[i].fd, POLLIN, 0});
        who.push_back(i);
      }
    }
    bool all_exited = true;
    for (const Rank& r : ranks) all_exited = all_exited && r.exited;
    if (pfds.empty() && all_exited) break;
    if (!pfds.empty())
      ::poll(pfds.data(), pfds.size(), 100);
    else
      ::usleep(50 * 1000);
    for (size_t k = 0; k < pfds.size(); ++k) {
      if (!(pfds[k].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      Rank& r = ranks[who[k]];
      char buf[4096];
      const ssize_t n = ::read(r.fd, buf, sizeof(buf));
      if (n <= 0) {
        if (!r.pending.empty()) emit(first_global + static_cast<int>(who[k]), r.pending);
        r.pending.clear();
        ::close(r.fd);
        r.fd = -1;
        continue;
      }
      r.pending.append(buf, static_cast<size_t>(n));
      for (size_t nl; (nl = r.pending.find('\n')) != std::string::npos;) {
        emit(first_global + static_cast<int>(who[k]), r.pending.substr(0, nl));
        r.pending.erase(0, nl + 1);
      }
    }
    // Reap finished ranks; the first failure stops the rest.
    for (size_t i = 0; i < ranks.size(); ++i) {
      Rank& r = ranks[i];
      if (r.exited) continue;
      int status = 0;
      if (::waitpid(r.pid, &status, WNOHANG) != r.pid) continue;
      r.exited = true;
      r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      if (r.code != 0 && failed_code == 0 && !stopping) {
        failed_code = r.code;
        stopping = true;
        stop_since = std::chrono::steady_clock::now();
        std::fprintf(stderr, "semaim launch: rank %d exited with code %d; stopping the other ranks\n",
                     first_global + static_cast<int>(i), r.code);
        for (Rank& s : ranks) ::kill(-s.pid, SIGTERM);  // whole groups: a rank's children hold its pipe
      }
    }
    if (g_signal != 0 && !stopping) {
      stopping = true;
      failed_code = 128 + g_signal;
      stop_since = std::chrono::steady_clock::now();
      for (Rank& s : ranks) ::kill(-s.pid, SIGTERM);
    }
    if (stopping && !killed &&
        std::chrono::duration<double>(std::chrono::steady_clock::now() - stop_since).count() >
            o.grace_seconds) {
      for (Rank& s : ranks) ::kill(-s.pid, SIGKILL);
      killed = true;
    }
  }
  return failed_code;
}

}  // namespace semaim::cli
