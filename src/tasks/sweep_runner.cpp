// `semaim sweep`'s runner (issue 19, item 1): each stage of a point (pretrain, then every evaluation) is a
// child process of this binary, its output appended to <point dir>/sweep.log; --jobs N points run side by
// side; stop signals reach the children, which save; --dry-run prints the plan and --slurm writes an array job.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <torch/cuda.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <deque>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "semaim/core/errors.h"
#include "semaim/core/log.h"
#include "semaim/core/timing.h"
#include "semaim/io/atomic_file.h"
#include "semaim/tasks/sweep.h"

namespace semaim::tasks {
namespace {

namespace fs = std::filesystem;

// Stop signals: the children run in their own process groups (a terminal's Ctrl-C reaches only the sweep),
// so the run loop forwards them; a second signal kills the children at once.
volatile sig_atomic_t g_signal = 0, g_signals = 0;
void on_signal(int sig) {
  g_signal = sig;
  g_signals = g_signals + 1;
}

std::vector<std::string> stage_names(const SweepPlan& plan) {
  std::vector<std::string> s{"pretrain"};
  for (const SweepEvaluation& e : plan.evaluations) s.push_back(e.name);
  return s;
}

bool sets_key(const SweepPlan& plan, const std::string& key) {
  for (const auto& [k, v] : plan.set)
    if (k == key) return true;
  for (const std::string& k : plan.axis_keys)
    if (k == key) return true;
  return false;
}

// The child's argv: `semaim STAGE CONFIG --set ...`, training stages resuming their own checkpoints, the
// frozen evaluations reading the point's newest pretraining checkpoint. threads 0: run.threads untouched.
std::vector<std::string> stage_args(const SweepPlan& plan, const SweepPoint& p, const std::string& stage,
                                    int64_t threads) {
  std::vector<std::string> a{"semaim", stage};
  std::vector<std::string> sets;
  if (stage == "pretrain") {
    a.push_back(plan.base);
    sets = plan.pretrain_sets(p);
  } else {
    for (const SweepEvaluation& e : plan.evaluations)
      if (e.name == stage) {
        a.push_back(e.config);
        sets = plan.evaluation_sets(p, e);
      }
  }
  if (threads > 0) sets.push_back("run.threads=" + std::to_string(threads));
  for (const std::string& s : sets) a.insert(a.end(), {"--set", s});
  if (stage == "pretrain" || stage == "finetune")
    a.insert(a.end(), {"--resume", "auto"});
  else
    a.insert(a.end(), {"--checkpoint", p.dir, "--out", stage_result_file(p, stage)});
  return a;
}

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

std::string command_line(const std::vector<std::string>& argv) {
  std::string s;
  for (const std::string& a : argv) s += (s.empty() ? "" : " ") + shell_quote(a);
  return s;
}

// Forks `exe argv` in its own process group, output appended to `log`, CUDA_VISIBLE_DEVICES = cuda if given.
pid_t spawn(const std::string& exe, const std::vector<std::string>& argv, const std::string& log,
            const std::string& cuda) {
  fs::create_directories(fs::path(log).parent_path());
  const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) throw RuntimeFailure("sweep: cannot open " + log + ": " + std::strerror(errno));
  const std::time_t now = std::time(nullptr);
  const std::string head = "== " + std::string(std::ctime(&now)) + "== " + command_line(argv) + "\n";
  if (::write(fd, head.data(), head.size()) < 0) core::log_warn("sweep: cannot write to " + log);
  std::vector<std::string> args = argv;
  std::vector<char*> cargs;
  for (std::string& s : args) cargs.push_back(s.data());
  cargs.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) throw RuntimeFailure(std::string("sweep: fork failed: ") + std::strerror(errno));
  if (pid == 0) {
    ::setpgid(0, 0);
    const int null_fd = ::open("/dev/null", O_RDONLY);
    if (null_fd >= 0) ::dup2(null_fd, STDIN_FILENO);
    ::dup2(fd, STDOUT_FILENO);
    ::dup2(fd, STDERR_FILENO);
    if (!cuda.empty()) ::setenv("CUDA_VISIBLE_DEVICES", cuda.c_str(), 1);
    ::execv(exe.c_str(), cargs.data());
    std::fprintf(stderr, "semaim sweep: cannot run '%s': %s\n", exe.c_str(), std::strerror(errno));
    ::_exit(127);
  }
  ::close(fd);
  ::setpgid(pid, pid);  // also here, so a signal right after fork cannot miss the group
  return pid;
}

// Adds a stage's wall seconds to <point dir>/sweep_times.json (summed over resumed attempts).
void add_stage_time(const SweepPoint& p, const std::string& stage, double seconds) {
  const std::string path = (fs::path(p.dir) / "sweep_times.json").string();
  nlohmann::json j = nlohmann::json::object();
  std::ifstream in(path);
  if (in) j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) j = nlohmann::json::object();
  j[stage] = j.value(stage, 0.0) + seconds;
  io::atomic_write(path, j.dump(2) + "\n");
}

