// Label-map PNGs through libpng's progressive-free classic API, so palette images keep their indices (OpenCV
// would expand them to colours); the values follow PIL's "unchanged" decoding that mmseg's loader uses. A build
// with SEMAIM_WITH_OPENCV=0 has no libpng: reading and writing label maps throw InputError (docs/gpu.md).
#include "semaim/data/label_map.h"

#if SEMAIM_WITH_OPENCV
#include <png.h>
#endif

#include <algorithm>
#include <csetjmp>
#include <cstring>

#include "semaim/core/errors.h"
#include "semaim/data/decode.h"

namespace semaim::data {
#if SEMAIM_WITH_OPENCV
namespace {

struct ReadSource {
  const uint8_t* data;
  size_t size, pos;
};

// The first error libpng reports, copied out before it longjmps back.
struct ErrorText {
  char text[256] = {0};
};

void on_png_error(png_structp png, png_const_charp msg) {
  auto* err = static_cast<ErrorText*>(png_get_error_ptr(png));
  std::strncpy(err->text, msg, sizeof(err->text) - 1);
  png_longjmp(png, 1);
}

void on_png_warning(png_structp, png_const_charp) {}

void read_bytes(png_structp png, png_bytep out, png_size_t n) {
  auto* src = static_cast<ReadSource*>(png_get_io_ptr(png));
  if (n > src->size - src->pos) png_error(png, "truncated data (the file ends inside an image chunk)");
  std::memcpy(out, src->data + src->pos, n);
  src->pos += n;
}

struct Header {
  png_uint_32 width = 0, height = 0;
  int bit_depth = 0, color_type = 0;
};

// Decodes into `pixels` (width * height bytes). The objects with destructors live in the caller's frame and no
// local changes after setjmp, so libpng's longjmp on an error skips nothing; false with `err` filled on any libpng
// error or an unsupported layout.
bool decode_png(ReadSource* src, std::vector<uint8_t>* pixels, std::vector<png_bytep>* rows, Header* hdr,
                ErrorText* err) {
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, err, on_png_error, on_png_warning);
  if (!png) return false;
  png_infop info = png_create_info_struct(png);
  if (!info || setjmp(png_jmpbuf(png))) {
    png_destroy_read_struct(&png, &info, nullptr);
    return false;
  }
  png_set_read_fn(png, src, read_bytes);
  png_read_info(png, info);
  png_get_IHDR(png, info, &hdr->width, &hdr->height, &hdr->bit_depth, &hdr->color_type, nullptr, nullptr,
               nullptr);
  if (hdr->color_type != PNG_COLOR_TYPE_GRAY && hdr->color_type != PNG_COLOR_TYPE_PALETTE)
    png_error(png, "a label map must be a grayscale or palette PNG (this one has colour or alpha channels)");
  if (hdr->bit_depth > 8) png_error(png, "16-bit label maps are not supported");
  if (static_cast<int64_t>(hdr->width) * hdr->height > kMaxImagePixels) png_error(png, "image too large");
  if (hdr->bit_depth < 8) png_set_packing(png);
  png_set_interlace_handling(png);
  png_read_update_info(png, info);
  pixels->assign(static_cast<size_t>(hdr->width) * hdr->height, 0);
  rows->resize(hdr->height);
  for (png_uint_32 y = 0; y < hdr->height; ++y) (*rows)[y] = pixels->data() + static_cast<size_t>(y) * hdr->width;
  png_read_image(png, rows->data());
  png_read_end(png, nullptr);
  png_destroy_read_struct(&png, &info, nullptr);
  return true;
}

}  // namespace
#else
namespace {
[[noreturn]] void no_png(const std::string& where) {
  throw InputError(where, "cannot read or write PNG label maps: semaim was built with SEMAIM_WITH_OPENCV=OFF");
}
}  // namespace
#endif

at::Tensor decode_label_map(const std::vector<uint8_t>& bytes, const std::string& where) {
  static const uint8_t kSignature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  if (bytes.size() < 8 || std::memcmp(bytes.data(), kSignature, 8) != 0)
    throw InputError(where, "not a PNG file (label maps must be PNG)");
#if !SEMAIM_WITH_OPENCV
  no_png(where);
#else
  ReadSource src{bytes.data(), bytes.size(), 0};
  std::vector<uint8_t> pixels;
  std::vector<png_bytep> rows;
  Header hdr;
  ErrorText err;
  if (!decode_png(&src, &pixels, &rows, &hdr, &err))
    throw InputError(where, std::string("bad label map: ") + (err.text[0] ? err.text : "libpng failed"));
  // PIL expands 2- and 4-bit grayscale to 8 bits by scaling; palette indices and 1-bit values stay as stored.
  if (hdr.color_type == PNG_COLOR_TYPE_GRAY && (hdr.bit_depth == 2 || hdr.bit_depth == 4)) {
    const uint8_t scale = hdr.bit_depth == 2 ? 85 : 17;
    for (auto& v : pixels) v = static_cast<uint8_t>(v * scale);
  }
  at::Tensor out = at::empty({static_cast<int64_t>(hdr.height), static_cast<int64_t>(hdr.width)}, at::kByte);
  std::memcpy(out.data_ptr<uint8_t>(), pixels.data(), pixels.size());
  return out;
#endif
}

