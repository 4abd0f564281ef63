// Replays inputs through a fuzz target without libFuzzer (the ctest tests Fuzz.Replay_<name>, any compiler):
// each argument is a file, or a directory whose regular files are replayed in name order. A finding aborts.
#include <sys/resource.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SEMAIM_REPLAY_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define SEMAIM_REPLAY_ASAN 1
#endif

// libFuzzer's -rss_limit_mb in replay: an input that makes a reader allocate without bound ends in
// std::bad_alloc (a finding) instead of exhausting the machine. Not under ASan, which reserves terabytes of
// address space for its shadow memory.
void limit_memory() {
#ifndef SEMAIM_REPLAY_ASAN
  constexpr rlim_t kAddressSpace = rlim_t{4} << 30;
  const rlimit limit{kAddressSpace, kAddressSpace};
  setrlimit(RLIMIT_AS, &limit);
#endif
}

// The files an argument names: itself, or a directory's regular files (not hidden) in name order.
std::vector<std::filesystem::path> inputs_of(const std::filesystem::path& arg) {
  if (!std::filesystem::is_directory(arg)) return {arg};
  std::vector<std::filesystem::path> files;
  for (const auto& e : std::filesystem::directory_iterator(arg))
    if (e.is_regular_file() && e.path().filename().string().rfind('.', 0) != 0) files.push_back(e.path());
  std::sort(files.begin(), files.end());
  return files;
}

}  // namespace

int main(int argc, char** argv) {
  limit_memory();
  int replayed = 0;
  for (int a = 1; a < argc; ++a) {
    if (!std::filesystem::exists(argv[a])) continue;  // a target without regression inputs yet
    for (const auto& path : inputs_of(argv[a])) {
      std::ifstream in(path, std::ios::binary);
      if (!in) {
        std::fprintf(stderr, "cannot read %s\n", path.c_str());
        return 1;
      }
      const std::vector<char> bytes{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
      std::fprintf(stderr, "replay %s (%zu bytes)\n", path.c_str(), bytes.size());
      LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
      ++replayed;
    }
  }
  std::printf("replayed %d input(s) without a finding\n", replayed);
  return replayed > 0 ? 0 : 1;
}