// The first stage of `p` to run: everything from the first unfinished stage on runs again, so an evaluation
// never reads stale results of an earlier pretraining.
size_t first_unfinished(const SweepPoint& p, const std::vector<std::string>& stages) {
  for (size_t i = 0; i < stages.size(); ++i)
    if (!stage_finished(p, stages[i])) return i;
  return stages.size();
}

struct Slot {
  int point = -1;
  size_t stage = 0;
  pid_t pid = -1;
  core::Clock::time_point t0;
};

class Runner {
 public:
  Runner(const SweepPlan& plan, const SweepOptions& opts, std::vector<int> points)
      : plan_(plan), opts_(opts), stages_(stage_names(plan)), pending_(points.begin(), points.end()) {
    const int jobs = std::min<int>(opts.jobs, static_cast<int>(points.size()));
    slots_.resize(static_cast<size_t>(std::max(1, jobs)));
    if (opts.jobs > 1 && !sets_key(plan, "run.threads"))
      threads_ = split_threads(std::max(1u, std::thread::hardware_concurrency()), opts.jobs);
    if (opts.jobs > 1) devices_ = split_devices(cuda_devices(), static_cast<int>(slots_.size()));
  }

  // Runs every pending point; returns the names of the failed ones. Throws Preempted after a stop signal.
  std::vector<std::string> run() {
    struct sigaction sa {}, old_int{}, old_term{};
    sa.sa_handler = on_signal;
    ::sigaction(SIGINT, &sa, &old_int);
    ::sigaction(SIGTERM, &sa, &old_term);
    g_signals = 0;
    while (true) {
      if (!stopping_) fill_slots();
      reap();
      forward_signals();
      bool busy = false;
      for (const Slot& s : slots_) busy = busy || s.pid > 0;
      if (!busy && (stopping_ || pending_.empty())) break;
      ::usleep(100 * 1000);
    }
    ::sigaction(SIGINT, &old_int, nullptr);
    ::sigaction(SIGTERM, &old_term, nullptr);
    if (stopping_)
      throw Preempted(g_signal, "sweep stopped by a signal; its children saved: run the same command to resume");
    return failed_;
  }

 private:
  static std::vector<std::string> cuda_devices() {
    std::vector<std::string> out;
    if (const char* env = std::getenv("CUDA_VISIBLE_DEVICES")) {
      std::stringstream ss(env);
      for (std::string d; std::getline(ss, d, ',');)
        if (!d.empty()) out.push_back(d);
      return out;
    }
    for (int64_t i = 0; i < static_cast<int64_t>(torch::cuda::device_count()); ++i) out.push_back(std::to_string(i));
    return out;
  }

  void fill_slots() {
    for (size_t i = 0; i < slots_.size(); ++i) {
      Slot& s = slots_[i];
      while (s.pid < 0 && !pending_.empty()) {
        s.point = pending_.front();
        pending_.pop_front();
        const SweepPoint& p = plan_.points[static_cast<size_t>(s.point)];
        s.stage = first_unfinished(p, stages_);
        if (s.stage == stages_.size()) {
          core::log_info("sweep: " + p.name + " is finished, skipped");
          continue;
        }
        start(s, i);
      }
    }
  }

  void start(Slot& s, size_t slot_index) {
    const SweepPoint& p = plan_.points[static_cast<size_t>(s.point)];
    const std::string& stage = stages_[s.stage];
    core::log_info("sweep: " + p.name + ": " + stage + " (log " + (fs::path(p.dir) / "sweep.log").string() + ")");
    s.t0 = core::Clock::now();
    s.pid = spawn(opts_.exe, stage_args(plan_, p, stage, threads_), (fs::path(p.dir) / "sweep.log").string(),
                  devices_.empty() ? "" : devices_[slot_index]);
  }

  void reap() {
    for (size_t i = 0; i < slots_.size(); ++i) {
      Slot& s = slots_[i];
      int status = 0;
      if (s.pid < 0 || ::waitpid(s.pid, &status, WNOHANG) != s.pid) continue;
      s.pid = -1;
      const int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      const SweepPoint& p = plan_.points[static_cast<size_t>(s.point)];
      const std::string& stage = stages_[s.stage];
      add_stage_time(p, stage, core::seconds_since(s.t0));
      if (code != 0 || !stage_finished(p, stage)) {
        if (!stopping_) {
          failed_.push_back(p.name);
          core::log_error("sweep: " + p.name + ": " + stage + " exited with code " + std::to_string(code) +
                          "; see " + (fs::path(p.dir) / "sweep.log").string());
        }
        continue;
      }
      if (++s.stage < stages_.size() && !stopping_) {
        start(s, i);
        continue;
      }
      if (s.stage == stages_.size()) finished(p);
    }
  }

