// A patch embedding made for another number of input channels loads as timm's adapt_input_conv would: a
// one-channel encoder's weights in a 3-channel model answer a gray image as the original answered its channel.
#include <gtest/gtest.h>

#include "semaim/io/safetensors.h"
#include "semaim/models/pretrained.h"
#include "semaim/models/weights.h"
#include "temp_dir.h"

namespace {

semaim::models::VitConfig tiny(int64_t channels) {
  semaim::models::VitConfig c;
  c.img_size = 16;
  c.patch_size = 4;
  c.in_chans = channels;
  c.embed_dim = 16;
  c.depth = 2;
  c.num_heads = 2;
  return c;
}

TEST(PretrainedChannels, OneChannelWeightsInAThreeChannelModelAnswerGrayImagesAlike) {
  semaim::test::TempDir dir;
  at::manual_seed(0);
  semaim::models::VitEncoder gray(tiny(1));
  semaim::io::save_safetensors(dir.file("gray.safetensors"), semaim::models::module_weights(*gray), {});
  semaim::models::VitEncoder rgb(tiny(3));
  semaim::models::load_pretrained_encoder(*rgb, dir.file("gray.safetensors"), {});
  gray->eval();
  rgb->eval();
  const at::Tensor x = at::rand({2, 1, 16, 16});
  EXPECT_TRUE(at::allclose(rgb->forward_features(x.expand({2, 3, 16, 16}).contiguous()), gray->forward_features(x),
                           1e-5, 1e-5));
  // And back: RGB weights summed for a one-channel model.
  semaim::io::save_safetensors(dir.file("rgb.safetensors"), semaim::models::module_weights(*rgb), {});
  semaim::models::VitEncoder again(tiny(1));
  semaim::models::load_pretrained_encoder(*again, dir.file("rgb.safetensors"), {});
  again->eval();
  EXPECT_TRUE(at::allclose(again->forward_features(x), gray->forward_features(x), 1e-5, 1e-5));
}

}  // namespace
