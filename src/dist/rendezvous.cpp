// Launcher environments -> Rendezvous (torchrun, SLURM, OpenMPI), as LIBTORCH-NOTES "Distributed" lists them.
#include "semaim/dist/rendezvous.h"

#include <cstdlib>
#include <string>

#include "semaim/core/errors.h"

namespace semaim::dist {
namespace {

int parse_int(const Getenv& env, const std::string& name, int min_value) {
  const auto v = env(name);
  if (!v) throw InputError(name, "is not set");
  size_t used = 0;
  long value = 0;
  try {
    value = std::stol(*v, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != v->size() || value < min_value || value > (1L << 30)) {
    throw InputError(name, "must be an integer >= " + std::to_string(min_value) + ", got '" + *v + "'");
  }
  return static_cast<int>(value);
}

int parse_int_or(const Getenv& env, const std::string& name, int min_value, int fallback) {
  return env(name) ? parse_int(env, name, min_value) : fallback;
}

void check_rank(const Rendezvous& r, const std::string& rank_var, const std::string& size_var) {
  if (r.rank >= r.world_size) {
    throw InputError(rank_var, std::to_string(r.rank) + " is not below " + size_var + " = " +
                                   std::to_string(r.world_size));
  }
  if (r.local_rank >= r.local_world_size) {
    throw InputError(rank_var, "local rank " + std::to_string(r.local_rank) +
                                   " is not below the local world size " +
                                   std::to_string(r.local_world_size));
  }
}

}  // namespace

Getenv process_env() {
  return [](const std::string& name) -> std::optional<std::string> {
    const char* v = std::getenv(name.c_str());
    if (v == nullptr) return std::nullopt;
    return std::string(v);
  };
}

std::string first_slurm_host(const std::string& nodelist) {
  if (nodelist.empty()) throw InputError("SLURM_JOB_NODELIST", "is empty");
  // The first entry ends at the first comma outside brackets.
  int depth = 0;
  size_t end = nodelist.size();
  for (size_t i = 0; i < nodelist.size(); ++i) {
    const char c = nodelist[i];
    if (c == '[') ++depth;
    if (c == ']' && --depth < 0)
      throw InputError("SLURM_JOB_NODELIST", "unbalanced ']' in '" + nodelist + "'");
    if (c == ',' && depth == 0) {
      end = i;
      break;
    }
  }
  if (depth != 0) throw InputError("SLURM_JOB_NODELIST", "unbalanced '[' in '" + nodelist + "'");
  const std::string first = nodelist.substr(0, end);
  const size_t open = first.find('[');
  if (open == std::string::npos) {
    if (first.empty())
      throw InputError("SLURM_JOB_NODELIST", "starts with an empty host in '" + nodelist + "'");
    return first;
  }
  const size_t close = first.find(']', open);
  // The first value of the bracket's first item: "01-04" -> "01", "07" -> "07".
  std::string range = first.substr(open + 1, close - open - 1);
  range = range.substr(0, range.find(','));
  range = range.substr(0, range.find('-'));
  if (range.empty()) throw InputError("SLURM_JOB_NODELIST", "empty range in '" + nodelist + "'");
  return first.substr(0, open) + range + first.substr(close + 1);
}

Rendezvous detect_rendezvous(const Getenv& env) {
  Rendezvous r;
  if (env("RANK") || env("WORLD_SIZE")) {
    r.launcher = "torchrun";
    r.rank = parse_int(env, "RANK", 0);
    r.world_size = parse_int(env, "WORLD_SIZE", 1);
    r.local_rank = parse_int_or(env, "LOCAL_RANK", 0, 0);
    r.local_world_size = parse_int_or(env, "LOCAL_WORLD_SIZE", 1, r.world_size);
    if (r.world_size > 1 || env("MASTER_ADDR")) {
      const auto addr = env("MASTER_ADDR");
      if (!addr || addr->empty()) throw InputError("MASTER_ADDR", "is not set (torchrun sets it)");
      r.master_addr = *addr;
      r.master_port = parse_int(env, "MASTER_PORT", 1);
    }
    const auto agent = env("TORCHELASTIC_USE_AGENT_STORE");
    r.agent_store = agent && (*agent == "True" || *agent == "true" || *agent == "1");
    if (r.agent_store) {
      r.store_prefix =
          "/worker/attempt_" + std::to_string(parse_int_or(env, "TORCHELASTIC_RESTART_COUNT", 0, 0));
    }
    check_rank(r, "RANK", "WORLD_SIZE");
    return r;
  }
  if (env("SLURM_PROCID") && env("SLURM_NTASKS")) {
    r.launcher = "slurm";
    r.rank = parse_int(env, "SLURM_PROCID", 0);
    r.world_size = parse_int(env, "SLURM_NTASKS", 1);
    r.local_rank = parse_int_or(env, "SLURM_LOCALID", 0, 0);
    r.local_world_size = parse_int_or(env, "SLURM_NTASKS_PER_NODE", 1, r.world_size);
    const auto addr = env("MASTER_ADDR");
    if (addr && !addr->empty()) {
      r.master_addr = *addr;
    } else {
      const auto nodes = env("SLURM_JOB_NODELIST");
      if (!nodes) throw InputError("SLURM_JOB_NODELIST", "is not set and MASTER_ADDR is not given");
      r.master_addr = first_slurm_host(*nodes);
    }
    r.master_port = parse_int_or(env, "MASTER_PORT", 1, 29500);
    check_rank(r, "SLURM_PROCID", "SLURM_NTASKS");
    return r;
  }
  if (env("OMPI_COMM_WORLD_RANK") || env("OMPI_COMM_WORLD_SIZE")) {
    r.launcher = "openmpi";
    r.rank = parse_int(env, "OMPI_COMM_WORLD_RANK", 0);
    r.world_size = parse_int(env, "OMPI_COMM_WORLD_SIZE", 1);
    r.local_rank = parse_int_or(env, "OMPI_COMM_WORLD_LOCAL_RANK", 0, 0);
    r.local_world_size = parse_int_or(env, "OMPI_COMM_WORLD_LOCAL_SIZE", 1, r.world_size);
    check_rank(r, "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE");
    return r;
  }
  return r;
}

}  // namespace semaim::dist
