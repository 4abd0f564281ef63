// Layered YAML configuration: schema defaults ⊕ `_base_` chain ⊕ experiment file ⊕ `--set a.b=c`
// (dinov2-style), strictly validated against a Schema that each area fills with its own keys; the resolved
// result is what a run records.
#pragma once
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
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

// The valid keys of a program, grouped by section (`section.leaf`). Each area registers its own sections
// with explicit calls (no static registration); the assembled schema is built once and outlives every
// Config bound to it. Misuse while building (a duplicate key, a key outside its declared section) is a
// programming error and throws std::logic_error.
class Schema {
 public:
  // Declares a section; sections are documented in declaration order. `doc` is printed under its heading.
  void add_section(const std::string& name, const std::string& doc = "");
  // Adds `section.leaf` to its declared section (keys keep their order inside the section).
  void add(KeySpec spec);
  // Records that keys under `old_prefix` (a section or a key) moved to `new_prefix`, which must exist: a
  // config using the old name gets "key 'old.x' was renamed to 'new.x'" instead of "unknown key".
  void rename(const std::string& old_prefix, const std::string& new_prefix);

  const KeySpec* find(const std::string& key) const;
  bool has_section(const std::string& name) const;
  // Every key in documentation order (sections in declaration order).
  const std::vector<KeySpec>& specs() const { return specs_; }
  std::vector<std::string> keys() const;
  // The new name of a key or section under a recorded rename; empty if none applies.
  std::string renamed(const std::string& key) const;
  // Markdown reference of every key (docs/configs.md is generated from the program's schema).
  std::string markdown() const;

 private:
  struct Section {
    std::string name, doc;
  };
  std::vector<Section> sections_;
  std::vector<KeySpec> specs_;  // grouped by section, in section order
  std::vector<std::pair<std::string, std::string>> renames_;
};

// Levenshtein distance (insertions, deletions, substitutions).
size_t edit_distance(const std::string& a, const std::string& b);

// The closest candidate by edit distance (for "did you mean" messages); empty if none is reasonably close.
std::string closest_match(const std::string& word, const std::vector<std::string>& candidates);

// A number as ranges print it in messages and docs (iostream's default: 6 significant digits, "1e+30").
std::string format_number(double v);

class Config {
 public:
  // Schema defaults only.
  static Config defaults(const Schema& schema);
  // Loads `path` (following `_base_`, relative to each file), applies `overrides` ("a.b=value", value parsed
  // as YAML), validates every key and value. Throws InputError naming the file (or "--set") and the fault.
  static Config load(const Schema& schema, const std::string& path,
                     const std::vector<std::string>& overrides = {});
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
  const Schema& schema() const { return *schema_; }

  // The resolved config as nested YAML (every key, with its value); the engine writes it into the run
  // directory.
  std::string to_yaml() const;

  // Validated assignment from YAML text; `origin` names where it came from for error messages.
  void set_from_yaml(const std::string& key, const std::string& yaml_text, const std::string& origin);

 private:
  explicit Config(const Schema& schema) : schema_(&schema) {}
  const Value& at(const std::string& key) const;
  const Schema* schema_;
  std::map<std::string, Value> values_;
  std::map<std::string, std::string> origins_;
  std::string path_;
};

// A home-relative path value ("~" or "~/..."), expanded as a shell would; any other string unchanged.
std::string expand_home(std::string path);

}  // namespace semaim::config
