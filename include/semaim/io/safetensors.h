// Safetensors read/write (https://huggingface.co/docs/safetensors), the checkpoint interchange format
// Python's `safetensors.torch.load_file` / `save_file` read and write.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace semaim::io {

using NamedTensors = std::vector<std::pair<std::string, at::Tensor>>;

// Layout: 8-byte little-endian header length n, n bytes of JSON
// {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {str: str}} padded with spaces to a
// multiple of 8, then the raw little-endian C-order bytes (offsets relative to the data start).
// Tensors are written in the given order as contiguous CPU copies (any device, any strides), atomically.
// dtypes: F64 F32 F16 BF16 I64 I32 I16 I8 U8 BOOL. An undefined tensor, an unsupported dtype, a duplicate
// or reserved name ("__metadata__") -> InputError naming `path`; an I/O failure -> RuntimeFailure.
void save_safetensors(const std::string& path, const NamedTensors& tensors,
                      const std::map<std::string, std::string>& metadata = {});

struct SafetensorsFile {
  NamedTensors tensors;  // owning, contiguous CPU tensors, in the file's data-offset order
  std::map<std::string, std::string> metadata;
};

// Reads and validates the whole file; each byte of tensor data is read once, straight into the tensor.
// Any fault (unreadable, too short, bogus header length, bad JSON, duplicate names, missing or malformed
// fields, unknown dtype, offsets outside the data section, truncation, size/shape mismatch, overlapping
// entries, non-string metadata, bool bytes other than 0/1) -> semaim::InputError naming the file and fault.
SafetensorsFile load_safetensors(const std::string& path);

// Tensor names -> shapes from the header alone (same header validation as load_safetensors, including
// that every tensor lies inside the file), without reading the tensor data.
std::map<std::string, std::vector<int64_t>> read_safetensors_shapes(const std::string& path);

// The safetensors dtype string of a torch dtype ("F32" for at::kFloat ...), or "" for a dtype semaim does
// not store (complex, quantized, unsigned > 8 bits ...).
std::string safetensors_dtype_name(at::ScalarType dtype);

}  // namespace semaim::io
