// Where this process sits in a data-parallel job, read from the launcher's environment: torchrun (and
// `semaim launch`), SLURM, OpenMPI, in that order; a process no launcher started is rank 0 of 1.
#pragma once
#include <functional>
#include <optional>
#include <string>

namespace semaim::dist {

struct Rendezvous {
  std::string launcher = "none";  // torchrun | slurm | openmpi | none
  int rank = 0, world_size = 1;
  int local_rank = 0, local_world_size = 1;  // LOCAL_RANK picks the GPU
  std::string master_addr;                   // TCPStore host (torchrun, SLURM); empty for OpenMPI / none
  int master_port = 0;
  // torchrun with TORCHELASTIC_USE_AGENT_STORE=True: the agent hosts the store on MASTER_PORT and every rank,
  // rank 0 included, connects as a client under store_prefix = /worker/attempt_<TORCHELASTIC_RESTART_COUNT>.
  bool agent_store = false;
  std::string store_prefix;
};

// Looks a variable up; nullopt when unset. Tests pass a map, production the process environment.
using Getenv = std::function<std::optional<std::string>(const std::string&)>;
Getenv process_env();

// The first launcher whose variables are set wins: torchrun (RANK + WORLD_SIZE), SLURM (SLURM_PROCID +
// SLURM_NTASKS; MASTER_ADDR/MASTER_PORT override the first host of SLURM_JOB_NODELIST and port 29500),
// OpenMPI (OMPI_COMM_WORLD_RANK + OMPI_COMM_WORLD_SIZE). A malformed or inconsistent value (rank >= world
// size, a non-number, a missing companion variable) throws InputError naming the variable.
Rendezvous detect_rendezvous(const Getenv& env);

// The first host of a SLURM node list: "node[01-04,07],gpu3" -> "node01", "a,b" -> "a", "x" -> "x".
// Throws InputError("SLURM_JOB_NODELIST", ...) on an empty or unbalanced list.
std::string first_slurm_host(const std::string& nodelist);

}  // namespace semaim::dist
