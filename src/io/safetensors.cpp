// Safetensors writer and hardened reader (format: https://huggingface.co/docs/safetensors; the reference
// reader is the `safetensors` Rust crate behind Python's safetensors.torch.load_file).
#include "semaim/io/safetensors.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ATen/ATen.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <set>
#include <system_error>

#include <nlohmann/json.hpp>

#include "semaim/core/errors.h"
#include "semaim/io/atomic_file.h"

namespace semaim::io {
namespace {

static_assert(std::endian::native == std::endian::little,
              "safetensors stores little-endian bytes; a big-endian host would need byte swapping");

// A bogus length must not make us allocate gigabytes before reading a single byte (the Rust crate also
// caps the header at 100 MB).
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;
constexpr const char* kMetadataKey = "__metadata__";

struct DtypeInfo {
  const char* name;
  at::ScalarType type;
  uint64_t itemsize;
};
constexpr DtypeInfo kDtypes[] = {
    {"F64", at::kDouble, 8}, {"F32", at::kFloat, 4}, {"F16", at::kHalf, 2},  {"BF16", at::kBFloat16, 2},
    {"I64", at::kLong, 8},   {"I32", at::kInt, 4},   {"I16", at::kShort, 2}, {"I8", at::kChar, 1},
    {"U8", at::kByte, 1},    {"BOOL", at::kBool, 1},
};

const DtypeInfo* find_dtype(const std::string& name) {
  for (const auto& d : kDtypes)
    if (name == d.name) return &d;
  return nullptr;
}

std::string errno_text(int err) { return std::error_code(err, std::generic_category()).message(); }

// One validated header entry.
struct Entry {
  std::string name;
  const DtypeInfo* dtype;
  std::vector<int64_t> shape;
  uint64_t begin, end;
};

struct Header {
  std::vector<Entry> entries;  // sorted by data offset
  std::map<std::string, std::string> metadata;
  uint64_t data_start;  // absolute file offset of the data section
  uint64_t data_size;
};

// An open, read-only regular file; closes itself.
class InFile {
 public:
  explicit InFile(const std::string& path) : path_(path) {
    fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) throw InputError(path, "cannot open: " + errno_text(errno));
    struct stat st {};
    if (::fstat(fd_, &st) != 0) {
      int err = errno;
      ::close(fd_);
      throw InputError(path, "cannot stat: " + errno_text(err));
    }
    if (!S_ISREG(st.st_mode)) {
      ::close(fd_);
      throw InputError(path, "not a regular file");
    }
    size_ = static_cast<uint64_t>(st.st_size);
  }
  InFile(const InFile&) = delete;
  InFile& operator=(const InFile&) = delete;
  ~InFile() { ::close(fd_); }
  uint64_t size() const { return size_; }

  // Reads exactly n bytes at offset; a short read means the file shrank under us.
  void read_at(uint64_t offset, void* dst, uint64_t n, const std::string& what) const {
    auto* out = static_cast<char*>(dst);
    while (n > 0) {
      size_t chunk = static_cast<size_t>(std::min<uint64_t>(n, 1ull << 30));
      ssize_t r = ::pread(fd_, out, chunk, static_cast<off_t>(offset));
      if (r < 0) {
        if (errno == EINTR) continue;
        throw InputError(path_, "read error in " + what + ": " + errno_text(errno));
      }
      if (r == 0) throw InputError(path_, "truncated: unexpected end of file in " + what);
      out += r;
      offset += static_cast<uint64_t>(r);
      n -= static_cast<uint64_t>(r);
    }
  }

