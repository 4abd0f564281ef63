// Layered YAML configuration: schema defaults ⊕ `_base_` chain ⊕ experiment file ⊕ `--set a.b=c`
// (dinov2-style), strictly validated against the schema in schema.cpp; the resolved result is what a run
// records.
#pragma once
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace semaim::config {

enum class ValueType { kInt, kFloat, kBool, kString, kIntList, kFloatList, kStringList };

using Value = std::variant<int64_t, double, bool, std::string, std::vector<int64_t>, std::vector<double>,
                           std::vector<std::string>>;

// One key of the schema: its type, default (as YAML text), range or choices, and meaning (docs/configs.md).
struct KeySpec {
  std::string key;
  ValueType type;
  std::string default_yaml;
  std::string doc;
  std::optional<double> min{};
  std::optional<double> max{};
  std::vector<std::string> choices{};
};

// Every valid key, in documentation order.
const std::vector<KeySpec>& schema();
const KeySpec* find_spec(const std::string& key);

// Levenshtein distance (insertions, deletions, substitutions).
size_t edit_distance(const std::string& a, const std::string& b);

// The closest candidate by edit distance (for "did you mean" messages); empty if none is reasonably close.
std::string closest_match(const std::string& word, const std::vector<std::string>& candidates);

class Config {
 public:
  // Schema defaults only.
  static Config defaults();
  // Loads `path` (following `_base_`, relative to each file), applies `overrides` ("a.b=value", value parsed
  // as YAML), validates every key and value. Throws InputError naming the file (or "--set") and the fault.
  static Config load(const std::string& path, const std::vector<std::string>& overrides = {});
  // Applies overrides to an existing config (same validation).
  void apply_overrides(const std::vector<std::string>& overrides);

  int64_t get_int(const std::string& key) const;
  double get_float(const std::string& key) const;
  bool get_bool(const std::string& key) const;
  const std::string& get_string(const std::string& key) const;
  const std::vector<int64_t>& get_ints(const std::string& key) const;
  std::vector<double> get_floats(const std::string& key) const;
  const std::vector<std::string>& get_strings(const std::string& key) const;

  // Where a key's value came from: a file path, "--set" or "default".
  const std::string& origin(const std::string& key) const;
  // The file this config was loaded from ("" for defaults()).
  const std::string& path() const { return path_; }

  // The resolved config as nested YAML (every key, with its value); the engine writes it into the run
  // directory.
  std::string to_yaml() const;

  // Validated assignment from YAML text; `origin` names where it came from for error messages.
  void set_from_yaml(const std::string& key, const std::string& yaml_text, const std::string& origin);

 private:
  const Value& at(const std::string& key) const;
  std::map<std::string, Value> values_;
  std::map<std::string, std::string> origins_;
  std::string path_;
};

// Markdown reference of every key (docs/configs.md is generated from this and a test keeps them equal).
std::string schema_markdown();

}  // namespace semaim::config
