// The sweep file (docs/sweeps.md): parsing, axis expansion and the validation of every point's configs
// before anything runs (issue 19, item 1).
#include "semaim/tasks/sweep.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <set>

#include "semaim/config/config.h"
#include "semaim/core/errors.h"
#include "semaim/tasks/schema.h"

namespace semaim::tasks {
namespace {

namespace fs = std::filesystem;

const std::set<std::string> kEvaluations = {"knn", "linprobe", "finetune"};
const std::set<std::string> kTopKeys = {"name", "output_dir", "base", "set",     "axes",
                                        "mode", "evaluations", "knn", "linprobe", "finetune"};

// A value as `--set key=value` takes it: a scalar's text, a list in flow YAML.
std::string value_text(const YAML::Node& n, const std::string& file, const std::string& key) {
  if (n.IsScalar()) return n.Scalar();
  if (n.IsSequence()) {
    YAML::Emitter e;
    e.SetSeqFormat(YAML::Flow);
    e << n;
    return e.c_str();
  }
  throw InputError(file, key + ": expected a value or a list, not a map");
}

Overrides read_set(const YAML::Node& n, const std::string& file, const std::string& where) {
  Overrides out;
  if (!n) return out;
  if (!n.IsMap()) throw InputError(file, where + ": expected a map of key: value");
  for (const auto& kv : n) {
    const std::string key = kv.first.as<std::string>();
    out.emplace_back(key, value_text(kv.second, file, where + "." + key));
  }
  return out;
}

std::string read_string(const YAML::Node& root, const char* key, const std::string& file) {
  const YAML::Node n = root[key];
  if (!n) return "";
  if (!n.IsScalar()) throw InputError(file, std::string(key) + ": expected a string");
  return n.Scalar();
}

std::string resolve(const std::string& file, const std::string& path) {
  if (path.empty() || fs::path(path).is_absolute()) return path;
  return (fs::path(file).parent_path() / path).lexically_normal().string();
}

// Axis values: a non-empty list per key, no key also in `set:`.
std::vector<std::pair<std::string, std::vector<std::string>>> read_axes(const YAML::Node& n, const Overrides& set,
                                                                        const std::string& file) {
  std::vector<std::pair<std::string, std::vector<std::string>>> axes;
  if (!n) return axes;
  if (!n.IsMap()) throw InputError(file, "axes: expected a map of key: [values]");
  for (const auto& kv : n) {
    const std::string key = kv.first.as<std::string>();
    if (!kv.second.IsSequence()) throw InputError(file, "axes." + key + ": expected a list of values");
    for (const auto& [k, v] : set)
      if (k == key) throw InputError(file, "axes." + key + ": the key is also in set:");
    std::vector<std::string> values;
    for (const auto& v : kv.second) values.push_back(value_text(v, file, "axes." + key));
    axes.emplace_back(key, std::move(values));
  }
  return axes;
}

std::vector<SweepEvaluation> read_evaluations(const YAML::Node& root, const std::string& base,
                                              const std::string& file) {
  std::vector<SweepEvaluation> out;
  const YAML::Node n = root["evaluations"];
  if (n && !(n.IsSequence() || (n.IsScalar() && n.Scalar() == "none") || n.IsNull()))
    throw InputError(file, "evaluations: expected a list of knn, linprobe, finetune (or none)");
  if (n && n.IsSequence()) {
    for (const auto& e : n) {
      const std::string name = e.IsScalar() ? e.Scalar() : "";
      if (!kEvaluations.count(name))
        throw InputError(file, "evaluations: unknown evaluation '" + name + "' (knn, linprobe, finetune)");
      for (const auto& seen : out)
        if (seen.name == name) throw InputError(file, "evaluations: '" + name + "' is listed twice");
      out.push_back({name, base, {}});
    }
  }
  for (const std::string& name : kEvaluations) {
    const YAML::Node s = root[name];
    if (!s) continue;
    auto it = std::find_if(out.begin(), out.end(), [&](const SweepEvaluation& e) { return e.name == name; });
    if (it == out.end()) throw InputError(file, name + ": settings of an evaluation not in evaluations:");
    if (!s.IsMap()) throw InputError(file, name + ": expected a map with config: and set:");
    for (const auto& kv : s) {
      const std::string k = kv.first.as<std::string>();
      if (k != "config" && k != "set") throw InputError(file, name + ": unknown key '" + k + "' (config, set)");
    }
    const std::string cfg = read_string(s, "config", file);
    if (!cfg.empty()) it->config = resolve(file, cfg);
    it->set = read_set(s["set"], file, name + ".set");
  }
  return out;
}

// The directory-name form of a value: letters, digits and ._+- kept, anything else '-', at most 40 characters.
std::string slug(const std::string& s) {
  std::string out;
  for (char c : s) out += (std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '+' ||
                           c == '-') ? c : '-';
  return out.substr(0, 40);
}

std::string point_name(int index, size_t count, const Overrides& axes) {
  char num[16];
  std::snprintf(num, sizeof(num), "p%0*d", count > 100 ? 3 : 2, index);
  std::string name = num;
  for (const auto& [k, v] : axes) {
    const auto dot = k.rfind('.');
    name += "_" + (dot == std::string::npos ? k : k.substr(dot + 1)) + "-" + slug(v);
  }
  return name;
}

std::string describe(const SweepPoint& p) {
  std::string s = "point " + std::to_string(p.index) + " (";
  for (size_t i = 0; i < p.axes.size(); ++i) s += (i ? ", " : "") + p.axes[i].first + "=" + p.axes[i].second;
  return s + ")";
}

// Loads the configs of `p` as `semaim pretrain` and each evaluation's subcommand would.
void validate_point(const SweepPlan& plan, const SweepPoint& p) {
  try {
    config::Config::load(schema(), plan.base, plan.pretrain_sets(p));
  } catch (const InputError& e) {
    throw InputError(plan.file, describe(p) + ": " + e.what());
  }
  for (const SweepEvaluation& ev : plan.evaluations) {
    try {
      config::Config::load(schema(), ev.config, plan.evaluation_sets(p, ev));
    } catch (const InputError& e) {
      throw InputError(plan.file, describe(p) + ": " + ev.name + ": " + e.what());
    }
  }
}

YAML::Node load_yaml(const std::string& file) {
  if (!fs::is_regular_file(file)) throw InputError(file, "no such sweep file");
  try {
    return YAML::LoadFile(file);
  } catch (const YAML::Exception& e) {
    throw InputError(file, std::string("not valid YAML: ") + e.what());
  }
}

}  // namespace

std::vector<std::string> SweepPlan::pretrain_sets(const SweepPoint& p) const {
  std::vector<std::string> out;
  for (const auto& [k, v] : set) out.push_back(k + "=" + v);
  for (const auto& [k, v] : p.axes) out.push_back(k + "=" + v);
  out.push_back("run.name=" + p.name);
  out.push_back("run.output_dir=" + dir);
  return out;
}

std::vector<std::string> SweepPlan::evaluation_sets(const SweepPoint& p, const SweepEvaluation& e) const {
  std::vector<std::string> out = pretrain_sets(p);
  for (const auto& [k, v] : e.set) out.push_back(k + "=" + v);
  if (e.name == "finetune") {
    out.push_back("finetune.init=" + p.dir);
    out.push_back("run.name=finetune");
    out.push_back("run.output_dir=" + p.dir);
  }
  return out;
}

std::vector<Overrides> expand_axes(const std::vector<std::pair<std::string, std::vector<std::string>>>& axes,
                                   const std::string& mode, const std::string& file) {
  for (const auto& [k, values] : axes)
    if (values.empty()) throw InputError(file, "axes." + k + ": no values");
  std::vector<Overrides> points;
  if (axes.empty()) return {Overrides{}};
  if (mode == "zip") {
    for (const auto& [k, values] : axes)
      if (values.size() != axes[0].second.size())
        throw InputError(file, "mode zip needs axes of one length: " + axes[0].first + " has " +
                                   std::to_string(axes[0].second.size()) + " values, " + k + " has " +
                                   std::to_string(values.size()));
    for (size_t i = 0; i < axes[0].second.size(); ++i) {
      Overrides p;
      for (const auto& [k, values] : axes) p.emplace_back(k, values[i]);
      points.push_back(std::move(p));
    }
    return points;
  }
  if (mode != "product") throw InputError(file, "mode: '" + mode + "' is not product or zip");
  points.push_back({});
  for (const auto& [k, values] : axes) {  // the first axis ends up varying slowest
    std::vector<Overrides> next;
    for (const Overrides& p : points)
      for (const std::string& v : values) {
        Overrides q = p;
        q.emplace_back(k, v);
        next.push_back(std::move(q));
      }
    points = std::move(next);
  }
  return points;
}

SweepPlan load_sweep(const std::string& file, const std::string& out_dir, bool validate) {
  const YAML::Node root = load_yaml(file);
  if (!root.IsMap()) throw InputError(file, "expected a map (base:, axes:, evaluations:, ...)");
  for (const auto& kv : root) {
    const std::string k = kv.first.as<std::string>();
    if (!kTopKeys.count(k))
      throw InputError(file, "unknown key '" + k + "' (name, output_dir, base, set, axes, mode, evaluations, "
                             "knn, linprobe, finetune)");
  }
  SweepPlan plan;
  plan.file = file;
  plan.name = read_string(root, "name", file);
  if (plan.name.empty()) plan.name = fs::path(file).stem().string();
  std::string output_dir = read_string(root, "output_dir", file);
  if (output_dir.empty()) output_dir = "runs";
  plan.dir = out_dir.empty() ? (fs::path(output_dir) / plan.name).string() : out_dir;
  plan.base = resolve(file, read_string(root, "base", file));
  if (plan.base.empty()) throw InputError(file, "base: missing (the pretraining config of every point)");
  plan.set = read_set(root["set"], file, "set");
  const auto axes = read_axes(root["axes"], plan.set, file);
  for (const auto& [k, v] : axes) plan.axis_keys.push_back(k);
  plan.mode = read_string(root, "mode", file);
  if (plan.mode.empty()) plan.mode = "product";
  plan.evaluations = read_evaluations(root, plan.base, file);
  const std::vector<Overrides> points = expand_axes(axes, plan.mode, file);
  for (size_t i = 0; i < points.size(); ++i) {
    SweepPoint p;
    p.index = static_cast<int>(i);
    p.axes = points[i];
    p.name = point_name(p.index, points.size(), p.axes);
    p.dir = (fs::path(plan.dir) / p.name).string();
    plan.points.push_back(std::move(p));
  }
  if (validate)
    for (const SweepPoint& p : plan.points) validate_point(plan, p);
  return plan;
}

int64_t split_threads(int64_t cores, int jobs) { return std::max<int64_t>(1, cores / std::max(1, jobs)); }

std::vector<std::string> split_devices(const std::vector<std::string>& devices, int jobs) {
  std::vector<std::string> slots(static_cast<size_t>(std::max(1, jobs)));
  if (devices.empty()) return slots;
  if (devices.size() < slots.size()) {
    for (size_t j = 0; j < slots.size(); ++j) slots[j] = devices[j % devices.size()];
    return slots;
  }
  for (size_t i = 0; i < devices.size(); ++i) {
    std::string& s = slots[i % slots.size()];
    s += (s.empty() ? "" : ",") + devices[i];
  }
  return slots;
}

}  // namespace semaim::tasks