 private:
  std::string path_;
  int fd_ = -1;
  uint64_t size_ = 0;
};

// Thrown from inside the JSON parser callback; turned into an InputError with the file name.
struct HeaderFault {
  std::string fault;
};

// Parses the header JSON. The callback rejects nesting deeper than the format allows (a hostile
// "[[[[..." stays cheap) and duplicate keys, which nlohmann would otherwise silently overwrite.
nlohmann::json parse_header_json(const std::string& path, const std::string& text) {
  std::vector<std::set<std::string>> open_objects;
  std::string metadata_key = kMetadataKey;
  auto cb = [&](int depth, nlohmann::json::parse_event_t ev, nlohmann::json& parsed) {
    using E = nlohmann::json::parse_event_t;
    if ((ev == E::object_start || ev == E::array_start) && depth > 2)
      throw HeaderFault{"header JSON nests deeper than the format allows"};
    if (ev == E::object_start) open_objects.emplace_back();
    if (ev == E::object_end && !open_objects.empty()) open_objects.pop_back();
    if (ev == E::key && !open_objects.empty()) {
      const auto& key = parsed.get_ref<const std::string&>();
      if (!open_objects.back().insert(key).second) {
        throw HeaderFault{depth == 1 ? "duplicate tensor name '" + key + "' in header"
                                     : "duplicate key '" + key + "' in header"};
      }
    }
    return true;
  };
  try {
    return nlohmann::json::parse(text.begin(), text.end(), cb, /*allow_exceptions=*/true);
  } catch (const HeaderFault& f) {
    throw InputError(path, f.fault);
  } catch (const nlohmann::json::exception& e) {
    throw InputError(path, std::string("header is not valid JSON: ") + e.what());
  }
}

uint64_t to_u64(const nlohmann::json& v, const std::string& path, const std::string& what) {
  if (v.is_number_unsigned()) return v.get<uint64_t>();
  if (v.is_number_integer() && v.get<int64_t>() >= 0) return static_cast<uint64_t>(v.get<int64_t>());
  throw InputError(path, what + " must be a non-negative integer");
}

Entry parse_entry(const std::string& path, const std::string& name, const nlohmann::json& v,
                  uint64_t data_size) {
  const std::string where = "tensor '" + name + "'";
  if (!v.is_object()) throw InputError(path, where + ": header entry is not an object");
  for (const char* field : {"dtype", "shape", "data_offsets"})
    if (!v.contains(field)) throw InputError(path, where + ": missing field '" + field + "'");
  Entry e;
  e.name = name;
  if (!v["dtype"].is_string()) throw InputError(path, where + ": dtype is not a string");
  const auto& dt = v["dtype"].get_ref<const std::string&>();
  e.dtype = find_dtype(dt);
  if (e.dtype == nullptr) {
    throw InputError(path, where + ": unsupported dtype '" + dt +
                               "' (supported: F64 F32 F16 BF16 I64 I32 I16 I8 U8 BOOL)");
  }
  if (!v["shape"].is_array()) throw InputError(path, where + ": shape is not an array");
  // numel must fit int64 for torch; the byte count is bounded by the file size below.
  uint64_t numel = 1, nonzero_product = 1;
  for (const auto& d : v["shape"]) {
    uint64_t dim = to_u64(d, path, where + ": shape entry");
    if (dim > static_cast<uint64_t>(INT64_MAX) ||
        (dim != 0 && __builtin_mul_overflow(nonzero_product, dim, &nonzero_product)) ||
        nonzero_product > static_cast<uint64_t>(INT64_MAX)) {
      throw InputError(path, where + ": shape is too large");
    }
    numel *= dim;  // cannot overflow: |numel| <= nonzero_product or 0
    e.shape.push_back(static_cast<int64_t>(dim));
  }
  const auto& off = v["data_offsets"];
  if (!off.is_array() || off.size() != 2)
    throw InputError(path, where + ": data_offsets must be [begin, end]");
  e.begin = to_u64(off[0], path, where + ": data_offsets begin");
  e.end = to_u64(off[1], path, where + ": data_offsets end");
  if (e.end < e.begin) {
    throw InputError(path, where + ": data_offsets end " + std::to_string(e.end) + " is before begin " +
                               std::to_string(e.begin));
  }
  if (e.end > data_size) {
    throw InputError(path, "truncated: " + where + " ends at byte " + std::to_string(e.end) +
                               " but the data section has " + std::to_string(data_size));
  }
  const uint64_t expected = numel * e.dtype->itemsize;  // numel <= INT64_MAX, itemsize <= 8: fits
  if (e.end - e.begin != expected) {
    throw InputError(path, where + ": data_offsets span " + std::to_string(e.end - e.begin) +
                               " bytes but dtype " + dt + " and its shape need " + std::to_string(expected));
  }
  return e;
}

Header read_header(const std::string& path, const InFile& file) {
  if (file.size() < 8) {
    throw InputError(
        path, "truncated: " + std::to_string(file.size()) + " bytes, shorter than the 8-byte header length");
  }
  unsigned char len_bytes[8];
  file.read_at(0, len_bytes, 8, "header length");
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | len_bytes[i];
  if (n > kMaxHeaderBytes) {
    throw InputError(path, "header length " + std::to_string(n) + " exceeds the " +
                               std::to_string(kMaxHeaderBytes) + "-byte limit (not a safetensors file?)");
  }
  if (n > file.size() - 8) {
    throw InputError(path, "truncated: header length " + std::to_string(n) + " but only " +
                               std::to_string(file.size() - 8) + " bytes follow it");
  }
  if (n < 2) throw InputError(path, "header length " + std::to_string(n) + " is too small for a JSON object");
  std::string text(n, '\0');
  file.read_at(8, text.data(), n, "header");
  if (text[0] != '{') throw InputError(path, "header does not start with '{' (not a safetensors file?)");
  nlohmann::json j = parse_header_json(path, text);
  if (!j.is_object()) throw InputError(path, "header is not a JSON object");

  Header h;
  h.data_start = 8 + n;
  h.data_size = file.size() - h.data_start;
  for (const auto& [key, value] : j.items()) {
    if (key == kMetadataKey) {
      if (value.is_null()) continue;
      if (!value.is_object()) throw InputError(path, "__metadata__ is not an object");
      for (const auto& [mk, mv] : value.items()) {
        if (!mv.is_string()) throw InputError(path, "__metadata__ value of '" + mk + "' is not a string");
        h.metadata[mk] = mv.get<std::string>();
      }
      continue;
    }
    h.entries.push_back(parse_entry(path, key, value, h.data_size));
  }
  std::sort(h.entries.begin(), h.entries.end(), [](const Entry& a, const Entry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  // Two tensors sharing bytes would alias after loading; zero-size entries occupy nothing.
  const Entry* prev = nullptr;
  for (const auto& e : h.entries) {
    if (e.begin == e.end) continue;
    if (prev != nullptr && e.begin < prev->end) {
      throw InputError(path, "tensors '" + prev->name + "' and '" + e.name + "' overlap (bytes " +
                                 std::to_string(e.begin) + ".." + std::to_string(prev->end) + ")");
    }
    prev = &e;
  }
  return h;
}

}  // namespace

std::string safetensors_dtype_name(at::ScalarType dtype) {
  for (const auto& d : kDtypes)
    if (d.type == dtype) return d.name;
  return "";
}

void save_safetensors(const std::string& path, const NamedTensors& tensors,
                      const std::map<std::string, std::string>& metadata) {
  // ordered_json keeps the caller's order in the header, which makes files easy to eyeball.
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) {
    auto& m = header[kMetadataKey] = nlohmann::ordered_json::object();
    for (const auto& [k, v] : metadata) m[k] = v;
  }
  std::set<std::string> seen;
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    if (name == kMetadataKey) throw InputError(path, "tensor name '__metadata__' is reserved");
    if (!seen.insert(name).second) throw InputError(path, "duplicate tensor name '" + name + "'");
    if (!t.defined()) throw InputError(path, "tensor '" + name + "' is undefined");
    std::string dt = safetensors_dtype_name(t.scalar_type());
    if (dt.empty()) {
      throw InputError(path, "tensor '" + name + "' has dtype " +
                                 std::string(c10::toString(t.scalar_type())) +
                                 ", which safetensors output does not support");
    }
    const uint64_t nbytes = static_cast<uint64_t>(t.numel()) * t.element_size();
    auto& e = header[name] = nlohmann::ordered_json::object();
    e["dtype"] = dt;
    e["shape"] = t.sizes().vec();
    e["data_offsets"] = {offset, offset + nbytes};
    offset += nbytes;
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const nlohmann::json::exception& ex) {  // e.g. a name or metadata value that is not UTF-8
    throw InputError(path, std::string("cannot encode the header: ") + ex.what());
  }
  text.append((8 - text.size() % 8) % 8, ' ');
  unsigned char len_bytes[8];
  for (int i = 0; i < 8; ++i)
    len_bytes[i] = static_cast<unsigned char>(static_cast<uint64_t>(text.size()) >> (8 * i));

