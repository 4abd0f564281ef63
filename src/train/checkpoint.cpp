// Atomic, pruned checkpoints: step-NNNNNNNN.{weights,state}.safetensors + step-NNNNNNNN.json (written last).
#include "semaim/train/checkpoint.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "semaim/config/errors.h"
#include "semaim/io/atomic_file.h"
#include "semaim/io/log.h"

namespace semaim::train {
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

CheckpointManager::CheckpointManager(std::string dir, int64_t keep_last)
    : dir_(std::move(dir)), keep_last_(keep_last) {
  std::error_code ec;
  fs::create_directories(dir_, ec);
  if (ec) throw RuntimeFailure("cannot create checkpoint directory " + dir_ + ": " + ec.message());
}

CheckpointPaths CheckpointManager::save(int64_t step, const io::NamedTensors& weights,
                                        const io::NamedTensors& state, const nlohmann::json& info,
                                        const std::map<std::string, std::string>& weights_metadata) {
  CheckpointPaths p = paths_for(dir_, step);
  io::save_safetensors(p.weights, weights, weights_metadata);
  io::save_safetensors(p.state, state, {{"info", info.dump()}});
  nlohmann::json manifest = info;
  manifest["step"] = step;
  manifest["weights"] = fs::path(p.weights).filename().string();
  manifest["state"] = fs::path(p.state).filename().string();
  io::atomic_write(p.manifest, manifest.dump(2) + "\n");
  // Prune: keep the newest keep_last complete checkpoints; delete manifests first so a crash mid-prune never
  // leaves a manifest pointing at a deleted file.
  auto all = complete();
  if (static_cast<int64_t>(all.size()) > keep_last_) {
    for (size_t i = 0; i + keep_last_ < all.size(); ++i) {
      std::error_code ec;
      fs::remove(all[i].manifest, ec);
      fs::remove(all[i].weights, ec);
      fs::remove(all[i].state, ec);
    }
  }
  return p;
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

CheckpointPaths CheckpointManager::resolve(const std::string& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    fs::path dir = fs::path(path);
    if (fs::is_directory(dir / "checkpoints")) dir /= "checkpoints";
    CheckpointManager m(dir.string(), 1 << 30);
    auto l = m.latest();
    if (!l) throw InputError(path, "no complete checkpoint in this directory");
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
    return j;
  } catch (const nlohmann::json::exception& e) {
    throw InputError(path, std::string("checkpoint manifest is not valid JSON: ") + e.what());
  }
}

}  // namespace semaim::train
