// `semaim sweep` (issue 19): a base config plus axes of `--set` overrides; each point pretrains and runs its
// evaluations (k-NN, linear probe, fine-tuning) in child processes, in its own run directory, and the sweep
// directory collects the results (docs/sweeps.md).
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace semaim::tasks {

// key -> value (YAML text, as `--set key=value` takes it), in the sweep file's order.
using Overrides = std::vector<std::pair<std::string, std::string>>;

struct SweepEvaluation {
  std::string name;    // knn | linprobe | finetune
  std::string config;  // the evaluation's config file (the base config unless the sweep file names one)
  Overrides set;       // its own overrides, applied after the sweep's and the point's
};

struct SweepPoint {
  int index = 0;
  std::string name;  // the run name: p03_strategy-snake_seed-1
  std::string dir;   // <sweep dir>/<name>
  Overrides axes;    // this point's value of every axis
};

struct SweepPlan {
  std::string file;            // the sweep file
  std::string name, dir;       // the sweep's name and directory (<output_dir>/<name>)
  std::string base;            // the base config, resolved against the sweep file's directory
  Overrides set;               // fixed overrides of every point
  std::vector<std::string> axis_keys;
  std::string mode = "product";  // product | zip
  std::vector<SweepEvaluation> evaluations;
  std::vector<SweepPoint> points;

  // `--set` arguments (key=value) of a point's pretraining: the sweep's, the axes', and run.name /
  // run.output_dir placing the run in the point's directory.
  std::vector<std::string> pretrain_sets(const SweepPoint& p) const;
  // The same for an evaluation: the pretraining's, then the evaluation's own; fine-tuning writes to
  // <point dir>/finetune from finetune.init = the point's directory.
  std::vector<std::string> evaluation_sets(const SweepPoint& p, const SweepEvaluation& e) const;
};

// The points of `axes` (each key with its values): product (the first key varies slowest) or zip (the i-th
// value of every key; all lists of one length). Throws InputError(file, ...) for empty axes or unequal zip.
std::vector<Overrides> expand_axes(const std::vector<std::pair<std::string, std::vector<std::string>>>& axes,
                                   const std::string& mode, const std::string& file);

// Parses the sweep file (out_dir, when given, replaces <output_dir>/<name>). With validate, loads every point's
// pretraining config and each evaluation's config through the schema as the subcommands would; a failure is
// InputError(file, "point 3 (ordering.strategy=foo, run.seed=1): ...").
SweepPlan load_sweep(const std::string& file, const std::string& out_dir = "", bool validate = true);

// Intra-op threads of each of `jobs` side-by-side points on `cores` cores: cores / jobs, at least 1.
int64_t split_threads(int64_t cores, int jobs);
// CUDA_VISIBLE_DEVICES of each of `jobs` slots: device i goes to slot i % jobs; with fewer devices than
// slots, slot j gets device j % devices. Empty strings when there are no devices.
std::vector<std::string> split_devices(const std::vector<std::string>& devices, int jobs);

struct SweepOptions {
  std::string out;       // sweep directory; "" = <output_dir>/<name> of the sweep file
  bool dry_run = false;  // print the plan, run nothing
  int jobs = 1;          // points side by side
  bool slurm = false;    // write <sweep dir>/sweep.sbatch instead of running
  int point = -1;        // run only this point (an array task of the sbatch script)
  std::string exe = "/proc/self/exe";  // the semaim binary the children run
};

// Runs (or plans) the sweep; returns the exit code: 0 when every point finished, 1 when one failed. A stop
// signal (SIGINT, SIGTERM) stops the children (they save) and throws Preempted.
int sweep(const std::string& file, const SweepOptions& opts);

// ---- results (sweep_results.cpp) ----

// The summary JSON a stage (pretrain, knn, linprobe, finetune) of point `p` writes, and whether it holds the
// stage's result (a complete file: a killed stage leaves none).
std::string stage_result_file(const SweepPoint& p, const std::string& stage);
bool stage_finished(const SweepPoint& p, const std::string& stage);

// What a point's directory holds once it ran (a missing file leaves its values out).
struct PointResult {
  std::string name;
  Overrides axes;
  bool pretrained = false;
  double final_loss = 0;
  std::map<std::string, double> metrics;  // column -> value (knn_top1_k20, linprobe_top1, finetune_top1)
  double wall_seconds = 0;
  std::vector<std::pair<int64_t, double>> loss_curve;  // (step, loss) from metrics.jsonl
};

PointResult read_point_result(const SweepPlan& plan, const SweepPoint& p);
// The metric columns in evaluation order (knn's per k ascending).
std::vector<std::string> metric_columns(const SweepPlan& plan, const std::vector<PointResult>& results);

// Mean and sample standard deviation (n - 1; 0 for one value).
struct MeanStd {
  double mean = 0, std = 0;
  int n = 0;
};
MeanStd mean_std(const std::vector<double>& v);

// One row per pretrained point: its axis values, final_loss, the metric columns, wall_seconds.
std::string results_csv(const SweepPlan& plan, const std::vector<PointResult>& results);
// Per setting (the axis values but run.seed): mean ± std over its points of every column, sorted by the
// first metric column's mean, descending.
std::string results_markdown(const SweepPlan& plan, const std::vector<PointResult>& results);
// results.csv, results.md, results_bars.png, results_loss.png and the hparams event files.
void write_sweep_results(const SweepPlan& plan);

// ---- plots (sweep_plots.cpp) ----

struct BarGroup {
  std::string label;
  std::vector<MeanStd> values;  // one per panel
};
// PNG bytes: one panel per metric (panel_titles), a bar per group with its std as an error bar.
std::string bar_chart_png(const std::vector<std::string>& panel_titles, const std::vector<BarGroup>& groups);
struct Curve {
  std::string label;  // legend entry (curves sharing a label share a colour and one entry)
  std::vector<std::pair<int64_t, double>> points;
};
// PNG bytes: every curve against the step, a legend of the distinct labels.
std::string loss_curves_png(const std::vector<Curve>& curves);

}  // namespace semaim::tasks
