// TensorBoard's hparams plugin summaries (the tensorboard package's plugins/hparams/summary.py: experiment,
// session start, session end) and the whole event files `semaim sweep` writes with them.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace semaim::io {

// One hyperparameter value: a number when it parses as one, else its text.
struct HparamValue {
  std::string text;
  std::optional<double> number;
};

// A hyperparameter and the values the experiment gives it (all numbers: FLOAT64, else STRING).
struct HparamDomain {
  std::string name;
  std::vector<HparamValue> values;
};

using Hparams = std::vector<std::pair<std::string, HparamValue>>;

// Serialized Event protos whose one summary value carries HParamsPluginData (plugin "hparams", version 0)
// under the plugin's tags `_hparams_/experiment`, `_hparams_/session_start_info`, `_hparams_/session_end_info`.
// Built in semaim_io_tfevents, apart from torch's headers (as tensorboard.h's tfevents functions).
namespace tfevents {
std::string hparams_experiment_event(double wall_time, const std::string& name,
                                     const std::vector<HparamDomain>& hparams,
                                     const std::vector<std::string>& metric_tags);
std::string hparams_session_start_event(double wall_time, const Hparams& hparams, const std::string& group_name);
std::string hparams_session_end_event(double wall_time, bool success);
}  // namespace tfevents

// The experiment file of a TensorBoard logdir (its top directory): the hparams, their values and the metric
// tags (scalars of each session's run). Written whole and atomically to `path`, whose name must contain
// "tfevents" for TensorBoard to read it.
void write_hparams_experiment(const std::string& path, const std::string& name,
                              const std::vector<HparamDomain>& hparams, const std::vector<std::string>& metric_tags);

// One session (a run directory below the logdir): its hparams, one scalar per metric at `step`, its end.
struct HparamsSession {
  Hparams hparams;
  std::string group_name;  // sessions of one group are aggregated (the same setting over seeds)
  std::vector<std::pair<std::string, double>> metrics;
  int64_t step = 0;
  double start_time = 0, end_time = 0;  // seconds since the Unix epoch
  bool success = true;
};
void write_hparams_session(const std::string& path, const HparamsSession& session);

// "3", "0.5", "1e-3" -> a number; "raster", "[1, 2]", "" -> text only.
HparamValue hparam_value(const std::string& text);

}  // namespace semaim::io
