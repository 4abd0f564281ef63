// Config drift on resume: the resolved config stored in a checkpoint is the run's truth; a resume whose
// config changes what the run computes is refused unless run.allow_config_change is set.
#pragma once
#include <string>
#include <vector>

namespace semaim::engine {

struct ConfigChange {
  std::string key, before, after;  // values as YAML text; "(absent)" for a key one side does not have
  bool added_or_removed = false;   // a key of another semaim version: nothing to compare it with
};

// Every key whose value differs between two resolved configs (nested YAML as Config::to_yaml writes it), in
// key order. InputError naming `where` when either text is not YAML.
std::vector<ConfigChange> config_differences(const std::string& before_yaml, const std::string& after_yaml,
                                             const std::string& where);

// False for the keys a resume may change without changing what the run computes: threads, device, data
// workers and prefetch, where the data and the run live, logging, checkpoint frequency and retention,
// max_steps, accum_steps (ranks x accumulation is how the global batch is kept when ranks change), dist.*.
bool changes_run_meaning(const std::string& key);

// "a.b: x -> y, c.d: u -> v"
std::string describe(const std::vector<ConfigChange>& changes);

// Compares the checkpoint's stored config with the resumed run's: keys that change the run's meaning throw
// InputError naming `where` (the checkpoint) and every such key with both values, unless the current config
// sets run.allow_config_change: true, which logs them as a warning instead. Other differences are logged.
void check_config_drift(const std::string& stored_yaml, const std::string& current_yaml,
                        const std::string& where);

}  // namespace semaim::engine
