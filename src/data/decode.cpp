// libjpeg-turbo partial decoding (jpeg_crop_scanline / jpeg_skip_scanlines at scale_denom 1..8) and the
// OpenCV fallback; CMYK handled as PIL does (Adobe-inverted storage, RGB = (255-C)(255-K)/255). A build with
// SEMAIM_WITH_OPENCV=0 has neither decoder: decoding throws InputError naming the file (docs/gpu.md).
#include "semaim/data/decode.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <csetjmp>
#include <cstdio>
#include <cstring>

#if SEMAIM_WITH_OPENCV
// jpeglib.h needs FILE and size_t declared first.
#include <jerror.h>
#include <jpeglib.h>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#endif

namespace semaim::data {
namespace {

#if SEMAIM_WITH_OPENCV
struct ErrorManager {
  jpeg_error_mgr pub;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
  bool premature_end;
};

[[noreturn]] void on_error(j_common_ptr cinfo) {
  auto* err = reinterpret_cast<ErrorManager*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, err->message);
  std::longjmp(err->jump, 1);
}

// Warnings are not printed; running out of data mid-image marks the file truncated.
void on_message(j_common_ptr cinfo, int level) {
  auto* err = reinterpret_cast<ErrorManager*>(cinfo->err);
  if (level < 0 && cinfo->err->msg_code == JWRN_JPEG_EOF) err->premature_end = true;
}

void no_output(j_common_ptr) {}

struct Request {
  const uint8_t* data;
  size_t size;
  CropBox box;
  int scale;
};

struct Result {
  int64_t origin_y, origin_x;
  int64_t height, width;  // from the frame header libjpeg read
  bool cmyk, adobe, too_large;
};
#else
// InputError, not BadImage: the loader must stop on the first file instead of skipping every image.
[[noreturn]] void no_image_files(const std::string& where) {
  throw InputError(where, "cannot decode image files: semaim was built with SEMAIM_WITH_OPENCV=OFF");
}
#endif

// BadImage when a header claims more than kMaxImagePixels, named as "width x height".
void check_size(int64_t width, int64_t height, const std::string& where, const char* format) {
  // Divide instead of multiplying: a header's two 32-bit sides can overflow the product.
  if (width >= 0 && height >= 0 && (width == 0 || height <= kMaxImagePixels / width)) return;
  throw BadImage(where, std::string(format) + " header claims " + std::to_string(width) + " x " +
                            std::to_string(height) + " pixels, more than the limit of " +
                            std::to_string(kMaxImagePixels));
}

#if SEMAIM_WITH_OPENCV
// All libjpeg calls live here; only trivially destructible locals, so the longjmp of on_error skips no
// destructor. Returns nullptr, or libjpeg's message for a fatal error.
const char* run_libjpeg(jpeg_decompress_struct* cinfo, ErrorManager* err, const Request& req, cv::Mat* out,
                        Result* res) {
  if (setjmp(err->jump)) return err->message;
  jpeg_create_decompress(cinfo);
  jpeg_mem_src(cinfo, req.data, static_cast<unsigned long>(req.size));
  jpeg_read_header(cinfo, TRUE);
  res->height = cinfo->image_height;
  res->width = cinfo->image_width;
  res->too_large = res->height * res->width > kMaxImagePixels;
  if (res->too_large) {  // refused before libjpeg allocates anything of the image's size
    jpeg_abort_decompress(cinfo);
    return nullptr;
  }
  res->cmyk = cinfo->jpeg_color_space == JCS_CMYK || cinfo->jpeg_color_space == JCS_YCCK;
  res->adobe = cinfo->saw_Adobe_marker;
  cinfo->out_color_space = res->cmyk ? JCS_CMYK : JCS_RGB;
  cinfo->scale_num = 1;
  cinfo->scale_denom = static_cast<unsigned int>(req.scale);
  cinfo->dct_method = JDCT_ISLOW;
  jpeg_start_decompress(cinfo);
  const int64_t s = req.scale, oh = cinfo->output_height, ow = cinfo->output_width;
  const int64_t y0 = std::min<int64_t>(req.box.top / s, oh - 1);
  const int64_t y1 = std::clamp<int64_t>((req.box.top + req.box.height + s - 1) / s, y0 + 1, oh);
  const int64_t x0 = std::min<int64_t>(req.box.left / s, ow - 1);
  const int64_t x1 = std::clamp<int64_t>((req.box.left + req.box.width + s - 1) / s, x0 + 1, ow);
  JDIMENSION xoff = static_cast<JDIMENSION>(x0), xwidth = static_cast<JDIMENSION>(x1 - x0);
  if (xwidth < cinfo->output_width) jpeg_crop_scanline(cinfo, &xoff, &xwidth);
  if (y0 > 0) jpeg_skip_scanlines(cinfo, static_cast<JDIMENSION>(y0));
  out->create(static_cast<int>(y1 - y0), static_cast<int>(cinfo->output_width),
              CV_8UC(cinfo->output_components));
  while (static_cast<int64_t>(cinfo->output_scanline) < y1) {
    JSAMPROW rows[4];
    const int64_t first = cinfo->output_scanline - y0;
    const int64_t n = std::min<int64_t>(4, y1 - cinfo->output_scanline);
    for (int64_t r = 0; r < n; ++r) rows[r] = out->ptr<uint8_t>(static_cast<int>(first + r));
    jpeg_read_scanlines(cinfo, rows, static_cast<JDIMENSION>(n));
  }
  res->origin_y = y0;
  res->origin_x = xoff;
  jpeg_abort_decompress(cinfo);
  return nullptr;
}

// PIL's CMYK -> RGB: channel = (255 - C)(255 - K) / 255 on the true ink values; Adobe files store them
// inverted.
cv::Mat cmyk_to_rgb(const cv::Mat& cmyk, bool inverted) {
  cv::Mat rgb(cmyk.rows, cmyk.cols, CV_8UC3);
  for (int y = 0; y < cmyk.rows; ++y) {
    const uint8_t* src = cmyk.ptr<uint8_t>(y);
    uint8_t* dst = rgb.ptr<uint8_t>(y);
    for (int x = 0; x < cmyk.cols; ++x, src += 4, dst += 3) {
      const int k = inverted ? src[3] : 255 - src[3];
      for (int c = 0; c < 3; ++c) {
        const int v = inverted ? src[c] : 255 - src[c];
        dst[c] = static_cast<uint8_t>((v * k + 127) / 255);
      }
    }
  }
  return rgb;
}
#endif

uint16_t be16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
uint32_t be32(const uint8_t* p) { return static_cast<uint32_t>(be16(p)) << 16 | be16(p + 2); }

}  // namespace

