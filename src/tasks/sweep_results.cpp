// A sweep's results (issue 19, item 2): each point's summary JSONs and loss curve gathered into results.csv,
// a per-setting mean ± std table (results.md), two PNGs and TensorBoard's hparams summaries.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "semaim/io/atomic_file.h"
#include "semaim/io/tensorboard_hparams.h"
#include "semaim/tasks/sweep.h"

namespace semaim::tasks {
namespace {

namespace fs = std::filesystem;

constexpr const char* kSeedKey = "run.seed";

nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path);
  if (!in) return nullptr;
  return nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
}

std::string number(double v, const char* fmt = "%.6g") {
  char buf[64];
  std::snprintf(buf, sizeof(buf), fmt, v);
  return buf;
}

std::string csv_cell(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

// The axis values but the seed: what the seeds of one setting share.
Overrides setting_of(const PointResult& r) {
  Overrides s;
  for (const auto& kv : r.axes)
    if (kv.first != kSeedKey) s.push_back(kv);
  return s;
}

std::string setting_label(const Overrides& s) {
  if (s.empty()) return "all";
  std::string out;
  for (const auto& [k, v] : s) out += (out.empty() ? "" : " / ") + v;
  return out;
}

// Points of each setting, in the order settings first appear.
std::vector<std::pair<Overrides, std::vector<const PointResult*>>> by_setting(const std::vector<PointResult>& rs) {
  std::vector<std::pair<Overrides, std::vector<const PointResult*>>> groups;
  for (const PointResult& r : rs) {
    if (!r.pretrained) continue;
    const Overrides s = setting_of(r);
    auto it = std::find_if(groups.begin(), groups.end(), [&](const auto& g) { return g.first == s; });
    if (it == groups.end()) it = groups.insert(groups.end(), {s, {}});
    it->second.push_back(&r);
  }
  return groups;
}

// Mean ± std of one column over a setting's points that have it.
MeanStd column_stat(const std::vector<const PointResult*>& points, const std::string& column) {
  std::vector<double> v;
  for (const PointResult* p : points) {
    if (column == "final_loss") v.push_back(p->final_loss);
    else if (column == "wall_seconds") v.push_back(p->wall_seconds);
    else if (p->metrics.count(column)) v.push_back(p->metrics.at(column));
  }
  return mean_std(v);
}

// Settings sorted by the first metric column's mean, descending (settings without it last).
std::vector<std::pair<Overrides, std::vector<const PointResult*>>> sorted_settings(
    const std::vector<PointResult>& rs, const std::vector<std::string>& columns) {
  auto groups = by_setting(rs);
  if (columns.empty()) return groups;
  std::stable_sort(groups.begin(), groups.end(), [&](const auto& a, const auto& b) {
    const MeanStd x = column_stat(a.second, columns[0]), y = column_stat(b.second, columns[0]);
    if (x.n == 0 || y.n == 0) return x.n > y.n;
    return x.mean > y.mean;
  });
  return groups;
}

std::vector<PointResult> read_all(const SweepPlan& plan) {
  std::vector<PointResult> rs;
  for (const SweepPoint& p : plan.points) rs.push_back(read_point_result(plan, p));
  return rs;
}

// The hparams experiment (sweep dir) and one session per pretrained point (its run directory).
void write_hparams(const SweepPlan& plan, const std::vector<PointResult>& rs, const std::vector<std::string>& cols) {
  std::vector<io::HparamDomain> domains;
  for (const std::string& key : plan.axis_keys) {
    io::HparamDomain d{key, {}};
    std::set<std::string> seen;
    bool numbers = true;
    for (const SweepPoint& p : plan.points)
      for (const auto& [k, v] : p.axes)
        if (k == key && seen.insert(v).second) {
          d.values.push_back(io::hparam_value(v));
          numbers = numbers && d.values.back().number.has_value();
        }
    if (!numbers)  // one type per hparam: text when any value is not a number
      for (auto& v : d.values) v.number.reset();
    domains.push_back(std::move(d));
  }
  std::vector<std::string> tags{"sweep/final_loss"};
  for (const std::string& c : cols) tags.push_back("sweep/" + c);
  tags.push_back("sweep/wall_seconds");
  io::write_hparams_experiment((fs::path(plan.dir) / "events.out.tfevents.0.semaim-sweep").string(), plan.name,
                               domains, tags);
  for (size_t i = 0; i < rs.size(); ++i) {
    const PointResult& r = rs[i];
    if (!r.pretrained) continue;
    io::HparamsSession s;
    for (size_t a = 0; a < r.axes.size(); ++a) {
      io::HparamValue v = io::hparam_value(r.axes[a].second);
      if (!domains[a].values.empty() && !domains[a].values[0].number) v.number.reset();
      s.hparams.emplace_back(r.axes[a].first, v);
    }
    s.metrics.emplace_back("sweep/final_loss", r.final_loss);
    for (const std::string& c : cols)
      if (r.metrics.count(c)) s.metrics.emplace_back("sweep/" + c, r.metrics.at(c));
    s.metrics.emplace_back("sweep/wall_seconds", r.wall_seconds);
    s.step = r.loss_curve.empty() ? 0 : r.loss_curve.back().first;
    const auto mtime = fs::last_write_time(stage_result_file(plan.points[i], "pretrain"));
    s.end_time = static_cast<double>(std::chrono::duration_cast<std::chrono::seconds>(
                                         std::chrono::file_clock::to_sys(mtime).time_since_epoch())
                                         .count());
    s.start_time = s.end_time - r.wall_seconds;
    io::write_hparams_session((fs::path(plan.points[i].dir) / "events.out.tfevents.0.semaim-sweep").string(), s);
  }
}

}  // namespace

