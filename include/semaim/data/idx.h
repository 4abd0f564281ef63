// IDX (LeCun's MNIST format) reader and the Fashion-MNIST loader, gzip or raw, every fault a typed error.
// Format: big-endian magic 0x0000TTNN (TT = 0x08 uint8, NN = number of dims), NN big-endian int32 dims,
// payload.
#pragma once
#include <ATen/ATen.h>

#include <string>

namespace semaim::data {

// Debian's dataset-fashion-mnist location, the default data root.
inline constexpr const char* kFashionMnistRoot = "/usr/share/datasets/fashion-mnist";

// A labelled image set held in memory.
struct ImageSet {
  at::Tensor images;  // (N, C, H, W) uint8
  at::Tensor labels;  // (N) int64
  std::string name;
};

// Reads one uint8 IDX file (gzip detected by its magic bytes, otherwise raw). Validates the magic, the
// element type (0x08), the dimension count (1..8), nonzero dims and that the payload length equals the
// product of the dims. Every fault throws semaim::InputError naming the file and the fault.
// path -> uint8 tensor with the file's dims, e.g. (60000, 28, 28)
at::Tensor read_idx(const std::string& path);

// Loads split "train" or "test" (alias "t10k") from root/{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]
// (the .gz name is preferred when both exist). Checks image rank 3, label rank 1, equal counts and labels
// in 0..9. -> images (N, 1, 28, 28) uint8, labels (N) int64, name "fashion-mnist/<split>".
ImageSet load_fashion_mnist(const std::string& root, const std::string& split);

// The first n samples (n <= 0 or n >= N: all), sharing storage. -> images (n, C, H, W), labels (n)
ImageSet take_first(const ImageSet& set, int64_t n);

}  // namespace semaim::data
