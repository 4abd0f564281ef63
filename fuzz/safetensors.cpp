// Fuzz target: a safetensors file as checkpoints, exports and timm weights are read (io::load_safetensors,
// and io::read_safetensors_shapes, the header-only check `--resume auto` runs on every candidate); a file the
// full reader accepts must pass the header check with the same names and shapes.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "fuzz_util.h"
#include "semaim/io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace semaim;
  static const std::string path = fuzz::temp_dir().file("weights.safetensors");
  fuzz::write_file(path, data, size);
  std::optional<io::SafetensorsFile> file;
  std::optional<std::map<std::string, std::vector<int64_t>>> shapes;
  fuzz::expect_input_error([&] { file = io::load_safetensors(path); });
  fuzz::expect_input_error([&] { shapes = io::read_safetensors_shapes(path); });
  if (!file) return 0;
  if (!shapes) fuzz::finding("load_safetensors accepts a file read_safetensors_shapes refuses");
  std::map<std::string, std::vector<int64_t>> loaded;
  for (const auto& [name, t] : file->tensors) loaded[name] = t.sizes().vec();
  if (loaded != *shapes)
    fuzz::finding("load_safetensors and read_safetensors_shapes disagree on the tensors");
  return 0;
}
