// Reading PyTorch `torch.save` checkpoints (zip format, torch >= 1.6) without Python: the zip through
// LibTorch's PyTorchStreamReader and data.pkl through a small pickle interpreter that never executes
// anything.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "semaim/io/safetensors.h"

namespace semaim::io {

struct PickleValue;
using PicklePtr = std::shared_ptr<PickleValue>;
struct PthStorage;  // a storage record of the archive (defined in pth.cpp)

// One unpickled value. Containers hold shared pointers because the pickle memo shares objects (a dict is
// memoized first and filled afterwards). Globals other than the few torch.save needs are never imported:
// calling or building them yields an opaque kObject.
struct PickleValue {
  enum class Kind {
    kNone,
    kBool,
    kInt,
    kFloat,
    kString,
    kBytes,
    kTuple,
    kList,
    kSet,
    kDict,
    kTensor,
    kGlobal,
    kObject,
    kStorage
  };
  Kind kind = Kind::kNone;
  bool boolean = false;
  int64_t integer = 0;
  double real = 0.0;
  // kString / kBytes: the contents; kGlobal: "module.name"; kObject: "module.name" of what built it.
  std::string text;
  // kTuple / kList / kSet: the elements; kObject: the constructor arguments, then every BUILD state.
  std::vector<PicklePtr> items;
  // kDict: (key, value) in insertion order; a repeated string or int key replaces the value, as in Python.
  std::vector<std::pair<PicklePtr, PicklePtr>> entries;
  // kTensor: the tensor (contiguous CPU) once read; kStorage / kTensor: where its bytes are.
  at::Tensor tensor;
  std::shared_ptr<PthStorage> storage;
  int64_t storage_offset = 0;
  std::vector<int64_t> sizes, strides;

  PickleValue() = default;
  PickleValue(const PickleValue&) = delete;
  PickleValue& operator=(const PickleValue&) = delete;
  // Releases nested containers iteratively, so deeply nested input cannot exhaust the stack.
  ~PickleValue();

  // kDict: the value under a string key, or nullptr.
  const PickleValue* get(const std::string& key) const;
  // kDict: sets key to value with Python's replace-on-repeat semantics.
  void set(PicklePtr key, PicklePtr value);

 private:
  std::unordered_map<std::string, size_t> index_;  // "s:<text>" / "i:<int>" -> position in entries
};

// True when the file starts with the zip signature (torch.save's format since torch 1.6).
bool is_pth_file(const std::string& path);

// The whole unpickled object of a torch.save file, every tensor read. Any fault (not a zip, no data.pkl,
// truncated, unknown opcode, stack underflow, missing storage record, a view outside its storage,
// big-endian data) -> InputError naming the file and the fault.
PicklePtr load_pth(const std::string& path);

// The tensors of the state dict under `key` in file order as contiguous CPU tensors, non-tensor entries
// skipped. key "" takes the first dict among `model`, `state_dict`, `module`, else the top-level dict when it
// holds tensors. Only the chosen dict's storages are read (optimizer state is left on disk).
NamedTensors load_pth_state_dict(const std::string& path, const std::string& key = "");

}  // namespace semaim::io