  atomic_write_stream(path, [&](std::ostream& os) {
    os.write(reinterpret_cast<const char*>(len_bytes), 8);
    os.write(text.data(), static_cast<std::streamsize>(text.size()));
    // One contiguous CPU copy at a time keeps the extra memory to the largest single tensor.
    for (const auto& [name, t] : tensors) {
      at::Tensor c = t.detach().to(at::kCPU).contiguous();
      os.write(static_cast<const char*>(c.const_data_ptr()), static_cast<std::streamsize>(c.nbytes()));
    }
  });
}

SafetensorsFile load_safetensors(const std::string& path) {
  InFile file(path);
  Header h = read_header(path, file);
  SafetensorsFile out;
  out.metadata = std::move(h.metadata);
  out.tensors.reserve(h.entries.size());
  for (const auto& e : h.entries) {
    at::Tensor t = at::empty(e.shape, at::TensorOptions().dtype(e.dtype->type).device(at::kCPU));
    const uint64_t nbytes = e.end - e.begin;
    if (nbytes > 0)
      file.read_at(h.data_start + e.begin, t.mutable_data_ptr(), nbytes, "tensor '" + e.name + "'");
    if (e.dtype->type == at::kBool) {
      // Any byte but 0/1 is an invalid C++ bool: reject instead of handing torch undefined values.
      const auto* b = static_cast<const unsigned char*>(t.const_data_ptr());
      for (uint64_t i = 0; i < nbytes; ++i)
        if (b[i] > 1)
          throw InputError(path,
                           "tensor '" + e.name + "': BOOL byte " + std::to_string(b[i]) + " is not 0 or 1");
    }
    out.tensors.emplace_back(e.name, std::move(t));
  }
  return out;
}

std::map<std::string, std::vector<int64_t>> read_safetensors_shapes(const std::string& path) {
  InFile file(path);
  Header h = read_header(path, file);
  std::map<std::string, std::vector<int64_t>> shapes;
  for (auto& e : h.entries) shapes.emplace(e.name, std::move(e.shape));
  return shapes;
}

}  // namespace semaim::io