std::string stage_result_file(const SweepPoint& p, const std::string& stage) {
  const fs::path dir(p.dir);
  if (stage == "pretrain") return (dir / "pretrain_summary.json").string();
  if (stage == "finetune") return (dir / "finetune" / "finetune_summary.json").string();
  return (dir / (stage + ".json")).string();
}

bool stage_finished(const SweepPoint& p, const std::string& stage) {
  const nlohmann::json j = read_json(stage_result_file(p, stage));
  if (!j.is_object()) return false;
  if (stage == "pretrain") return j.contains("steps");
  if (stage == "knn") return j.contains("k") && j["k"].is_object() && !j["k"].empty();
  if (stage == "linprobe") return j.contains("top1_percent");
  return j.contains("top1");
}

PointResult read_point_result(const SweepPlan& plan, const SweepPoint& p) {
  PointResult r;
  r.name = p.name;
  r.axes = p.axes;
  r.pretrained = stage_finished(p, "pretrain");
  std::map<int64_t, double> curve;  // a resumed run logs some steps again: the later value wins
  std::ifstream in(fs::path(p.dir) / "metrics.jsonl");
  for (std::string line; std::getline(in, line);) {
    const auto j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_object() && j.contains("step") && j.contains("loss") && j["loss"].is_number())
      curve[j["step"].get<int64_t>()] = j["loss"].get<double>();
  }
  r.loss_curve.assign(curve.begin(), curve.end());
  if (r.pretrained) {
    const auto s = read_json(stage_result_file(p, "pretrain"));
    r.final_loss = curve.empty() ? s.value("last_loss", 0.0) : curve.rbegin()->second;
  }
  for (const SweepEvaluation& e : plan.evaluations) {
    if (!stage_finished(p, e.name)) continue;
    const auto j = read_json(stage_result_file(p, e.name));
    if (e.name == "knn")
      for (const auto& [k, v] : j["k"].items()) r.metrics["knn_top1_k" + k] = v.value("top1_percent", 0.0);
    if (e.name == "linprobe") r.metrics["linprobe_top1"] = j["top1_percent"].get<double>();
    if (e.name == "finetune") r.metrics["finetune_top1"] = j["top1"].get<double>();
  }
  const auto times = read_json((fs::path(p.dir) / "sweep_times.json").string());
  if (times.is_object())
    for (const auto& [k, v] : times.items())
      if (v.is_number()) r.wall_seconds += v.get<double>();
  return r;
}

std::vector<std::string> metric_columns(const SweepPlan& plan, const std::vector<PointResult>& results) {
  std::vector<std::string> cols;
  for (const SweepEvaluation& e : plan.evaluations) {
    if (e.name != "knn") {
      cols.push_back(e.name + "_top1");
      continue;
    }
    std::set<int64_t> ks;
    for (const PointResult& r : results)
      for (const auto& [c, v] : r.metrics)
        if (c.rfind("knn_top1_k", 0) == 0) ks.insert(std::stoll(c.substr(10)));
    for (int64_t k : ks) cols.push_back("knn_top1_k" + std::to_string(k));
  }
  return cols;
}