std::vector<uint8_t> read_file_bytes(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw BadImage(path, std::string("cannot open: ") + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw BadImage(path, "not a regular file");
  }
  std::vector<uint8_t> bytes(static_cast<size_t>(st.st_size));
  size_t got = 0;
  while (got < bytes.size()) {
    const ssize_t n = ::read(fd, bytes.data() + got, bytes.size() - got);
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  ::close(fd);
  if (got != bytes.size()) throw BadImage(path, "read error");
  if (bytes.empty()) throw BadImage(path, "empty file (0 bytes)");
  return bytes;
}

bool is_jpeg(const std::vector<uint8_t>& bytes) {
  return bytes.size() >= 3 && bytes[0] == 0xFF && bytes[1] == 0xD8 && bytes[2] == 0xFF;
}

JpegInfo read_jpeg_info(const std::vector<uint8_t>& bytes, const std::string& where) {
  // Marker segments after SOI: FF <marker> <len16> <payload>; SOF0..SOF15 except DHT (C4), JPG (C8), DAC (CC)
  // carry precision, height, width, components.
  size_t pos = 2;
  while (pos + 4 <= bytes.size()) {
    if (bytes[pos] != 0xFF)
      throw BadImage(where, "corrupt JPEG header (no marker at byte " + std::to_string(pos) + ")");
    const uint8_t marker = bytes[pos + 1];
    if (marker == 0xFF) {  // fill byte
      ++pos;
      continue;
    }
    if (marker == 0x01 || (marker >= 0xD0 && marker <= 0xD7)) {  // standalone markers
      pos += 2;
      continue;
    }
    if (marker == 0xD9 || marker == 0xDA) break;  // end of image / start of scan before any frame header
    const size_t len = be16(&bytes[pos + 2]);
    if (len < 2 || pos + 2 + len > bytes.size()) break;
    const bool sof = marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC;
    if (sof) {
      if (len < 8) break;
      JpegInfo info;
      info.height = be16(&bytes[pos + 5]);
      info.width = be16(&bytes[pos + 7]);
      info.components = bytes[pos + 9];
      if (info.height == 0 || info.width == 0)
        throw BadImage(where, "JPEG frame header has a zero dimension");
      check_size(info.width, info.height, where, "JPEG");
      return info;
    }
    pos += 2 + len;
  }
  throw BadImage(where, "corrupt or truncated JPEG (no frame header)");
}

int reduced_scale(const CropBox& box, int64_t min_h, int64_t min_w) {
  int scale = 1;
  for (int s : {2, 4, 8}) {
    if (box.height / s >= min_h && box.width / s >= min_w) scale = s;
  }
  return scale;
}

DecodedRegion decode_jpeg_region(const std::vector<uint8_t>& bytes, const std::string& where,
                                 const CropBox& box, int scale) {
  // A complete JPEG ends with EOI (FF D9); only trailing junk may follow it. Entropy-coded data never holds
  // FF D9, so its absence from the tail means the file was cut short.
  const size_t tail = std::min<size_t>(bytes.size(), 1024);
  bool has_eoi = false;
  for (size_t i = bytes.size() - tail; i + 1 < bytes.size() && !has_eoi; ++i)
    has_eoi = bytes[i] == 0xFF && bytes[i + 1] == 0xD9;
  if (!has_eoi) throw BadImage(where, "truncated JPEG (no end-of-image marker)");
#if !SEMAIM_WITH_OPENCV
  no_image_files(where);
#else
  jpeg_decompress_struct cinfo;
  std::memset(&cinfo, 0, sizeof(cinfo));
  ErrorManager err;
  std::memset(&err, 0, sizeof(err));
  cinfo.err = jpeg_std_error(&err.pub);
  err.pub.error_exit = on_error;
  err.pub.emit_message = on_message;
  err.pub.output_message = no_output;
  DecodedRegion region;
  region.scale = scale;
  cv::Mat raw;
  Result res{};
  const char* fault = run_libjpeg(&cinfo, &err, Request{bytes.data(), bytes.size(), box, scale}, &raw, &res);
  jpeg_destroy_decompress(&cinfo);
  if (fault) throw BadImage(where, std::string("corrupt JPEG: ") + fault);
  if (res.too_large) check_size(res.width, res.height, where, "JPEG");
  if (err.premature_end) throw BadImage(where, "truncated JPEG (premature end of data)");
  region.rgb = res.cmyk ? cmyk_to_rgb(raw, res.adobe) : raw;
  region.origin_y = res.origin_y;
  region.origin_x = res.origin_x;
  return region;
#endif
}

cv::Mat decode_rgb(const std::vector<uint8_t>& bytes, const std::string& where) {
  // A complete PNG ends with its IEND chunk; checked here so a truncated file is named as such (and libpng
  // does not print its own error first). Its size is in the IHDR chunk that must come first.
  static const uint8_t kPngMagic[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  if (bytes.size() >= 8 && std::equal(kPngMagic, kPngMagic + 8, bytes.begin())) {
    static const char kIhdr[4] = {'I', 'H', 'D', 'R'};
    if (bytes.size() >= 24 && std::equal(kIhdr, kIhdr + 4, bytes.begin() + 12))
      check_size(be32(&bytes[16]), be32(&bytes[20]), where, "PNG");
    static const char kIend[4] = {'I', 'E', 'N', 'D'};
    const auto tail = bytes.end() - static_cast<std::ptrdiff_t>(std::min<size_t>(bytes.size(), 64));
    if (std::search(tail, bytes.end(), kIend, kIend + 4) == bytes.end()) {
      throw BadImage(where, "truncated PNG (no IEND chunk)");
    }
  }
#if !SEMAIM_WITH_OPENCV
  no_image_files(where);
#else
  cv::Mat bgr;
  try {
    bgr = cv::imdecode(bytes, cv::IMREAD_COLOR | cv::IMREAD_IGNORE_ORIENTATION);
  } catch (const cv::Exception& e) {
    throw BadImage(where, std::string("cannot decode: ") + e.what());
  }
  if (bgr.empty()) throw BadImage(where, "not a decodable image (unknown format, truncated or corrupt)");
  cv::Mat rgb;
  cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
  return rgb;
#endif
}

}  // namespace semaim::data
