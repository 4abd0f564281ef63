// Rendezvous from launcher environments (torchrun, SLURM, OpenMPI) on fake environments, and the backend
// choice.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/cuda.h>

#include <map>
#include <string>

#include "input_error.h"
#include "semaim/core/errors.h"
#include "semaim/dist/comm.h"
#include "semaim/dist/rendezvous.h"

namespace {

using namespace semaim::dist;
using semaim::test::expect_input_error;

Getenv fake(std::map<std::string, std::string> vars) {
  return [vars](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

TEST(Rendezvous, NoLauncherIsRankZeroOfOne) {
  const Rendezvous r = detect_rendezvous(fake({}));
  EXPECT_EQ(r.launcher, "none");
  EXPECT_EQ(r.rank, 0);
  EXPECT_EQ(r.world_size, 1);
}

TEST(Rendezvous, TorchrunVariablesWinAndAgentStoreUsesTheAttemptPrefix) {
  const Rendezvous r = detect_rendezvous(fake({{"RANK", "5"},
                                               {"WORLD_SIZE", "16"},
                                               {"LOCAL_RANK", "1"},
                                               {"LOCAL_WORLD_SIZE", "8"},
                                               {"MASTER_ADDR", "10.0.0.7"},
                                               {"MASTER_PORT", "29400"},
                                               {"TORCHELASTIC_USE_AGENT_STORE", "True"},
                                               {"TORCHELASTIC_RESTART_COUNT", "2"},
                                               {"SLURM_PROCID", "9"},
                                               {"SLURM_NTASKS", "32"},
                                               {"OMPI_COMM_WORLD_RANK", "3"}}));
  EXPECT_EQ(r.launcher, "torchrun");
  EXPECT_EQ(r.rank, 5);
  EXPECT_EQ(r.world_size, 16);
  EXPECT_EQ(r.local_rank, 1);
  EXPECT_EQ(r.local_world_size, 8);
  EXPECT_EQ(r.master_addr, "10.0.0.7");
  EXPECT_EQ(r.master_port, 29400);
  EXPECT_TRUE(r.agent_store);
  EXPECT_EQ(r.store_prefix, "/worker/attempt_2");
  const Rendezvous plain = detect_rendezvous(
      fake({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "h"}, {"MASTER_PORT", "1234"}}));
  EXPECT_FALSE(plain.agent_store);
  EXPECT_EQ(plain.store_prefix, "");
}

TEST(Rendezvous, SlurmTakesTheFirstHostOfTheNodeListUnlessMasterAddrIsSet) {
  const Rendezvous r = detect_rendezvous(fake({{"SLURM_PROCID", "3"},
                                               {"SLURM_NTASKS", "8"},
                                               {"SLURM_LOCALID", "3"},
                                               {"SLURM_NTASKS_PER_NODE", "4"},
                                               {"SLURM_JOB_NODELIST", "gpu[07-08,11],login1"}}));
  EXPECT_EQ(r.launcher, "slurm");
  EXPECT_EQ(r.rank, 3);
  EXPECT_EQ(r.world_size, 8);
  EXPECT_EQ(r.local_rank, 3);
  EXPECT_EQ(r.master_addr, "gpu07");
  EXPECT_EQ(r.master_port, 29500);
  const Rendezvous m = detect_rendezvous(fake({{"SLURM_PROCID", "0"},
                                               {"SLURM_NTASKS", "2"},
                                               {"SLURM_JOB_NODELIST", "a,b"},
                                               {"MASTER_ADDR", "head"},
                                               {"MASTER_PORT", "6000"}}));
  EXPECT_EQ(m.master_addr, "head");
  EXPECT_EQ(m.master_port, 6000);
}

TEST(Rendezvous, SlurmNodeListForms) {
  EXPECT_EQ(first_slurm_host("node01"), "node01");
  EXPECT_EQ(first_slurm_host("a,b,c"), "a");
  EXPECT_EQ(first_slurm_host("node[01-04,07],gpu3"), "node01");
  EXPECT_EQ(first_slurm_host("rack[3]-n[2-9]"), "rack3-n[2-9]");
  expect_input_error([] { first_slurm_host(""); }, "empty");
  expect_input_error([] { first_slurm_host("node[01-04"); }, "unbalanced");
  expect_input_error([] { first_slurm_host("node]1"); }, "unbalanced");
}

TEST(Rendezvous, OpenMpiVariables) {
  const Rendezvous r = detect_rendezvous(fake({{"OMPI_COMM_WORLD_RANK", "1"},
                                               {"OMPI_COMM_WORLD_SIZE", "2"},
                                               {"OMPI_COMM_WORLD_LOCAL_RANK", "1"},
                                               {"OMPI_COMM_WORLD_LOCAL_SIZE", "2"}}));
  EXPECT_EQ(r.launcher, "openmpi");
  EXPECT_EQ(r.rank, 1);
  EXPECT_EQ(r.world_size, 2);
  EXPECT_EQ(r.local_rank, 1);
}

TEST(Rendezvous, MalformedOrInconsistentValuesNameTheVariable) {
  expect_input_error([] { detect_rendezvous(fake({{"RANK", "x"}, {"WORLD_SIZE", "2"}})); }, "RANK");
  expect_input_error(
      [] {
        detect_rendezvous(
            fake({{"RANK", "2"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "h"}, {"MASTER_PORT", "1"}}));
      },
      "not below WORLD_SIZE");
  expect_input_error([] { detect_rendezvous(fake({{"RANK", "0"}, {"WORLD_SIZE", "2"}})); }, "MASTER_ADDR");
  expect_input_error(
      [] {
        detect_rendezvous(
            fake({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "h"}, {"MASTER_PORT", "80x"}}));
      },
      "MASTER_PORT");
  expect_input_error([] { detect_rendezvous(fake({{"WORLD_SIZE", "2"}})); }, "RANK");
  expect_input_error(
      [] {
        detect_rendezvous(fake({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "2"}}));
      },
      "SLURM_JOB_NODELIST");
  expect_input_error(
      [] {
        detect_rendezvous(fake({{"OMPI_COMM_WORLD_RANK", "4"}, {"OMPI_COMM_WORLD_SIZE", "2"}}));
      },
      "OMPI_COMM_WORLD_RANK");
}

