// Atomic, pruned checkpoints (step-NNNNNNNN.{weights,state}.safetensors + step-NNNNNNNN.json, written last)
// and the train state saved into and restored from them.
#include "semaim/engine/checkpointer.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "semaim/core/errors.h"
#include "semaim/core/log.h"
#include "semaim/engine/config_drift.h"
#include "semaim/io/atomic_file.h"
#include "semaim/models/weights.h"

namespace semaim::engine {
namespace {

namespace fs = std::filesystem;

std::string stem_for(int64_t step) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "step-%08lld", static_cast<long long>(step));
  return buf;
}

CheckpointPaths paths_for(const std::string& dir, int64_t step) {
  const std::string base = (fs::path(dir) / stem_for(step)).string();
  return {base + ".weights.safetensors", base + ".state.safetensors", base + ".json", step};
}

}  // namespace

CheckpointManager::CheckpointManager(std::string dir, int64_t keep_last, BestMetric best)
    : dir_(std::move(dir)), keep_last_(keep_last), best_(std::move(best)) {
  std::error_code ec;
  fs::create_directories(dir_, ec);
  if (ec) throw RuntimeFailure("cannot create checkpoint directory " + dir_ + ": " + ec.message());
}

CheckpointPaths CheckpointManager::save(int64_t step, const io::NamedTensors& weights,
                                        const io::NamedTensors& state, const nlohmann::json& info,
                                        const std::map<std::string, std::string>& weights_metadata) {
  CheckpointPaths p = paths_for(dir_, step);
  const bool existed = fs::exists(p.manifest);
  try {
    io::save_safetensors(p.weights, weights, weights_metadata);
    io::save_safetensors(p.state, state, {{"info", info.dump()}});
    nlohmann::json manifest = info;
    manifest["step"] = step;
    manifest["weights"] = fs::path(p.weights).filename().string();
    manifest["state"] = fs::path(p.state).filename().string();
    io::atomic_write(p.manifest, manifest.dump(2) + "\n");
  } catch (...) {
    // Without its manifest the step's files are garbage that would fill the disk again on a retry.
    if (!existed && !fs::exists(p.manifest)) {
      std::error_code ec;
      fs::remove(p.weights, ec);
      fs::remove(p.state, ec);
    }
    throw;
  }
  prune();
  return p;
}

void CheckpointManager::prune() {
  // Keep the newest keep_last complete checkpoints and the best; delete manifests first so a crash mid-prune
  // never leaves a manifest pointing at a deleted file.
  auto all = complete();
  const auto keep_best = best();
  if (static_cast<int64_t>(all.size()) <= keep_last_) return;
  for (size_t i = 0; i + keep_last_ < all.size(); ++i) {
    if (keep_best && keep_best->step == all[i].step) continue;
    std::error_code ec;
    fs::remove(all[i].manifest, ec);
    fs::remove(all[i].weights, ec);
    fs::remove(all[i].state, ec);
  }
}

std::vector<std::string> CheckpointManager::remove_incomplete() const {
  std::vector<std::string> removed;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir_, ec)) {
    const std::string name = e.path().filename().string();
    bool stale = io::is_atomic_temp_name(name, "step-");
    long long step = 0;
    char tail[32] = {0};
    if (!stale && std::sscanf(name.c_str(), "step-%lld.%31s", &step, tail) == 2 &&
        (std::string(tail) == "weights.safetensors" || std::string(tail) == "state.safetensors"))
      stale = !fs::exists(paths_for(dir_, step).manifest);
    std::error_code rm;
    if (stale && fs::remove(e.path(), rm)) removed.push_back(e.path().string());
  }
  for (const auto& r : removed) core::log_warn("removed " + r + ", left by an interrupted checkpoint save");
  return removed;
}

std::vector<CheckpointPaths> CheckpointManager::complete() const {
  std::vector<CheckpointPaths> out;
  std::error_code ec;
  if (!fs::is_directory(dir_, ec)) return out;
  for (const auto& e : fs::directory_iterator(dir_, ec)) {
    const std::string name = e.path().filename().string();
    long long step = 0;
    char tail[16] = {0};
    if (std::sscanf(name.c_str(), "step-%lld.%15s", &step, tail) != 2 || std::string(tail) != "json")
      continue;
    CheckpointPaths p = paths_for(dir_, step);
    if (fs::exists(p.weights) && fs::exists(p.state)) out.push_back(p);
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.step < b.step; });
  return out;
}

std::optional<CheckpointPaths> CheckpointManager::latest() const {
  auto all = complete();
  if (all.empty()) return std::nullopt;
  return all.back();
}

std::optional<CheckpointPaths> CheckpointManager::latest_intact() const {
  auto all = complete();
  for (auto it = all.rbegin(); it != all.rend(); ++it) {
    try {
      read_manifest(it->manifest);
      io::read_safetensors_shapes(it->weights);
      io::read_safetensors_shapes(it->state);
      return *it;
    } catch (const InputError& e) {
      core::log_warn("skipping the broken checkpoint " + it->manifest + " (" + e.what() +
                     "); trying the one before it");
    }
  }
  return std::nullopt;
}

std::optional<CheckpointPaths> CheckpointManager::best() const {
  if (best_.name.empty()) return std::nullopt;
  std::optional<CheckpointPaths> out;
  double best_value = 0;
  for (const auto& p : complete()) {
    const nlohmann::json m = read_manifest(p.manifest);
    if (!m.contains("metrics") || !m["metrics"].contains(best_.name) || !m["metrics"][best_.name].is_number())
      continue;
    const double v = m["metrics"][best_.name].get<double>();
    if (!out || (best_.higher_is_better ? v > best_value : v < best_value)) {
      out = p;
      best_value = v;
    }
  }
  return out;
}

