// What every fuzz target shares (docs/reliability.md#fuzzing): a per-process temporary directory for the
// input file, and the contract check: semaim::InputError is the expected outcome of bad input, anything else
// that escapes is a finding.
#pragma once
#include <cxxabi.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <typeinfo>

#include "../tests/scoped_dir.h"
#include "semaim/core/errors.h"
#include "semaim/core/log.h"

namespace semaim::fuzz {

// A directory of this process (mkdtemp under $TMPDIR), removed at exit; one per process so parallel fuzzing
// jobs never share files.
class TempDir : public test::ScopedDir {
 public:
  TempDir() : ScopedDir(make()) {}

 private:
  static std::filesystem::path make() {
    const char* base = std::getenv("TMPDIR");
    std::string templ = std::string(base != nullptr && *base != '\0' ? base : "/tmp") + "/semaim-fuzz-XXXXXX";
    if (::mkdtemp(templ.data()) == nullptr) {
      std::perror("semaim fuzz: mkdtemp");
      std::abort();
    }
    return templ;
  }
};

// The process's temporary directory; the first call also mutes semaim's console log (a warning per input
// would drown libFuzzer's output).
inline const TempDir& temp_dir() {
  static const TempDir dir;
  static const bool quiet = (core::set_log_quiet(true), true);
  (void)quiet;
  return dir;
}

// Replaces the file at `path` with the bytes.
inline void write_file(const std::string& path, const void* data, size_t size) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(static_cast<const char*>(data), static_cast<std::streamsize>(size));
  if (!out) {
    std::fprintf(stderr, "semaim fuzz: cannot write %s\n", path.c_str());
    std::abort();
  }
}

inline void write_file(const std::string& path, const std::string& text) {
  write_file(path, text.data(), text.size());
}

// A finding: prints why and aborts, so libFuzzer saves the input and the replay test fails.
[[noreturn]] inline void finding(const std::string& what) {
  std::fprintf(stderr, "semaim fuzz finding: %s\n", what.c_str());
  std::fflush(stderr);
  std::abort();
}

inline std::string type_name(const std::type_info& t) {
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> name(abi::__cxa_demangle(t.name(), nullptr, nullptr, &status),
                                              std::free);
  return status == 0 && name ? name.get() : t.name();
}

// Runs f: returns normally or throws semaim::InputError (the contract for bad input; BadImage is one).
// Returns true when f returned. Any other exception is a finding, named with its type and message.
template <class F>
bool expect_input_error(F&& f) {
  try {
    f();
    return true;
  } catch (const InputError&) {
    return false;
  } catch (const std::exception& e) {
    finding("uncaught " + type_name(typeid(e)) + " (bad input must throw semaim::InputError): " + e.what());
  } catch (...) {
    finding("uncaught exception of a type that is not std::exception");
  }
}

}  // namespace semaim::fuzz
