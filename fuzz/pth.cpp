// Fuzz target: a torch.save (.pth) file as finetune.init and the reference checkpoints reach semaim
// (io::load_pth, the whole object with every tensor, and io::load_pth_state_dict, the state dict chosen by
// key): the zip through LibTorch's reader and semaim's own pickle interpreter.
#include <cstdint>
#include <string>

#include "fuzz_util.h"
#include "semaim/io/pth.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace semaim;
  static const std::string path = fuzz::temp_dir().file("checkpoint.pth");
  fuzz::write_file(path, data, size);
  fuzz::expect_input_error([&] { io::load_pth(path); });
  fuzz::expect_input_error([&] { io::load_pth_state_dict(path); });
  return 0;
}