CheckpointPaths CheckpointManager::resolve(const std::string& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    fs::path dir = fs::path(path);
    if (fs::is_directory(dir / "checkpoints")) dir /= "checkpoints";
    CheckpointManager m(dir.string(), 1 << 30);
    auto l = m.latest_intact();
    if (!l) throw InputError(path, "no complete, intact checkpoint in this directory");
    return *l;
  }
  if (!fs::exists(path, ec)) throw InputError(path, "no such checkpoint file or directory");
  std::string s = path;
  for (const char* suffix : {".weights.safetensors", ".state.safetensors", ".json"}) {
    const std::string suf(suffix);
    if (s.size() > suf.size() && s.compare(s.size() - suf.size(), suf.size(), suf) == 0) {
      const std::string base = s.substr(0, s.size() - suf.size());
      nlohmann::json m = read_manifest(base + ".json");
      CheckpointPaths p{base + ".weights.safetensors", base + ".state.safetensors", base + ".json",
                        m.value("step", int64_t{0})};
      if (!fs::exists(p.weights)) throw InputError(p.weights, "checkpoint weights file is missing");
      if (!fs::exists(p.state)) throw InputError(p.state, "checkpoint state file is missing");
      return p;
    }
  }
  throw InputError(
      path, "not a semaim checkpoint (expected step-N.json, step-N.weights.safetensors or a run directory)");
}

nlohmann::json read_manifest(const std::string& path) {
  std::ifstream f(path);
  if (!f) throw InputError(path, "checkpoint manifest is missing or unreadable");
  try {
    nlohmann::json j = nlohmann::json::parse(f);
    if (!j.is_object() || !j.contains("step")) throw InputError(path, "checkpoint manifest has no 'step'");
    if (!j["step"].is_number_integer() || j["step"].get<int64_t>() < 0)
      throw InputError(
          path, "checkpoint manifest's 'step' must be a non-negative integer, got " + j["step"].dump());
    return j;
  } catch (const nlohmann::json::exception& e) {
    throw InputError(path, std::string("checkpoint manifest is not valid JSON: ") + e.what());
  }
}

Checkpointer::Checkpointer(CheckpointManager manager, std::map<std::string, std::string> weights_metadata)
    : manager_(std::move(manager)), weights_metadata_(std::move(weights_metadata)) {}

std::optional<CheckpointPaths> Checkpointer::resume_from(const std::string& resume,
                                                         const std::string& run_dir) const {
  if (resume == "auto") {
    auto intact = manager_.latest_intact();
    if (!intact && manager_.latest())
      throw InputError(manager_.dir(), "no intact checkpoint to resume from (see the warnings above)");
    return intact;
  }
  if (!resume.empty()) return CheckpointManager::resolve(resume);
  if (manager_.latest())
    throw InputError(
        run_dir,
        "the run directory already holds checkpoints; pass --resume auto to continue it, or choose "
        "another run.name");
  return std::nullopt;
}

namespace {

// The state file's `info` metadata: a JSON object whose counters are integers.
nlohmann::json state_info(const io::SafetensorsFile& st, const std::string& where) {
  if (!st.metadata.count("info")) return nlohmann::json::object();
  nlohmann::json info;
  try {
    info = nlohmann::json::parse(st.metadata.at("info"));
  } catch (const nlohmann::json::exception& e) {
    throw InputError(where, std::string("metadata 'info' is not valid JSON: ") + e.what());
  }
  if (!info.is_object()) throw InputError(where, "metadata 'info' is not a JSON object");
  for (const char* k : {"step", "skipped_total", "steps_per_epoch"})
    if (info.contains(k) && !info[k].is_number_integer())
      throw InputError(
          where, std::string("metadata 'info' field '") + k + "' must be an integer, got " + info[k].dump());
  return info;
}

}  // namespace

void Checkpointer::restore(TrainState& state, const CheckpointPaths& from) const {
  auto w = io::load_safetensors(from.weights);
  if (w.metadata.count("config") && weights_metadata_.count("config"))
    check_config_drift(w.metadata.at("config"), weights_metadata_.at("config"), from.weights);
  models::load_weights(*state.model, w.tensors, {.where = from.weights});
  auto st = io::load_safetensors(from.state);
  const nlohmann::json info = state_info(st, from.state);
  state.load_state_tensors(st.tensors, from.state);
  state.step = info.value("step", int64_t{0});
  state.skipped_total = info.value("skipped_total", int64_t{0});
  if (info.value("steps_per_epoch", state.steps_per_epoch) != state.steps_per_epoch)
    core::log_warn(
        "resuming with a different number of steps per epoch (batch size or dataset changed): the data "
        "position "
        "is recomputed from the step count");
  core::log_info("resumed from " + from.manifest + " at step " + std::to_string(state.step));
}

CheckpointPaths Checkpointer::save(const TrainState& state, const std::string& reason, bool rank0,
                                   const nlohmann::json& metrics) {
  if (!rank0) return {};
  if (!cleaned_) {
    manager_.remove_incomplete();
    cleaned_ = true;
  }
  nlohmann::json info{{"step", state.step},
                      {"epoch", state.epoch()},
                      {"batch_in_epoch", state.batch_in_epoch()},
                      {"steps_per_epoch", state.steps_per_epoch},
                      {"skipped_total", state.skipped_total},
                      {"reason", reason}};
  if (weights_metadata_.count("model")) info["model"] = weights_metadata_.at("model");
  if (!metrics.empty()) info["metrics"] = metrics;
  return manager_.save(state.step, models::module_weights(*state.model), state.state_tensors(), info,
                       weights_metadata_);
}

}  // namespace semaim::engine