at::Tensor read_label_map(const std::string& path) {
  std::vector<uint8_t> bytes;
  try {
    bytes = read_file_bytes(path);
  } catch (const BadImage& e) {
    throw InputError(e.what());
  }
  return decode_label_map(bytes, path);
}

at::Tensor reduce_zero_label(const at::Tensor& labels) {
  // uint8 arithmetic wraps 0 to 255 and leaves 255 - 1 = 254, which goes back to 255: mmseg's three steps.
  at::Tensor out = labels.sub(1);
  out.masked_fill_(labels == 0, static_cast<int64_t>(kIgnoreLabel));
  out.masked_fill_(labels == kIgnoreLabel, static_cast<int64_t>(kIgnoreLabel));
  return out;
}

#if SEMAIM_WITH_OPENCV
namespace {

void write_bytes(png_structp png, png_bytep data, png_size_t n) {
  static_cast<std::string*>(png_get_io_ptr(png))->append(reinterpret_cast<const char*>(data), n);
}

void flush_nothing(png_structp) {}

// Encodes rows of `labels` into `out`; plain C objects only in this frame (libpng longjmps on error).
bool encode_png(const uint8_t* labels, png_uint_32 height, png_uint_32 width, const png_color* colours,
                int num_colours, std::string* out, ErrorText* err) {
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, err, on_png_error, on_png_warning);
  if (!png) return false;
  png_infop info = png_create_info_struct(png);
  if (!info || setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    return false;
  }
  png_set_write_fn(png, out, write_bytes, flush_nothing);
  png_set_IHDR(png, info, width, height, 8, num_colours > 0 ? PNG_COLOR_TYPE_PALETTE : PNG_COLOR_TYPE_GRAY,
               PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  if (num_colours > 0) png_set_PLTE(png, info, colours, num_colours);
  png_write_info(png, info);
  for (png_uint_32 y = 0; y < height; ++y)
    png_write_row(png, const_cast<png_bytep>(labels + static_cast<size_t>(y) * width));
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  return true;
}

}  // namespace
#endif

Palette class_palette(int64_t n) {
  if (n < 0 || n > 256) throw InputError("class_palette", "a PNG palette holds 0..256 colours, asked for " + std::to_string(n));
  Palette p(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    std::array<uint8_t, 3> rgb{0, 0, 0};
    for (int64_t bit = 7, c = i; c > 0; --bit, c >>= 3)
      for (int k = 0; k < 3; ++k) rgb[static_cast<size_t>(k)] |= static_cast<uint8_t>(((c >> k) & 1) << bit);
    p[static_cast<size_t>(i)] = rgb;
  }
  return p;
}

std::string encode_label_png(const at::Tensor& labels, const Palette& palette) {
  if (labels.dim() != 2 || labels.scalar_type() != at::kByte)
    throw InputError("encode_label_png", "labels must be (H, W) uint8, got " + c10::str(labels.sizes()) + " " +
                                             std::string(c10::toString(labels.scalar_type())));
  if (palette.size() > 256) throw InputError("encode_label_png", "a PNG palette holds at most 256 colours");
#if !SEMAIM_WITH_OPENCV
  no_png("encode_label_png");
#else
  const at::Tensor c = labels.contiguous();
  // Indices past the palette's end would make readers reject the file: pad it with black to cover them all.
  const int max_index = c.numel() ? c.max().item<int>() : 0;
  std::vector<png_color> colours(palette.empty() ? 0 : std::max<size_t>(palette.size(), max_index + 1));
  for (size_t i = 0; i < palette.size(); ++i) colours[i] = {palette[i][0], palette[i][1], palette[i][2]};
  std::string out;
  ErrorText err;
  if (!encode_png(c.data_ptr<uint8_t>(), static_cast<png_uint_32>(c.size(0)), static_cast<png_uint_32>(c.size(1)),
                  colours.data(), static_cast<int>(colours.size()), &out, &err))
    throw RuntimeFailure(std::string("encoding a label PNG failed: ") + err.text);
  return out;
#endif
}

}  // namespace semaim::data