  void finished(const SweepPoint& p) {
    core::log_info("sweep: " + p.name + " finished");
    try {
      write_sweep_results(plan_);
    } catch (const std::exception& e) {
      core::log_error(std::string("sweep: cannot write the results: ") + e.what());
    }
  }

  void forward_signals() {
    if (g_signals <= forwarded_) return;
    const bool second = stopping_;
    forwarded_ = g_signals;
    stopping_ = true;
    core::log_info(second ? "sweep: second signal, killing the running stages"
                          : "sweep: stopping; the running stages save a checkpoint first");
    for (const Slot& s : slots_)
      if (s.pid > 0) ::kill(-s.pid, second ? SIGKILL : SIGTERM);
  }

  const SweepPlan& plan_;
  const SweepOptions& opts_;
  std::vector<std::string> stages_;
  std::deque<int> pending_;
  std::vector<Slot> slots_;
  std::vector<std::string> devices_, failed_;
  int64_t threads_ = 0;
  bool stopping_ = false;
  int forwarded_ = 0;
};

std::string point_status(const SweepPlan& plan, const SweepPoint& p) {
  const std::vector<std::string> stages = stage_names(plan);
  const size_t first = first_unfinished(p, stages);
  if (first == stages.size()) return "done";
  if (first > 0 || fs::exists(fs::path(p.dir) / "checkpoints")) return "resume";
  return "new";
}

void print_plan(const SweepPlan& plan) {
  std::cout << "sweep " << plan.name << ": " << plan.points.size() << " point(s) in " << plan.dir << ", base "
            << plan.base << "\n";
  std::string evals;
  for (const SweepEvaluation& e : plan.evaluations) evals += (evals.empty() ? "" : ", ") + e.name;
  for (const SweepPoint& p : plan.points) {
    std::string sets;
    for (const auto& [k, v] : p.axes) sets += " --set " + k + "=" + v;
    std::cout << p.index << "  " << p.dir << "  [" << point_status(plan, p) << "]" << sets
              << "  evaluations: " << (evals.empty() ? "none" : evals) << "\n";
  }
}

std::string absolute(const std::string& path) { return fs::absolute(path).lexically_normal().string(); }

void write_sbatch(const SweepPlan& plan, const SweepOptions& opts) {
  const std::string exe = opts.exe == "/proc/self/exe" ? fs::read_symlink("/proc/self/exe").string() : absolute(opts.exe);
  const std::string dir = absolute(plan.dir), path = (fs::path(dir) / "sweep.sbatch").string();
  std::ostringstream s;
  s << "#!/bin/bash\n"
    << "# semaim sweep " << plan.name << ": one array task per point (" << plan.points.size()
    << "), each running its stages; submit with: sbatch " << path << "\n"
    << "#SBATCH --job-name=" << plan.name << "\n"
    << "#SBATCH --array=0-" << plan.points.size() - 1 << "\n"
    << "#SBATCH --output=" << dir << "/slurm-%A_%a.out\n"
    << "set -eu\n"
    << "cd " << shell_quote(fs::current_path().string()) << "\n"
    << "exec " << shell_quote(exe) << " sweep " << shell_quote(absolute(plan.file)) << " --out "
    << shell_quote(dir) << " --point \"$SLURM_ARRAY_TASK_ID\"\n";
  fs::create_directories(dir);
  io::atomic_write(path, s.str());
  fs::permissions(path, fs::perms::owner_exec | fs::perms::group_exec, fs::perm_options::add);
  std::cout << "wrote " << path << " (" << plan.points.size() << " array tasks)\n";
}

}  // namespace

int sweep(const std::string& file, const SweepOptions& opts) {
  if (opts.jobs < 1) throw InputError("--jobs", "must be at least 1");
  const SweepPlan plan = load_sweep(file, opts.out);
  if (opts.point >= static_cast<int>(plan.points.size()))
    throw InputError("--point", "must be in 0.." + std::to_string(plan.points.size() - 1));
  if (opts.dry_run) {
    print_plan(plan);
    return 0;
  }
  if (opts.slurm) {
    write_sbatch(plan, opts);
    return 0;
  }
  fs::create_directories(plan.dir);
  std::vector<int> points;
  for (const SweepPoint& p : plan.points)
    if (opts.point < 0 || p.index == opts.point) points.push_back(p.index);
  const auto t0 = core::Clock::now();
  const std::vector<std::string> failed = Runner(plan, opts, points).run();
  write_sweep_results(plan);
  core::log_info("sweep " + plan.name + ": " + std::to_string(points.size() - failed.size()) + " of " +
                 std::to_string(points.size()) + " point(s) finished in " +
                 core::format_duration(core::seconds_since(t0)) + ", results in " + plan.dir);
  if (failed.empty()) return 0;
  std::string names;
  for (const std::string& n : failed) names += (names.empty() ? "" : ", ") + n;
  core::log_error("sweep: failed point(s): " + names);
  return 1;
}

}  // namespace semaim::tasks
