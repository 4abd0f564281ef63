// Config drift on resume: flattened comparison of two resolved configs and the allow-list of keys that do not
// change what a run computes.
#include "semaim/engine/config_drift.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <map>

#include "semaim/core/errors.h"
#include "semaim/core/log.h"

namespace semaim::engine {
namespace {

constexpr const char* kAbsent = "(absent)";

// Leaf values by dotted key; lists as flow YAML ("[0.9, 0.95]").
void flatten(const YAML::Node& node, const std::string& prefix, std::map<std::string, std::string>& out) {
  if (node.IsMap()) {
    for (const auto& kv : node)
      flatten(kv.second,
              prefix.empty() ? kv.first.as<std::string>() : prefix + "." + kv.first.as<std::string>(), out);
    return;
  }
  YAML::Emitter e;
  e.SetSeqFormat(YAML::Flow);
  e << node;
  out[prefix] = e.c_str();
}

std::map<std::string, std::string> flat(const std::string& yaml, const std::string& where) {
  std::map<std::string, std::string> out;
  try {
    flatten(YAML::Load(yaml), "", out);
  } catch (const YAML::Exception& e) {
    throw InputError(where, std::string("stored config is not YAML: ") + e.what());
  }
  return out;
}

bool starts_with(const std::string& s, const char* prefix) { return s.rfind(prefix, 0) == 0; }
bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

std::vector<ConfigChange> config_differences(const std::string& before_yaml, const std::string& after_yaml,
                                             const std::string& where) {
  const auto before = flat(before_yaml, where), after = flat(after_yaml, where);
  std::vector<ConfigChange> out;
  for (const auto& [k, v] : before) {
    auto it = after.find(k);
    if (it == after.end())
      out.push_back({k, v, kAbsent, true});
    else if (it->second != v)
      out.push_back({k, v, it->second, false});
  }
  for (const auto& [k, v] : after)
    if (!before.count(k)) out.push_back({k, kAbsent, v, true});
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.key < b.key; });
  return out;
}

bool changes_run_meaning(const std::string& key) {
  static const char* kExact[] = {"run.name",
                                 "run.output_dir",
                                 "run.threads",
                                 "run.device",
                                 "run.allow_config_change",
                                 "data.num_workers",
                                 "data.prefetch",
                                 "data.pin_memory",
                                 "data.root",
                                 "data.train_dir",
                                 "data.val_dir",
                                 "data.train_list",
                                 "data.val_list",
                                 "checkpoint.keep_last",
                                 "checkpoint.every_steps",
                                 "checkpoint.every_epochs"};
  for (const char* k : kExact)
    if (key == k) return false;
  if (starts_with(key, "log.") || starts_with(key, "dist.")) return false;
  return !ends_with(key, ".max_steps") && !ends_with(key, ".accum_steps");
}

std::string describe(const std::vector<ConfigChange>& changes) {
  std::string out;
  for (const auto& c : changes) out += (out.empty() ? "" : ", ") + c.key + ": " + c.before + " -> " + c.after;
  return out;
}

void check_config_drift(const std::string& stored_yaml, const std::string& current_yaml,
                        const std::string& where) {
  std::vector<ConfigChange> meaning, other, versions;
  for (auto& c : config_differences(stored_yaml, current_yaml, where))
    (!changes_run_meaning(c.key) ? other : c.added_or_removed ? versions : meaning).push_back(std::move(c));
  if (!other.empty()) core::log_info("resuming with changed settings: " + describe(other));
  if (!versions.empty())
    core::log_warn("keys of another semaim version (absent on one side; the current values apply): " +
                   describe(versions));
  if (meaning.empty()) return;
  const auto current = flat(current_yaml, where);
  const auto allow = current.find("run.allow_config_change");
  if (allow == current.end() || allow->second != "true")
    throw InputError(
        where, "the config differs from the one this checkpoint was trained with in " + describe(meaning) +
                   "; resume with the checkpoint's values (its config is in the run's config.yaml), or "
                   "pass --set run.allow_config_change=true to continue with the new ones");
  core::log_warn("resuming with a changed config (run.allow_config_change): " + describe(meaning));
}

}  // namespace semaim::engine
