// `semaim launch`: starts the ranks of a data-parallel job on this node with torchrun's environment, prefixes
// every output line with its rank, stops every rank when one fails, and exits with the failing rank's code.
#pragma once
#include <string>
#include <vector>

namespace semaim::cli {

struct LaunchOptions {
  int nproc_per_node = 1;
  int nnodes = 1, node_rank = 0;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  // A semaim subcommand and its arguments (run by this binary), or any other program and its arguments.
  std::vector<std::string> command;
  double grace_seconds = 5;  // a rank failed: after SIGTERM, the survivors get this long before SIGKILL
  // SIGTERM, SIGINT, SIGUSR1 or SIGHUP to the launcher is forwarded to every rank, which finish their step,
  // save and exit 75; they get this long (the checkpoint write) before SIGKILL. A second signal is forwarded
  // too (the ranks then exit at once).
  double stop_grace_seconds = 600;
};

// Runs the job; returns 0 when every rank exits 0, 75 when a forwarded stop signal made every rank save and
// exit 75, else the first failing rank's exit code (128 + signal for a rank killed by a signal). Bad options
// throw InputError.
int launch(const LaunchOptions& opts);

// The environment of one rank: RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, GROUP_RANK, MASTER_ADDR,
// MASTER_PORT, TORCHELASTIC_RESTART_COUNT (as torchrun sets them, without the agent store).
std::vector<std::pair<std::string, std::string>> rank_environment(const LaunchOptions& opts, int local_rank);

}  // namespace semaim::cli
