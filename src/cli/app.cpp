// CLI wiring (MAE's main_pretrain.py role): parse arguments, load the config, hand over to the engine or a
// job, and turn typed errors into one clear message and an exit code.
#include "semaim/cli/app.h"

#include <CLI/CLI.hpp>
#include <iostream>

#include "semaim/cli/launch.h"
#include "semaim/config/config.h"
#include "semaim/config/errors.h"
#include "semaim/io/log.h"
#include "semaim/train/jobs.h"
#include "semaim/train/pretrain.h"

namespace semaim::cli {
namespace {

constexpr int kExitOk = 0;
constexpr int kExitRuntime = 1;
constexpr int kExitInput = 2;

}  // namespace

int run(int argc, char** argv) {
  CLI::App app{"semaim: semantic-aware autoregressive image modeling (SemAIM) in C++/LibTorch"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "semaim 0.1.0");

  std::string config_path, resume, checkpoint, out;
  std::vector<std::string> sets;
  bool quiet = false, random_init = false, docs = false;

  auto* pre =
      app.add_subcommand("pretrain", "SemAIM pretraining of the configured model on the configured dataset");
  pre->add_option("config", config_path,
                  "YAML config (e.g. configs/pretrain/aim-fmnist-p4_1xb256-10e_fmnist.yaml)")
      ->required()
      ->check(CLI::ExistingFile);
  pre->add_option("--set", sets, "Override a key: --set train.epochs=5 (repeatable)");
  pre->add_option("--resume", resume,
                  "'auto' (newest checkpoint of the run, if any) or a checkpoint path/directory");
  pre->add_flag("--quiet", quiet, "No console output");

  auto* lp = app.add_subcommand("linprobe",
                                "Linear probe (frozen encoder, BatchNorm + Linear, SGD) on the test split");
  lp->add_option("config", config_path, "YAML config of the run")->required()->check(CLI::ExistingFile);
  lp->add_option("--set", sets, "Override a key (repeatable)");
  lp->add_option("--checkpoint", checkpoint, "Checkpoint file or run directory (default: the run's newest)");
  lp->add_flag("--random-init", random_init,
               "Probe the same architecture at random initialization (baseline)");
  lp->add_option("--out", out, "Result JSON (default: <run dir>/linprobe.json or linprobe_random.json)");
  lp->add_flag("--quiet", quiet, "No console output");

  auto* ex = app.add_subcommand("export", "Write a checkpoint's encoder (timm key names) as safetensors");
  ex->add_option("--checkpoint", checkpoint, "Checkpoint file or run directory")->required();
  ex->add_option("-o,--out", out, "Output .safetensors file")->required();

  LaunchOptions lo;
  auto* la = app.add_subcommand(
      "launch",
      "Start the ranks of a data-parallel job on this node (torchrun's environment): semaim launch "
      "--nproc-per-node N [--nnodes M --node-rank R --master-addr A --master-port P] -- SUBCOMMAND ...");
  la->add_option("--nproc-per-node", lo.nproc_per_node, "Ranks on this node (one per GPU)")->required();
  la->add_option("--nnodes", lo.nnodes, "Nodes in the job");
  la->add_option("--node-rank", lo.node_rank, "This node's index, 0..nnodes-1");
  la->add_option("--master-addr", lo.master_addr, "Host of rank 0's store");
  la->add_option("--master-port", lo.master_port, "Port of rank 0's store");
  la->add_option("command", lo.command,
                 "After --: a semaim subcommand with its arguments, or another program")
      ->required()
      ->expected(-1);

  auto* cf = app.add_subcommand("config", "Print the resolved config (or the key reference with --docs)");
  cf->add_option("config", config_path, "YAML config (default: the built-in defaults)")
      ->check(CLI::ExistingFile);
  cf->add_option("--set", sets, "Override a key (repeatable)");
  cf->add_flag("--docs", docs, "Print the Markdown reference of every key (docs/configs.md)");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? kExitOk : kExitInput;
  }

  try {
    auto load = [&] {
      return config_path.empty() ? [&] {
        auto c = config::Config::defaults();
        c.apply_overrides(sets);
        return c;
      }()
                                 : config::Config::load(config_path, sets);
    };
    if (*la) return launch(lo);
    if (*pre) {
      train::PretrainOptions o;
      o.resume = resume;
      o.quiet = quiet;
      train::pretrain(load(), o);
    } else if (*lp) {
      train::LinprobeJobOptions o;
      o.checkpoint = checkpoint;
      o.random_init = random_init;
      o.out_json = out;
      o.quiet = quiet;
      train::run_linprobe_job(load(), o);
    } else if (*ex) {
      train::export_encoder(checkpoint, out);
    } else if (*cf) {
      std::cout << (docs ? config::schema_markdown() : load().to_yaml());
    }
    return kExitOk;
  } catch (const InputError& e) {
    std::cerr << "semaim: error: " << e.what() << std::endl;
    return kExitInput;
  } catch (const RuntimeFailure& e) {
    std::cerr << "semaim: failed: " << e.what() << std::endl;
    return kExitRuntime;
  } catch (const c10::Error& e) {
    std::cerr << "semaim: failed: " << e.what_without_backtrace() << std::endl;
    return kExitRuntime;
  } catch (const std::exception& e) {
    std::cerr << "semaim: failed: " << e.what() << std::endl;
    return kExitRuntime;
  }
}

}  // namespace semaim::cli
