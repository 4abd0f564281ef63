// Fuzz target: a dataset list file as data.dataset: image_list reads it ("<path> <label>" per line; blank and
// # lines skipped), then what the loader asks of the dataset.
#include <cstdint>
#include <string>

#include "fuzz_util.h"
#include "semaim/data/dataset.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace semaim;
  static const std::string root = fuzz::temp_dir().path().string();
  static const std::string list = fuzz::temp_dir().file("train.txt");
  fuzz::write_file(list, data, size);
  fuzz::expect_input_error([&] {
    const auto set = data::FileDataset::image_list(root, list);
    data::count_classes(*set);
    for (int64_t i = 0; i < set->size(); ++i) (void)set->source(i), (void)set->label(i);
  });
  return 0;
}
