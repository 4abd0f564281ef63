// What the benchmark programs share besides the timing helpers (semaim/core/timing.h): options from a table,
// main's exit codes, the corpus's file list without its broken files, and the JSON of a Python counterpart.
#pragma once
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <variant>
#include <vector>

#include "semaim/core/errors.h"
#include "semaim/data/dataset.h"
#include "semaim/data/decode.h"

namespace semaim::bench {

// $name, or `fallback` when it is unset or empty.
inline std::string env_or(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v && *v ? v : fallback;
}

// The sample corpus tools/setup.sh builds: $SEMAIM_CORPUS, else ~/.cache/semaim/corpus-v1.
inline std::string default_corpus() {
  return env_or("SEMAIM_CORPUS", env_or("HOME", "/root") + "/.cache/semaim/corpus-v1");
}

// The torch venv's python: $SEMAIM_VENV/bin/python, else the one tools/setup.sh makes.
inline std::string default_python() {
  const std::string venv = env_or("SEMAIM_VENV", "");
  return venv.empty() ? env_or("HOME", "/root") + "/.cache/semaim/venv-torch-2.11.0/bin/python"
                      : venv + "/bin/python";
}

// Where an option's value goes: a whole number, a string, a flag (set to true), a list (appended to), or a
// function of the value.
using OptionTarget = std::variant<int64_t*, std::string*, bool*, std::vector<std::string>*,
                                  std::function<void(const std::string&)>>;

// The target of a --precision option: a comma-separated list of fp32 / bf16 into *out (replacing it); an
// InputError naming the option for anything else.
inline std::function<void(const std::string&)> precision_list(std::vector<std::string>* out) {
  return [out](const std::string& list) {
    out->clear();
    size_t start = 0;
    while (start <= list.size()) {
      const size_t end = std::min(list.find(',', start), list.size());
      const std::string p = list.substr(start, end - start);
      if (p != "fp32" && p != "bf16") throw InputError("--precision", "fp32 or bf16, got '" + p + "'");
      out->push_back(p);
      start = end + 1;
    }
  };
}

// Reads argv by the option table; the one argument that is not an option goes to `positional` (an InputError
// without one). --help / -h print `usage` and exit 0; an unknown option or a missing or malformed value is an
// InputError naming the option.
inline void parse_options(int argc, char** argv, const std::map<std::string, OptionTarget>& options,
                          std::string* positional, const std::string& usage) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      std::cout << usage << "\n";
      std::exit(0);
    }
    const auto it = options.find(a);
    if (it == options.end()) {
      if (a.rfind("--", 0) == 0 || !positional) throw InputError(a, "unknown option");
      *positional = a;
      continue;
    }
    if (auto* flag = std::get_if<bool*>(&it->second)) {
      **flag = true;
      continue;
    }
    if (i + 1 >= argc) throw InputError(a, "needs a value");
    const std::string v = argv[++i];
    if (auto* n = std::get_if<int64_t*>(&it->second)) {
      size_t used = 0;
      try {
        **n = std::stoll(v, &used);
      } catch (const std::exception&) {
      }
      if (used == 0 || used != v.size()) throw InputError(a, "needs a whole number, got '" + v + "'");
    } else if (auto* s = std::get_if<std::string*>(&it->second)) {
      **s = v;
    } else if (auto* list = std::get_if<std::vector<std::string>*>(&it->second)) {
      (*list)->push_back(v);
    } else {
      std::get<std::function<void(const std::string&)>>(it->second)(v);
    }
  }
}

// main's body with the benchmark programs' exit codes: bad input prints "<program>: error: ..." and gives 2,
// any other failure "<program>: failed: ..." and 1.
inline int run_main(const char* program, const std::function<int()>& body) {
  try {
    return body();
  } catch (const InputError& e) {
    std::cerr << program << ": error: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << program << ": failed: " << e.what() << "\n";
    return 1;
  }
}

// An image folder without the files a list names.
struct CorpusFiles {
  std::vector<data::ImageFile> files;
  std::vector<std::string> classes;
  std::string exclude;  // the list of left-out files ("" when there is none), for the Python counterparts
  size_t bytes = 0;     // of the kept files
};

// The image folder `root` without the files <corpus>/broken.txt lists (paths relative to root). Every kept
// file is read once, so each pipeline then reads from the page cache whichever runs first.
inline CorpusFiles corpus_files(const std::string& root, const std::string& corpus) {
  CorpusFiles out;
  out.exclude = corpus + "/broken.txt";
  std::set<std::string> broken;
  if (std::ifstream in(out.exclude); in) {
    for (std::string l; std::getline(in, l);)
      if (!l.empty()) broken.insert(root + "/" + l);
  } else {
    out.exclude.clear();
  }
  const auto folder = data::FileDataset::image_folder(root);
  out.classes = folder->classes();
  for (const auto& f : folder->files())
    if (!broken.count(f.path)) {
      out.files.push_back(f);
      out.bytes += data::read_file_bytes(f.path).size();
    }
  return out;
}

// Runs a Python benchmark's shell command and returns the JSON object it prints on stdout (from the first
// '{'); a non-zero exit or no JSON is a RuntimeFailure naming `what` and the command.
inline nlohmann::json run_python_json(const std::string& cmd, const std::string& what) {
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) throw RuntimeFailure("cannot run " + cmd);
  std::string out;
  char buf[4096];
  while (size_t n = std::fread(buf, 1, sizeof(buf), p)) out.append(buf, n);
  const int rc = ::pclose(p);
  const size_t brace = out.find('{');
  if (rc != 0 || brace == std::string::npos)
    throw RuntimeFailure(what + " failed (" + std::to_string(rc) + "): " + cmd);
  return nlohmann::json::parse(out.substr(brace));
}

}  // namespace semaim::bench
