// IDX reader (gzip or raw by magic bytes) and the Fashion-MNIST loader; every fault names the file.
// Layout per LeCun's MNIST page: 0x00 0x00 type ndims, big-endian int32 dims, row-major payload.
#include "semaim/data/idx.h"

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <memory>
#include <vector>

#include "semaim/core/errors.h"

namespace semaim::data {
namespace {

constexpr int kMaxDims = 8;
constexpr uint8_t kTypeUint8 = 0x08;
// Caps the payload so a corrupt header cannot ask for an absurd allocation (16 GiB).
constexpr int64_t kMaxPayload = int64_t{1} << 34;

// Reads a file sequentially whether it is gzip or raw; read() returns bytes read, throws on I/O errors.
class ByteSource {
 public:
  explicit ByteSource(const std::string& path) : path_(path) {
    std::FILE* f = std::fopen(path.c_str(), "rb");
    if (f == nullptr) throw InputError(path, std::string("cannot open: ") + std::strerror(errno));
    unsigned char magic[2] = {0, 0};
    const size_t n = std::fread(magic, 1, 2, f);
    gzip_ = n == 2 && magic[0] == 0x1f && magic[1] == 0x8b;
    if (gzip_) {
      std::fclose(f);
      gz_ = gzopen(path.c_str(), "rb");
      if (gz_ == nullptr) throw InputError(path, "cannot open gzip stream");
      gzbuffer(gz_, 1 << 20);
    } else {
      std::rewind(f);
      file_ = f;
    }
  }
  ~ByteSource() {
    if (gz_ != nullptr) gzclose(gz_);
    if (file_ != nullptr) std::fclose(file_);
  }
  ByteSource(const ByteSource&) = delete;
  ByteSource& operator=(const ByteSource&) = delete;

  bool gzip() const { return gzip_; }

  // Reads up to n bytes; fewer only at the end of the data.
  int64_t read(void* dst, int64_t n) {
    auto* out = static_cast<char*>(dst);
    int64_t total = 0;
    while (total < n) {
      const int64_t want = std::min<int64_t>(n - total, int64_t{1} << 30);
      int64_t got = 0;
      if (gzip_) {
        const int r = gzread(gz_, out + total, static_cast<unsigned>(want));
        if (r < 0) gz_fail();
        got = r;
      } else {
        got = static_cast<int64_t>(std::fread(out + total, 1, static_cast<size_t>(want), file_));
        if (got < want && std::ferror(file_))
          throw InputError(path_, "read error: " + std::string(std::strerror(errno)));
      }
      if (got == 0) break;
      total += got;
    }
    if (gzip_ && total < n) {
      // zlib reports a stream cut mid-way as an error only through gzerror.
      int code = Z_OK;
      gzerror(gz_, &code);
      if (code != Z_OK) gz_fail();
    }
    return total;
  }

 private:
  [[noreturn]] void gz_fail() {
    int code = Z_OK;
    const char* msg = gzerror(gz_, &code);
    if (code == Z_BUF_ERROR)
      throw InputError(path_, "truncated: gzip stream ends early (unexpected end of file)");
    throw InputError(path_, "corrupt gzip stream (" + std::string(msg != nullptr ? msg : "unknown") + ")");
  }

