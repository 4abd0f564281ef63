// dist.* keys (data parallelism); docs/configs.md and docs/distributed.md document them.
#include "semaim/dist/config_keys.h"

namespace semaim::dist {

void register_config_keys(config::Schema& s) {
  using T = config::ValueType;
  s.add_section("dist");
  s.add(
      {"dist.backend",
       T::kString,
       "auto",
       "Data-parallel backend: `auto` (one process: `single`; launched by mpirun: `mpi`; several ranks under "
       "torchrun / srun: `nccl`), `single`, `mpi` (CPU ranks, OpenMPI), `nccl` (GPU ranks over c10d "
       "ProcessGroupNCCL; built when CUDA is). See docs/distributed.md.",
       {},
       {},
       {"auto", "single", "mpi", "nccl"}});
  s.add({"dist.timeout_seconds", T::kFloat, "600.0",
         "A collective that has not completed after this long (a rank stalled or died) stops the rank with a "
         "message naming it and the collective, and mpirun stops the job; 0 = wait forever.",
         0.0, 86400.0});
  s.add({"dist.bucket_cap_mb", T::kFloat, "25.0", "Gradient bucket size in MiB (DDP's bucket_cap_mb).", 0.001,
         4096.0});
  s.add({"dist.first_bucket_mb", T::kFloat, "1.0",
         "Size of the first gradient bucket in MiB, smaller so communication starts early.", 0.001, 4096.0});
}

}  // namespace semaim::dist
