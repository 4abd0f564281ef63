// `semaim sweep` end to end on a tiny 2x2 Fashion-MNIST sweep with k-NN: the dry-run plan, a sweep stopped by
// SIGTERM after its first point and resumed (the first point skipped, the interrupted one run again), the
// results files, the sbatch script, and the hparams summaries as TensorBoard's own hparams plugin reads them.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "python_suite.h"
#include "run_command.h"
#include "semaim/io/atomic_file.h"
#include "semaim_paths.h"
#include "temp_dir.h"

namespace {

namespace fs = std::filesystem;
using semaim::test::quoted;

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

size_t count(const std::string& s, const std::string& what) {
  size_t n = 0;
  for (size_t at = s.find(what); at != std::string::npos; at = s.find(what, at + 1)) ++n;
  return n;
}

const char* kSweep = R"(name: tiny
base: %SRC%/configs/pretrain/aim-fmnist-p4_1xb128-semantic_fmnist.yaml
set:
  data.limit: 320
  pretrain.epochs: 1
  pretrain.batch_size: 16
  checkpoint.every_steps: 1
  log.every_steps: 1
  data.num_workers: 0
  run.threads: 1
axes:
  ordering.strategy: [raster, semantic]
  run.seed: [0, 1]
evaluations: [knn]
knn:
  set:
    data.limit: 0
    knn.train_limit: 200
    knn.test_limit: 100
    knn.k: [5, 10]
)";

// The experiment and session groups as the tensorboard package's hparams plugin computes them for its tab.
const char* kReadHparams = R"(
import json, sys
from tensorboard import context
from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
from tensorboard.plugins import base_plugin
from tensorboard.plugins.hparams import api_pb2, backend_context, get_experiment, list_session_groups
d = sys.argv[1]
m = plugin_event_multiplexer.EventMultiplexer()
m.AddRunsFromDirectory(d)
m.Reload()
tb = base_plugin.TBContext(logdir=d, multiplexer=m, data_provider=data_provider.MultiplexerDataProvider(m, d))
bc = backend_context.Context(tb)
ctx = context.RequestContext()
exp = get_experiment.Handler(ctx, bc, "", api_pb2.GetExperimentRequest(experiment_name="")).run()
req = api_pb2.ListSessionGroupsRequest(experiment_name="", start_index=0, slice_size=100,
                                       allowed_statuses=[0, 1, 2, 3])
for h in exp.hparam_infos:
    req.col_params.add(hparam=h.name)
for mi in exp.metric_infos:
    req.col_params.add().metric.CopyFrom(mi.name)
res = list_session_groups.Handler(ctx, bc, "", req).run()
out = {"hparams": [h.name for h in exp.hparam_infos], "metrics": [mi.name.tag for mi in exp.metric_infos],
       "groups": {}}
for g in res.session_groups:
    hp = {k: (v.string_value if v.HasField("string_value") else v.number_value) for k, v in g.hparams.items()}
    out["groups"][g.sessions[0].name] = {"hparams": hp, "metrics": {mv.name.tag: mv.value for mv in g.metric_values}}
print(json.dumps(out))
)";

class SweepCli : public semaim::test::PythonSuite<SweepCli> {};

