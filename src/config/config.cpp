// Layered YAML configuration: loading with `_base_` inheritance, `--set` overrides and strict validation
// against the Config's schema.
#include "semaim/config/config.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <set>
#include <sstream>

#include <yaml-cpp/yaml.h>

#include "semaim/core/errors.h"

namespace semaim::config {
namespace {

namespace fs = std::filesystem;

std::string type_name(ValueType t) {
  switch (t) {
    case ValueType::kInt:
      return "a base-10 integer";
    case ValueType::kFloat:
      return "a number";
    case ValueType::kBool:
      return "true or false";
    case ValueType::kString:
      return "a string";
    case ValueType::kIntList:
      return "a list of base-10 integers";
    case ValueType::kFloatList:
      return "a list of numbers";
    case ValueType::kStringList:
      return "a list of strings";
  }
  return "?";
}

std::string describe(const YAML::Node& n) {
  if (n.IsScalar()) return "'" + n.Scalar() + "'";
  if (n.IsSequence()) return "a list";
  if (n.IsMap()) return "a mapping";
  return "nothing (null)";
}

// A YAML 1.2 decimal integer, [-+]?[0-9]+: "010" is ten, as YAML reads it. Hexadecimal and octal spellings
// (0x10, 0o10) are not integers here, in a file and in --set alike, so both paths read the same number.
bool parse_int(const std::string& s, int64_t& out) {
  const size_t sign = !s.empty() && (s[0] == '+' || s[0] == '-') ? 1 : 0;
  if (s.size() == sign || s.find_first_not_of("0123456789", sign) != std::string::npos) return false;
  const char* first = s.data() + (s[0] == '+' ? 1 : 0);
  const char* last = s.data() + s.size();
  const auto [end, ec] = std::from_chars(first, last, out);  // errc::result_out_of_range beyond int64
  return ec == std::errc() && end == last;
}

// A YAML float in decimal or exponent notation (hex floats are not numbers here). The spellings of infinity
// and NaN (YAML's .inf and .nan in any case, C's inf, infinity, nan) parse, so that the caller can say that
// the value is not finite rather than not a number.
bool parse_float(const std::string& s, double& out) {
  const bool signed_text = !s.empty() && (s[0] == '+' || s[0] == '-');
  std::string word = s.substr(signed_text ? 1 : 0);
  std::transform(word.begin(), word.end(), word.begin(), [](unsigned char c) { return std::tolower(c); });
  if (!word.empty() && word[0] == '.') word.erase(0, 1);
  if (word == "inf" || word == "infinity") {
    out = s[0] == '-' ? -HUGE_VAL : HUGE_VAL;
    return true;
  }
  if (word == "nan") {
    out = std::numeric_limits<double>::quiet_NaN();
    return true;
  }
  if (s.empty() || s.find_first_not_of("0123456789+-.eE") != std::string::npos) return false;
  char* end = nullptr;
  out = std::strtod(s.c_str(), &end);  // overflow gives +-HUGE_VAL, which the caller rejects as not finite
  return end == s.c_str() + s.size();
}

std::string fault_prefix(const std::string& origin, const std::string& key) {
  return origin + ": key '" + key + "'";
}

void check_range(const KeySpec& spec, double v, const std::string& origin) {
  if ((spec.min && v < *spec.min) || (spec.max && v > *spec.max)) {
    std::ostringstream os;
    os << "value " << v << " is out of range [" << (spec.min ? format_number(*spec.min) : "-inf") << ", "
       << (spec.max ? format_number(*spec.max) : "inf") << "]";
    throw InputError(fault_prefix(origin, spec.key), os.str());
  }
}

InputError wrong_type(const KeySpec& spec, const YAML::Node& n, const std::string& origin) {
  return InputError(fault_prefix(origin, spec.key),
                    "expected " + type_name(spec.type) + ", got " + describe(n));
}

// One integer of an int or int-list key, range-checked.
int64_t to_int(const KeySpec& spec, const YAML::Node& whole, const YAML::Node& e, const std::string& origin) {
  int64_t v;
  if (!e.IsScalar() || !parse_int(e.Scalar(), v)) throw wrong_type(spec, whole, origin);
  check_range(spec, static_cast<double>(v), origin);
  return v;
}

// One number of a float or float-list key: finite (NaN would pass every comparison of a range check, and no
// key means anything by an infinity), then range-checked.
double to_float(const KeySpec& spec, const YAML::Node& whole, const YAML::Node& e,
                const std::string& origin) {
  double v;
  if (!e.IsScalar() || !parse_float(e.Scalar(), v)) throw wrong_type(spec, whole, origin);
  if (!std::isfinite(v))
    throw InputError(fault_prefix(origin, spec.key), "value '" + e.Scalar() + "' is not a finite number");
  check_range(spec, v, origin);
  return v;
}

std::string to_choice(const KeySpec& spec, const std::string& s, const std::string& origin) {
  if (spec.choices.empty() || std::find(spec.choices.begin(), spec.choices.end(), s) != spec.choices.end())
    return s;
  std::string list;
  for (const auto& c : spec.choices) list += (list.empty() ? "" : ", ") + c;
  std::string hint = closest_match(s, spec.choices);
  throw InputError(
      fault_prefix(origin, spec.key),
      "'" + s + "' is not one of {" + list + "}" + (hint.empty() ? "" : " (did you mean '" + hint + "'?)"));
}

Value convert(const KeySpec& spec, const YAML::Node& n, const std::string& origin) {
  const bool list = spec.type == ValueType::kIntList || spec.type == ValueType::kFloatList ||
                    spec.type == ValueType::kStringList;
  if (list ? !n.IsSequence() : !n.IsScalar()) throw wrong_type(spec, n, origin);
  switch (spec.type) {
    case ValueType::kInt:
      return to_int(spec, n, n, origin);
    case ValueType::kFloat:
      return to_float(spec, n, n, origin);
    case ValueType::kBool: {
      const std::string s = n.Scalar();
      if (s == "true" || s == "True" || s == "yes") return true;
      if (s == "false" || s == "False" || s == "no") return false;
      throw wrong_type(spec, n, origin);
    }
    case ValueType::kString:
      return to_choice(spec, n.Scalar(), origin);
    case ValueType::kIntList: {
      std::vector<int64_t> out;
      for (const auto& e : n) out.push_back(to_int(spec, n, e, origin));
      return out;
    }
    case ValueType::kFloatList: {
      std::vector<double> out;
      for (const auto& e : n) out.push_back(to_float(spec, n, e, origin));
      return out;
    }
    case ValueType::kStringList: {
      std::vector<std::string> out;
      for (const auto& e : n) {
        if (!e.IsScalar()) throw wrong_type(spec, n, origin);
        out.push_back(e.Scalar());
      }
      return out;
    }
  }
  throw wrong_type(spec, n, origin);
}

// A key (or section) that is not in the schema: name its new name if it was renamed, else the closest valid
// key (looked up under its new name when only its section was renamed).
[[noreturn]] void unknown_key(const Schema& schema, const std::string& key, const std::string& origin) {
  const std::string moved = schema.renamed(key);
  if (!moved.empty() && schema.find(moved)) {
    throw InputError(origin, "key '" + key + "' was renamed to '" + moved + "'");
  }
  if (!moved.empty() && schema.has_section(moved)) {
    throw InputError(origin, "section '" + key + "' was renamed to '" + moved + "'");
  }
  std::string hint = closest_match(moved.empty() ? key : moved, schema.keys());
  throw InputError(origin,
                   "unknown key '" + key + "'" + (hint.empty() ? "" : " (did you mean '" + hint + "'?)"));
}

// A config file's top-level mapping. A file without a single key (empty, only comments, or null) is refused:
// a typo'd or truncated file must not run silently on the defaults, which `{}` asks for explicitly.
YAML::Node parse_file(const std::string& path) {
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  if (!fs::exists(st)) throw InputError(path, "no such config file" + (ec ? " (" + ec.message() + ")" : ""));
  if (fs::is_directory(st)) throw InputError(path, "is a directory, not a config file");
  try {
    YAML::Node n = YAML::LoadFile(path);
    if (n.IsNull()) throw InputError(path, "empty config (no keys; write {} to run on the defaults)");
    if (!n.IsMap()) throw InputError(path, "a config file must be a YAML mapping at the top level");
    return n;
  } catch (const YAML::ParserException& e) {
    throw InputError(path, "YAML syntax error at line " + std::to_string(e.mark.line + 1) + ", column " +
                               std::to_string(e.mark.column + 1) + ": " + e.msg);
  } catch (const YAML::BadFile&) {
    throw InputError(path, "cannot read the config file");
  } catch (const std::ios_base::failure& e) {
    throw InputError(path, std::string("cannot read the config file: ") + e.what());
  }
}

std::string line_of(const YAML::Node& n) {
  const YAML::Mark m = n.Mark();
  return m.is_null() ? std::string() : " at line " + std::to_string(m.line + 1);
}

// Flattens one file's mapping into (dotted key -> node) leaves. yaml-cpp keeps every entry of a mapping that
// repeats a key, so repeats are found here; one file must say each key once (layering is across files).
void flatten(const Schema& schema, const YAML::Node& n, const std::string& prefix, const std::string& file,
             std::vector<std::pair<std::string, YAML::Node>>& out) {
  std::set<std::string> seen;
  for (const auto& kv : n) {
    if (!kv.first.IsScalar())
      throw InputError(file, "a key" + line_of(kv.first) + " is " + describe(kv.first) + ", not a name");
    const std::string k = kv.first.Scalar();
    const std::string key = prefix.empty() ? k : prefix + "." + k;
    if (!seen.insert(k).second) throw InputError(file, "duplicate key '" + key + "'" + line_of(kv.first));
    if (prefix.empty() && k == "_base_") continue;
    if (kv.second.IsMap() && !schema.find(key)) {
      if (!schema.has_section(key)) unknown_key(schema, key, file);
      flatten(schema, kv.second, key, file, out);
    } else {
      if (!schema.find(key)) {
        if (schema.has_section(key))
          throw InputError(
              file, "key '" + key + "' is a section and must be a mapping, got " + describe(kv.second));
        unknown_key(schema, key, file);
      }
      out.emplace_back(key, kv.second);
    }
  }
}

std::vector<std::string> base_entries(const YAML::Node& root, const std::string& path) {
  std::vector<std::string> bases;
  const YAML::Node b = root["_base_"];
  if (!b) return bases;
  if (b.IsScalar()) {
    bases.push_back(b.Scalar());
  } else if (b.IsSequence()) {
    for (const auto& e : b) {
      if (!e.IsScalar()) throw InputError(path, "_base_ entries must be file paths");
      bases.push_back(e.Scalar());
    }
  } else {
    throw InputError(path, "_base_ must be a file path or a list of file paths");
  }
  return bases;
}

void load_chain(const std::string& path, Config& cfg, std::vector<std::string>& stack) {
  std::error_code ec;
  const fs::path resolved = fs::weakly_canonical(path, ec);
  const std::string canon = ec ? path : resolved.string();
  if (std::find(stack.begin(), stack.end(), canon) != stack.end())
    throw InputError(path, "_base_ inheritance cycle");
  stack.push_back(canon);
  const YAML::Node root = parse_file(path);
  std::vector<std::pair<std::string, YAML::Node>> leaves;
  flatten(cfg.schema(), root, "", path, leaves);
  const fs::path dir = fs::path(path).parent_path();
  for (const auto& base : base_entries(root, path)) {
    const fs::path bp = fs::path(base).is_absolute() ? fs::path(base) : dir / base;
    const fs::file_status st = fs::status(bp, ec);
    if (!fs::exists(st))
      throw InputError(path, "_base_ file '" + base + "' does not exist (looked at " + bp.string() + ")");
    if (fs::is_directory(st))
      throw InputError(path, "_base_ '" + base + "' is a directory, not a config file (" + bp.string() + ")");
    load_chain(bp.string(), cfg, stack);
  }
  for (const auto& [key, node] : leaves) {
    YAML::Emitter em;
    em << YAML::Flow << node;
    cfg.set_from_yaml(key, em.c_str(), path);
  }
  stack.pop_back();
}

void emit_value(YAML::Emitter& em, const Value& v) {
  std::visit(
      [&](const auto& x) {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, std::vector<int64_t>> || std::is_same_v<T, std::vector<double>>) {
          em << YAML::Flow << YAML::BeginSeq;
          for (auto e : x) em << e;
          em << YAML::EndSeq;
        } else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
          em << YAML::Flow << YAML::BeginSeq;
          for (const auto& e : x) em << YAML::DoubleQuoted << e;
          em << YAML::EndSeq;
        } else if constexpr (std::is_same_v<T, double>) {
          std::ostringstream os;
          os.precision(17);
          os << x;
          std::string s = os.str();
          if (s.find_first_of(".eEn") == std::string::npos) s += ".0";
          em << s;
        } else if constexpr (std::is_same_v<T, std::string>) {
          em << YAML::DoubleQuoted << x;
        } else {
          em << x;
        }
      },
      v);
}

}  // namespace

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

