// Image file decoding to RGB: JPEG through libjpeg-turbo with crop-aware partial decoding at a reduced DCT
// scale (1/2, 1/4, 1/8), everything else (PNG, BMP, WebP, TIFF, ...) through OpenCV. Grayscale and CMYK
// JPEGs (as ImageNet holds) decode to RGB like PIL's convert("RGB").
#pragma once
#include <opencv2/core/mat.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "semaim/core/errors.h"
#include "semaim/data/transforms.h"

namespace semaim::data {

// A file that cannot be decoded (empty, truncated, not an image, corrupt). The message names the file and
// the fault; the loader skips and counts it, or fails the run under data.on_bad_image: fail.
class BadImage : public InputError {
 public:
  using InputError::InputError;
};

// The largest image (width x height) decoded: PIL's DecompressionBombError threshold (2 x
// Image.MAX_IMAGE_PIXELS), so every image the reference pipeline loads loads here too. A header claiming more
// is a BadImage before any pixel is decoded (a few bytes must not make a worker allocate gigabytes).
constexpr int64_t kMaxImagePixels = 178956970;

// The whole file, or BadImage when it cannot be read or is empty.
std::vector<uint8_t> read_file_bytes(const std::string& path);

// True when the bytes start with a JPEG start-of-image marker.
bool is_jpeg(const std::vector<uint8_t>& bytes);

// A JPEG's size from its start-of-frame marker, without decoding. BadImage when no frame header is found or
// it claims more than kMaxImagePixels.
struct JpegInfo {
  int64_t height = 0, width = 0, components = 0;
};
JpegInfo read_jpeg_info(const std::vector<uint8_t>& bytes, const std::string& where);

// Pixels decoded from part of an image: rgb (H', W') uint8 RGB holds source rows/cols starting at
// (origin_y, origin_x), both in units of source pixels / scale.
struct DecodedRegion {
  cv::Mat rgb;
  int scale = 1;
  int64_t origin_y = 0, origin_x = 0;
};

// The largest DCT scale in {1, 2, 4, 8} at which `box` still covers at least (min_h, min_w) pixels.
int reduced_scale(const CropBox& box, int64_t min_h, int64_t min_w);

// Decodes the rows and columns of `box` (source pixels) of a JPEG at 1/scale, skipping the rows above and
// below it and the column blocks beside it. Truncated data (no end-of-image marker, or libjpeg's premature
// end warning), corrupt headers and a size over kMaxImagePixels throw BadImage naming `where`.
DecodedRegion decode_jpeg_region(const std::vector<uint8_t>& bytes, const std::string& where,
                                 const CropBox& box, int scale);

// Full decode of any format OpenCV reads, as RGB (alpha dropped, 16-bit scaled to 8-bit). BadImage if
// OpenCV cannot decode it, or if a PNG's IHDR claims more than kMaxImagePixels (other formats are bounded
// by OpenCV's own limit, OPENCV_IO_MAX_IMAGE_PIXELS).
cv::Mat decode_rgb(const std::vector<uint8_t>& bytes, const std::string& where);

}  // namespace semaim::data
