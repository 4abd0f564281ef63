// Data-parallel benchmark, CPU ranks over MPI, one ATen thread per rank:
//   weak scaling -- images/s of 1 rank and of 2 ranks at the same per-rank batch, efficiency = rate(2) /
//                   (2 rate(1));
//   overlap      -- the time from the last gradient's hook to the end of the reducer's finish() (what delays
//                   the optimizer step), with buckets launched during backward and with every bucket deferred
//                   to finish().
// Run without mpirun it is the driver: it starts `mpirun -np 1` and `mpirun -np 2` of itself (--worker),
// alternating, R times, and prints medians and ratios. Under mpirun (--worker) it times S steps and rank 0
// prints one JSON line.
//
// usage: bench_dist [--repeats R] [--steps S] [--batch B] [--model NAME]
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "semaim/config/config.h"
#include "semaim/core/errors.h"
#include "semaim/core/timing.h"
#include "semaim/dist/comm.h"
#include "semaim/dist/reducer.h"
#include "semaim/dist/rendezvous.h"
#include "semaim/engine/optimizer.h"
#include "semaim/ordering/ordering.h"
#include "semaim/tasks/models.h"
#include "semaim/tasks/schema.h"

using namespace semaim;

namespace {

// One rank: S timed steps (after 2 warm-up steps) of the full pretraining step with the reducer.
int worker(int64_t steps, int64_t batch, const std::string& model, bool overlap) {
  auto cfg = config::Config::defaults(tasks::schema());
  cfg.apply_overrides(
      {"model.name=" + model, "pretrain.batch_size=" + std::to_string(batch), "run.threads=1"});
  at::set_num_threads(static_cast<int>(cfg.get_int("run.threads")));
  const auto rdv = dist::detect_rendezvous(dist::process_env());
  auto comm = dist::make_communicator("auto", rdv);
  const auto mcfg = tasks::aim_config(cfg);
  const auto ocfg = tasks::ordering_config(cfg);
  const auto tcfg = tasks::target_config(cfg);
  models::AimVit net = tasks::build_aim(cfg);
  net->train();
  std::vector<std::pair<std::string, at::Tensor>> params;
  for (auto& p : net->named_parameters())
    if (p.value().requires_grad()) params.emplace_back(p.key(), p.value());
  dist::ReducerConfig rcfg;
  rcfg.overlap = overlap;
  dist::Reducer reducer(params, *comm, rcfg);
  engine::GroupRule rule;
  engine::AdamW opt(engine::make_param_groups(params, rule), {0.9, 0.95, 1e-8});
  opt.set_lr(1e-4);
  const auto& v = mcfg.vit;
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(comm->rank());
  const at::Tensor imgs = at::randn({batch, v.in_chans, v.img_size, v.img_size}, gen);
  std::vector<double> tails;
  auto step = [&] {
    at::Tensor tokens;
    {
      at::NoGradGuard ng;
      tokens = net->encode(imgs);
    }
    const auto ord = ordering::make_order(ocfg, batch, v.grid_h(), v.grid_w(), tokens, gen, at::kCPU);
    reducer.prepare(true);
    net->forward_loss_ordered(imgs, ord.order, ord.inverse, tcfg).backward();
    reducer.finish();
    tails.push_back(reducer.last_tail_seconds() * 1e3);
    opt.step();
    reducer.zero_grad();
  };
  for (int i = 0; i < 2; ++i) step();
  tails.clear();
  comm->barrier();
  const auto t0 = core::Clock::now();
  for (int64_t s = 0; s < steps; ++s) step();
  comm->barrier();
  const double secs = core::seconds_since(t0);
  if (comm->rank() == 0) {
    nlohmann::json j{{"world", comm->world_size()},
                     {"images_per_sec", steps * batch * comm->world_size() / secs},
                     {"tail_ms", core::median(tails)},
                     {"grad_mb", 4.0 * static_cast<double>(reducer.buckets().empty() ? 0 : [&] {
                                   int64_t n = 0;
                                   for (const auto& b : reducer.buckets()) n += b.numel;
                                   return n;
                                 }()) / (1024.0 * 1024.0)}};
    std::cout << "RESULT " << j.dump() << std::endl;
  }
  return 0;
}

nlohmann::json run_worker(const std::string& self, int np, const std::string& args) {
  const std::string cmd = "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 mpirun -np " +
                          std::to_string(np) + " --oversubscribe --bind-to none " + self + " --worker " +
                          args + " 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) throw RuntimeFailure("bench_dist: cannot start mpirun");
  std::string out;
  std::array<char, 4096> buf{};
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  const int rc = ::pclose(p);
  const size_t at = out.find("RESULT ");
  if (rc != 0 || at == std::string::npos) throw RuntimeFailure("bench_dist: worker failed:\n" + out);
  return nlohmann::json::parse(out.substr(at + 7, out.find('\n', at) - at - 7));
}

}  // namespace