  std::string path_;
  bool gzip_ = false;
  std::FILE* file_ = nullptr;
  gzFile gz_ = nullptr;
};

std::string hex32(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "0x%08x", v);
  return buf;
}

uint32_t big_endian32(const unsigned char* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

std::string dims_str(const std::vector<int64_t>& dims) {
  std::string s;
  for (size_t i = 0; i < dims.size(); ++i) s += (i ? "x" : "") + std::to_string(dims[i]);
  return s;
}

// Which of the two file names exists, the gzip one first.
std::string pick_file(const std::string& root, const std::string& stem) {
  const std::filesystem::path base = std::filesystem::path(root) / stem;
  const std::string gz = base.string() + ".gz";
  if (std::filesystem::exists(gz)) return gz;
  if (std::filesystem::exists(base)) return base.string();
  throw InputError(gz, "not found (nor " + base.string() + ")");
}

}  // namespace

at::Tensor read_idx(const std::string& path) {
  ByteSource src(path);
  unsigned char header[4];
  const int64_t got = src.read(header, 4);
  if (got == 0) throw InputError(path, "empty file (no IDX header)");
  if (got < 4) throw InputError(path, "truncated: header has " + std::to_string(got) + " of 4 magic bytes");
  const uint32_t magic = big_endian32(header);
  if (header[0] != 0 || header[1] != 0) {
    throw InputError(path,
                     "bad magic " + hex32(magic) + ": not an IDX file (expected 0x00000801 or 0x00000803)");
  }
  if (header[2] != kTypeUint8) {
    throw InputError(path, "bad magic " + hex32(magic) + ": element type 0x" + hex32(header[2]).substr(8) +
                               " is not uint8 (0x08)");
  }
  const int ndims = header[3];
  if (ndims < 1 || ndims > kMaxDims) {
    throw InputError(path, "bad magic " + hex32(magic) + ": dimension count " + std::to_string(ndims) +
                               " outside 1.." + std::to_string(kMaxDims));
  }
  std::vector<unsigned char> dim_bytes(4 * static_cast<size_t>(ndims));
  const int64_t got_dims = src.read(dim_bytes.data(), 4 * ndims);
  if (got_dims < 4 * ndims) {
    throw InputError(path, "truncated: header needs " + std::to_string(ndims) + " dims, found " +
                               std::to_string(got_dims) + " of " + std::to_string(4 * ndims) + " bytes");
  }
  std::vector<int64_t> dims(ndims);
  int64_t payload = 1;
  for (int d = 0; d < ndims; ++d) {
    dims[d] = big_endian32(&dim_bytes[4 * d]);
    if (dims[d] == 0) throw InputError(path, "dimension " + std::to_string(d) + " is zero");
    if (dims[d] > kMaxPayload / payload) {
      throw InputError(path, "dims " + dims_str(dims) + " exceed the 16 GiB payload limit");
    }
    payload *= dims[d];
  }
  // The payload is read in chunks before the tensor is allocated, so a few header bytes claiming gigabytes
  // cost only what the file really holds.
  std::vector<uint8_t> bytes;
  int64_t got_payload = 0;
  constexpr int64_t kChunk = int64_t{1} << 24;
  while (got_payload < payload) {
    const int64_t want = std::min(kChunk, payload - got_payload);
    bytes.resize(static_cast<size_t>(got_payload + want));
    const int64_t got = src.read(bytes.data() + got_payload, want);
    got_payload += got;
    if (got < want) break;
  }
  const std::string what = ndims == 1 ? "labels" : (ndims == 3 ? "pixels" : "payload");
  if (got_payload < payload) {
    throw InputError(path, "truncated: expected " + std::to_string(payload) + " bytes of " + what +
                               " (dims " + dims_str(dims) + "), found " + std::to_string(got_payload));
  }
  char extra = 0;
  if (src.read(&extra, 1) != 0) {
    throw InputError(path, "trailing data: payload longer than the " + std::to_string(payload) +
                               " bytes of " + what + " the header declares (dims " + dims_str(dims) + ")");
  }
  at::Tensor out = at::empty(dims, at::TensorOptions().dtype(at::kByte));
  std::memcpy(out.data_ptr<uint8_t>(), bytes.data(), static_cast<size_t>(payload));
  return out;
}

ImageSet load_fashion_mnist(const std::string& root, const std::string& split) {
  std::string prefix;
  if (split == "train") {
    prefix = "train";
  } else if (split == "test" || split == "t10k") {
    prefix = "t10k";
  } else {
    throw InputError("split", "unknown Fashion-MNIST split '" + split + "' (train | test)");
  }
  const std::string image_path = pick_file(root, prefix + "-images-idx3-ubyte");
  const std::string label_path = pick_file(root, prefix + "-labels-idx1-ubyte");
  at::Tensor images = read_idx(image_path);
  at::Tensor labels = read_idx(label_path);
  if (images.dim() != 3) {
    throw InputError(image_path, "expected 3 dims (N, H, W), found " + std::to_string(images.dim()));
  }
  if (labels.dim() != 1) {
    throw InputError(label_path, "expected 1 dim (N), found " + std::to_string(labels.dim()));
  }
  if (images.size(0) != labels.size(0)) {
    throw InputError(label_path, "count mismatch: " + std::to_string(labels.size(0)) + " labels for " +
                                     std::to_string(images.size(0)) + " images in " + image_path);
  }
  const int64_t max_label = labels.max().item<int64_t>();
  if (max_label > 9) {
    throw InputError(label_path, "label " + std::to_string(max_label) + " outside 0..9");
  }
  ImageSet set;
  set.images = images.unsqueeze(1).contiguous();
  set.labels = labels.to(at::kLong);
  set.name = "fashion-mnist/" + std::string(prefix == "train" ? "train" : "test");
  return set;
}

ImageSet take_first(const ImageSet& set, int64_t n) {
  const int64_t total = set.images.size(0);
  if (n <= 0 || n >= total) return set;
  return ImageSet{set.images.narrow(0, 0, n), set.labels.narrow(0, 0, n), set.name};
}

}  // namespace semaim::data