std::string closest_match(const std::string& word, const std::vector<std::string>& candidates) {
  const auto& dist = edit_distance;
  // Compare leaf names too, so `a.epoch` finds `a.epochs` and `epochs` finds it from any section.
  auto leaf = [](const std::string& s) {
    auto p = s.rfind('.');
    return p == std::string::npos ? s : s.substr(p + 1);
  };
  std::string best;
  size_t best_d = SIZE_MAX;
  for (const auto& c : candidates) {
    size_t d = std::min(dist(word, c), dist(leaf(word), leaf(c)) + 1);
    if (d < best_d) best_d = d, best = c;
  }
  return best_d <= std::max<size_t>(3, leaf(word).size() / 2) ? best : std::string();
}

Config Config::defaults(const Schema& schema) {
  Config cfg(schema);
  for (const auto& spec : schema.specs()) cfg.set_from_yaml(spec.key, spec.default_yaml, "default");
  return cfg;
}

Config Config::load(const Schema& schema, const std::string& path,
                    const std::vector<std::string>& overrides) {
  Config cfg = defaults(schema);
  std::vector<std::string> stack;
  load_chain(path, cfg, stack);
  cfg.path_ = path;
  cfg.apply_overrides(overrides);
  return cfg;
}

void Config::apply_overrides(const std::vector<std::string>& overrides) {
  for (const auto& o : overrides) {
    auto eq = o.find('=');
    if (eq == std::string::npos || eq == 0)
      throw InputError("--set " + o, "expected key=value, e.g. section.key=5");
    const std::string key = o.substr(0, eq);
    if (!schema_->find(key)) unknown_key(*schema_, key, "--set " + o);
    set_from_yaml(key, o.substr(eq + 1), "--set");
  }
}