TEST_F(SweepCli, StopsAfterTheFirstPointResumesAndWritesResults) {
  semaim::test::TempDir dir;
  std::string body = kSweep;
  body.replace(body.find("%SRC%"), 5, SEMAIM_SOURCE_DIR);
  const std::string file = dir.file("tiny.yaml"), out = dir.file("sweep");
  semaim::io::atomic_write(file, body);
  const std::string bin = quoted(SEMAIM_BINARY), args = quoted(file) + " --out " + quoted(out);

  const auto plan = semaim::testing::run_command(bin + " sweep " + args + " --dry-run");
  ASSERT_EQ(plan.exit_code, 0) << plan.output;
  EXPECT_EQ(count(plan.output, "[new]"), 4u) << plan.output;
  EXPECT_NE(plan.output.find("p03_strategy-semantic_seed-1  [new] --set ordering.strategy=semantic --set run.seed=1"
                             "  evaluations: knn"),
            std::string::npos)
      << plan.output;

  // Stop the sweep once the first point is finished and the second has saved a checkpoint.
  const std::string p0 = out + "/p00_strategy-raster_seed-0", p1 = out + "/p01_strategy-raster_seed-1";
  semaim::io::atomic_write(dir.file("stop.sh"),
                           bin + " sweep " + args + " > " + quoted(dir.file("first.log")) + " 2>&1 &\npid=$!\n" +
                               "until [ -f " + quoted(p0 + "/knn.json") + " ] && ls " + quoted(p1) +
                               "/checkpoints/step-*.json; do sleep 0.05; kill -0 $pid || break; done\n" +
                               "kill -TERM $pid\nwait $pid\necho code=$?\n");
  const std::string stop = "sh " + quoted(dir.file("stop.sh"));
  const auto first = semaim::testing::run_command(stop);
  ASSERT_NE(first.output.find("code=75"), std::string::npos) << first.output << slurp(dir.file("first.log"));
  EXPECT_EQ(count(slurp(out + "/results.csv"), "\n"), 2u) << "the header and the first point";
  EXPECT_FALSE(fs::exists(p1 + "/knn.json"));

  const auto second = semaim::testing::run_command(bin + " sweep " + args);
  ASSERT_EQ(second.exit_code, 0) << second.output;
  EXPECT_NE(second.output.find("p00_strategy-raster_seed-0 is finished, skipped"), std::string::npos)
      << second.output;
  EXPECT_EQ(count(slurp(p0 + "/sweep.log"), "== 'semaim' 'pretrain'"), 1u);
  const std::string log1 = slurp(p1 + "/sweep.log");
  EXPECT_EQ(count(log1, "== 'semaim' 'pretrain'"), 2u) << "interrupted, then run again";
  EXPECT_NE(log1.find("resumed from"), std::string::npos) << log1;
  const std::string csv = slurp(out + "/results.csv");
  EXPECT_EQ(count(csv, "\n"), 5u) << csv;
  EXPECT_EQ(csv.rfind("point,ordering.strategy,run.seed,final_loss,knn_top1_k5,knn_top1_k10,wall_seconds\n", 0), 0u)
      << csv;
  const std::string md = slurp(out + "/results.md");
  EXPECT_NE(md.find("| raster | 2 |"), std::string::npos) << md;
  EXPECT_NE(md.find("| semantic | 2 |"), std::string::npos) << md;
  EXPECT_GT(fs::file_size(out + "/results_bars.png"), 1000u);
  EXPECT_GT(fs::file_size(out + "/results_loss.png"), 1000u);

  const auto again = semaim::testing::run_command(bin + " sweep " + args + " --dry-run");
  EXPECT_EQ(count(again.output, "[done]"), 4u) << again.output;
  const auto slurm = semaim::testing::run_command(bin + " sweep " + args + " --slurm");
  ASSERT_EQ(slurm.exit_code, 0) << slurm.output;
  const std::string sbatch = slurp(out + "/sweep.sbatch");
  EXPECT_NE(sbatch.find("#SBATCH --array=0-3"), std::string::npos) << sbatch;
  EXPECT_NE(sbatch.find("--point \"$SLURM_ARRAY_TASK_ID\""), std::string::npos) << sbatch;

  if (!have_python()) GTEST_SKIP() << skip_reason_;
  semaim::io::atomic_write(dir.file("read_hparams.py"), kReadHparams);
  const auto tb = semaim::testing::run_command(quoted(SEMAIM_PYTHON) + " " + quoted(dir.file("read_hparams.py")) +
                                               " " + quoted(out) + " 2>/dev/null");
  ASSERT_EQ(tb.exit_code, 0) << tb.output;
  const auto j = nlohmann::json::parse(tb.output);
  EXPECT_EQ(j["hparams"], (nlohmann::json{"ordering.strategy", "run.seed"}));
  EXPECT_EQ(j["metrics"], (nlohmann::json{"sweep/final_loss", "sweep/knn_top1_k5", "sweep/knn_top1_k10",
                                          "sweep/wall_seconds"}));
  ASSERT_EQ(j["groups"].size(), 4u) << tb.output;
  const auto& g = j["groups"]["p03_strategy-semantic_seed-1"];
  EXPECT_EQ(g["hparams"]["ordering.strategy"], "semantic");
  EXPECT_EQ(g["hparams"]["run.seed"], 1.0);
  const auto knn = nlohmann::json::parse(slurp(out + "/p03_strategy-semantic_seed-1/knn.json"));
  EXPECT_NEAR(g["metrics"]["sweep/knn_top1_k5"].get<double>(), knn["k"]["5"]["top1_percent"].get<double>(), 1e-3);
}

}  // namespace
