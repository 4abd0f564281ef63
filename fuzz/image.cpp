// Fuzz target: an image file as the loader decodes it (FileDataset::load_into: JPEG through libjpeg-turbo,
// crop-aware at a reduced DCT scale, and at full scale; every other format through OpenCV), with the pixel
// cap (kMaxImagePixels) in force, into the pretraining transform and the evaluation transform.
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "fuzz_util.h"
#include "semaim/data/dataset.h"
#include "semaim/data/decode.h"
#include "semaim/data/transforms.h"

namespace {

using namespace semaim;

constexpr int64_t kSide = 32;

data::Pipeline pipeline(bool random) {
  data::AugmentConfig a;
  a.out_size = kSide;
  a.random = random;
  a.mean = {0.485, 0.456, 0.406};
  a.std = {0.229, 0.224, 0.225};
  return data::Pipeline::build(a, 3);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = fuzz::temp_dir().file("image");
  static const data::Pipeline train = pipeline(true), eval = pipeline(false);
  static data::FileDataset crop_aware("fuzz", {data::ImageFile{path, 0}}, {"0"});
  static data::FileDataset full_decode = [] {
    data::FileDataset d("fuzz", {data::ImageFile{path, 0}}, {"0"});
    d.set_crop_aware(false);
    return d;
  }();
  static std::vector<float> out(3 * kSide * kSide);
  fuzz::write_file(path, data, size);
  std::mt19937_64 rng(size);
  fuzz::expect_input_error([&] { crop_aware.load_into(0, train, rng, out.data()); });
  fuzz::expect_input_error([&] { full_decode.load_into(0, eval, rng, out.data()); });
  return 0;
}