void Config::set_from_yaml(const std::string& key, const std::string& yaml_text, const std::string& origin) {
  const KeySpec* spec = schema_->find(key);
  if (!spec) unknown_key(*schema_, key, origin);
  YAML::Node n;
  try {
    n = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    throw InputError(fault_prefix(origin, key), "cannot parse value '" + yaml_text + "': " + e.msg);
  }
  values_[key] = convert(*spec, n, origin);
  origins_[key] = origin;
}

const Value& Config::at(const std::string& key) const {
  auto it = values_.find(key);
  if (it == values_.end()) throw std::logic_error("semaim: config key '" + key + "' is not in the schema");
  return it->second;
}

int64_t Config::get_int(const std::string& key) const { return std::get<int64_t>(at(key)); }
double Config::get_float(const std::string& key) const { return std::get<double>(at(key)); }
bool Config::get_bool(const std::string& key) const { return std::get<bool>(at(key)); }
const std::string& Config::get_string(const std::string& key) const { return std::get<std::string>(at(key)); }
const std::vector<int64_t>& Config::get_ints(const std::string& key) const {
  return std::get<std::vector<int64_t>>(at(key));
}
std::vector<double> Config::get_floats(const std::string& key) const {
  return std::get<std::vector<double>>(at(key));
}
const std::vector<std::string>& Config::get_strings(const std::string& key) const {
  return std::get<std::vector<std::string>>(at(key));
}
const std::string& Config::origin(const std::string& key) const {
  static const std::string kNone = "default";
  auto it = origins_.find(key);
  return it == origins_.end() ? kNone : it->second;
}

std::string Config::to_yaml() const {
  YAML::Emitter em;
  em << YAML::BeginMap;
  std::string section;
  bool open = false;
  for (const auto& spec : schema_->specs()) {
    const auto dot = spec.key.find('.');
    const std::string sec = spec.key.substr(0, dot);
    const std::string rest = spec.key.substr(dot + 1);
    if (sec != section) {
      if (open) em << YAML::EndMap;
      em << YAML::Key << sec << YAML::Value << YAML::BeginMap;
      section = sec;
      open = true;
    }
    em << YAML::Key << rest << YAML::Value;
    emit_value(em, at(spec.key));
  }
  if (open) em << YAML::EndMap;
  em << YAML::EndMap;
  return std::string(em.c_str()) + "\n";
}

std::string expand_home(std::string path) {
  const char* home = std::getenv("HOME");
  if ((path == "~" || path.rfind("~/", 0) == 0) && home && *home) path = std::string(home) + path.substr(1);
  return path;
}

}  // namespace semaim::config