TEST(Communicator, BackendChoiceFollowsTheLauncher) {
  Rendezvous one;
  EXPECT_EQ(make_communicator("auto", one)->backend(), "single");
  EXPECT_EQ(make_communicator("single", one)->backend(), "single");
  Rendezvous two;
  two.world_size = 2;
  two.launcher = "torchrun";
  expect_input_error([&] { make_communicator("single", two); }, "2 ranks");
  // A torchrun job of several ranks means GPUs over NCCL; without CUDA devices (or CUDA) that is a clear
  // error.
  expect_input_error([&] { make_communicator("auto", two); }, nccl_built() ? "no CUDA" : "no NCCL backend");
  expect_input_error([&] { make_communicator("nccl", two); }, nccl_built() ? "no CUDA" : "no NCCL backend");
  expect_input_error([&] { make_communicator("gloo", one); }, "unknown backend 'gloo'");
}

TEST(Communicator, SingleProcessCollectivesAreIdentities) {
  auto comm = make_single_communicator();
  at::Tensor t = at::arange(6, at::kFloat);
  const at::Tensor before = t.clone();
  comm->all_reduce(t, ReduceOp::kAvg);
  EXPECT_TRUE(at::equal(t, before));
  comm->broadcast(t, 0);
  EXPECT_TRUE(at::equal(t, before));
  EXPECT_TRUE(at::equal(comm->all_gather(t), before.unsqueeze(0)));
  expect_input_error([&] { comm->broadcast(t, 1); }, "root 1");
  comm->barrier();
}

TEST(Communicator, NcclBackendIsBuiltExactlyWhenCudaIs) {
#ifdef SEMAIM_WITH_CUDA
  EXPECT_TRUE(nccl_built());
#else
  EXPECT_FALSE(nccl_built());
#endif
}

// One rank over NCCL with a store hosted by this process: every collective round-trips on the GPU.
TEST(Communicator, NcclOneRankCollectivesOnTheGpu) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  if (!nccl_built()) GTEST_SKIP() << "built without NCCL";
  Rendezvous r;
  r.launcher = "torchrun";
  r.master_addr = "127.0.0.1";
  r.master_port = 29731;
  auto comm = make_nccl_communicator(r, 60);
  EXPECT_EQ(comm->backend(), "nccl");
  at::Tensor t = at::arange(8, at::TensorOptions().dtype(at::kFloat).device(at::kCUDA));
  comm->all_reduce(t, ReduceOp::kAvg);
  EXPECT_TRUE(at::equal(t.cpu(), at::arange(8, at::kFloat)));
  comm->broadcast(t, 0);
  EXPECT_TRUE(at::equal(comm->all_gather(t).cpu(), at::arange(8, at::kFloat).unsqueeze(0)));
  comm->barrier();
}

}  // namespace
