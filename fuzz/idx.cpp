// Fuzz target: Fashion-MNIST's IDX files as data.dataset: fashion_mnist reads them (load_fashion_mnist:
// read_idx of the image and the label file, gzip or raw, then the pair's checks). The first byte chooses
// which file of the pair the rest of the input is (even: images, odd: labels); the other file is a valid one
// of 100 samples.
#include <cstdint>
#include <string>
#include <vector>

#include "fuzz_util.h"
#include "semaim/data/dataset.h"
#include "semaim/data/idx.h"

namespace {

using namespace semaim;

constexpr uint32_t kSamples = 100, kSide = 28;

// An uncompressed IDX file: magic 0x000008NN, big-endian dims, then the payload.
std::string idx_file(const std::vector<uint32_t>& dims, const std::string& payload) {
  std::string out{'\0', '\0', '\x08', static_cast<char>(dims.size())};
  for (uint32_t d : dims)
    for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>((d >> shift) & 0xff));
  return out + payload;
}

std::string valid_images() {
  return idx_file({kSamples, kSide, kSide}, std::string(kSamples * kSide * kSide, '\x7f'));
}

std::string valid_labels() {
  std::string labels;
  for (uint32_t i = 0; i < kSamples; ++i) labels.push_back(static_cast<char>(i % 10));
  return idx_file({kSamples}, labels);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  static const std::string root = fuzz::temp_dir().path().string();
  static const std::string images = fuzz::temp_dir().file("train-images-idx3-ubyte");
  static const std::string labels = fuzz::temp_dir().file("train-labels-idx1-ubyte");
  static const std::string good_images = valid_images(), good_labels = valid_labels();
  const bool fuzz_images = data[0] % 2 == 0;
  fuzz::write_file(
      images, fuzz_images ? std::string(reinterpret_cast<const char*>(data + 1), size - 1) : good_images);
  fuzz::write_file(
      labels, fuzz_images ? good_labels : std::string(reinterpret_cast<const char*>(data + 1), size - 1));
  fuzz::expect_input_error([&] {
    data::ImageSet set = data::load_fashion_mnist(root, "train");
    const data::MemoryDataset dataset(data::take_first(set, 10));
    (void)dataset.label(dataset.size() - 1);
  });
  return 0;
}