int main(int argc, char** argv) {
  try {
    int64_t repeats = 3, steps = 5, batch = 64;
    std::string model = "aim_fmnist_patch4";
    bool is_worker = false, overlap = true;
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      auto next = [&]() -> std::string {
        if (i + 1 >= argc) throw InputError(a, "needs a value");
        return argv[++i];
      };
      if (a == "--worker")
        is_worker = true;
      else if (a == "--no-overlap")
        overlap = false;
      else if (a == "--repeats")
        repeats = std::max<int64_t>(1, std::stoll(next()));
      else if (a == "--steps")
        steps = std::max<int64_t>(1, std::stoll(next()));
      else if (a == "--batch")
        batch = std::max<int64_t>(1, std::stoll(next()));
      else if (a == "--model")
        model = next();
      else if (a == "--help" || a == "-h") {
        std::cout << "usage: bench_dist [--repeats R] [--steps S] [--batch B] [--model NAME]\n";
        return 0;
      } else
        throw InputError(a, "unknown option");
    }
    if (is_worker) return worker(steps, batch, model, overlap);
    if (!dist::mpi_built()) throw RuntimeFailure("bench_dist: built without MPI");
    const std::string self = "/proc/" + std::to_string(::getpid()) + "/exe";
    const std::string args =
        "--steps " + std::to_string(steps) + " --batch " + std::to_string(batch) + " --model " + model;
    std::vector<double> r1, r2, tail_on, tail_off;
    double grad_mb = 0;
    for (int64_t r = 0; r < repeats; ++r) {
      r1.push_back(run_worker(self, 1, args)["images_per_sec"].get<double>());
      const auto on = run_worker(self, 2, args);
      r2.push_back(on["images_per_sec"].get<double>());
      tail_on.push_back(on["tail_ms"].get<double>());
      grad_mb = on["grad_mb"].get<double>();
      tail_off.push_back(run_worker(self, 2, args + " --no-overlap")["tail_ms"].get<double>());
    }
    const double a = core::median(r1), b = core::median(r2);
    std::printf(
        "model %s, per-rank batch %lld, 1 thread per rank, %lld steps x %lld repeats (medians), gradients "
        "%.2f MiB\n\n",
        model.c_str(), (long long)batch, (long long)steps, (long long)repeats, grad_mb);
    std::printf("| ranks | images/s | weak-scaling efficiency |\n|---|---|---|\n");
    std::printf("| 1 | %.1f | - |\n| 2 | %.1f | %.1f%% |\n\n", a, b, 100.0 * b / (2.0 * a));
    std::printf("| 2 ranks | last gradient ready -> optimizer step (ms) |\n|---|---|\n");
    std::printf(
        "| buckets launched during backward (overlap) | %.3f |\n| every bucket deferred to finish() | %.3f "
        "|\n",
        core::median(tail_on), core::median(tail_off));
    return 0;
  } catch (const InputError& e) {
    std::cerr << "bench_dist: error: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "bench_dist: failed: " << e.what() << "\n";
    return 1;
  }
}