MeanStd mean_std(const std::vector<double>& v) {
  MeanStd m;
  m.n = static_cast<int>(v.size());
  if (v.empty()) return m;
  for (double x : v) m.mean += x;
  m.mean /= static_cast<double>(v.size());
  if (v.size() < 2) return m;
  double ss = 0;
  for (double x : v) ss += (x - m.mean) * (x - m.mean);
  m.std = std::sqrt(ss / static_cast<double>(v.size() - 1));
  return m;
}

std::string results_csv(const SweepPlan& plan, const std::vector<PointResult>& results) {
  const std::vector<std::string> cols = metric_columns(plan, results);
  std::string out = "point";
  for (const std::string& k : plan.axis_keys) out += "," + csv_cell(k);
  out += ",final_loss";
  for (const std::string& c : cols) out += "," + c;
  out += ",wall_seconds\n";
  for (const PointResult& r : results) {
    if (!r.pretrained) continue;
    out += csv_cell(r.name);
    for (const auto& [k, v] : r.axes) out += "," + csv_cell(v);
    out += "," + number(r.final_loss);
    for (const std::string& c : cols) out += "," + (r.metrics.count(c) ? number(r.metrics.at(c)) : "");
    out += "," + number(r.wall_seconds, "%.1f") + "\n";
  }
  return out;
}

std::string results_markdown(const SweepPlan& plan, const std::vector<PointResult>& results) {
  const std::vector<std::string> cols = metric_columns(plan, results);
  std::vector<std::string> keys;
  for (const std::string& k : plan.axis_keys)
    if (k != kSeedKey) keys.push_back(k);
  std::vector<std::string> stats{"final_loss"};
  stats.insert(stats.end(), cols.begin(), cols.end());
  stats.push_back("wall_seconds");
  std::string out = "# Sweep " + plan.name + "\n\nMean ± sample standard deviation over the points of each setting";
  out += cols.empty() ? ".\n\n" : ", sorted by " + cols[0] + " (descending).\n\n";
  std::string head = "|", rule = "|";
  for (const std::string& k : keys) head += " " + k + " |", rule += "---|";
  head += " points |", rule += "---:|";
  for (const std::string& s : stats) head += " " + s + " |", rule += "---:|";
  out += head + "\n" + rule + "\n";
  for (const auto& [setting, points] : sorted_settings(results, cols)) {
    std::string row = "|";
    for (const auto& [k, v] : setting) row += " " + v + " |";
    row += " " + std::to_string(points.size()) + " |";
    for (const std::string& s : stats) {
      const MeanStd m = column_stat(points, s);
      const char* fmt = s == "final_loss" ? "%.4f" : (s == "wall_seconds" ? "%.0f" : "%.2f");
      row += m.n == 0 ? " |" : " " + number(m.mean, fmt) + " ± " + number(m.std, fmt) + " |";
    }
    out += row + "\n";
  }
  return out;
}

void write_sweep_results(const SweepPlan& plan) {
  const std::vector<PointResult> rs = read_all(plan);
  const std::vector<std::string> cols = metric_columns(plan, rs);
  const fs::path dir(plan.dir);
  fs::create_directories(dir);
  io::atomic_write((dir / "results.csv").string(), results_csv(plan, rs));
  io::atomic_write((dir / "results.md").string(), results_markdown(plan, rs));
  // One bar panel per evaluation: its first column (knn: the smallest k).
  std::vector<std::string> panels;
  for (const SweepEvaluation& e : plan.evaluations)
    for (const std::string& c : cols)
      if (c.rfind(e.name + "_", 0) == 0) {
        panels.push_back(c);
        break;
      }
  std::vector<BarGroup> groups;
  std::vector<Curve> curves;
  for (const auto& [setting, points] : sorted_settings(rs, cols)) {
    BarGroup g{setting_label(setting), {}};
    for (const std::string& c : panels) g.values.push_back(column_stat(points, c));
    groups.push_back(std::move(g));
    for (const PointResult* p : points) curves.push_back({setting_label(setting), p->loss_curve});
  }
  if (!panels.empty() && !groups.empty())
    io::atomic_write((dir / "results_bars.png").string(), bar_chart_png(panels, groups));
  if (!curves.empty()) io::atomic_write((dir / "results_loss.png").string(), loss_curves_png(curves));
  write_hparams(plan, rs, cols);
}

}  // namespace semaim::tasks
