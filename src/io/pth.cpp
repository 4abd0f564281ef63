// torch.save zip archives read in C++ (torch/serialization.py _save/_load; the pickle opcodes of pickletools,
// protocols 2-5): data.pkl is interpreted with tensors rebuilt from the archive's data/<key> records.
#include "semaim/io/pth.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>
#include <caffe2/serialize/inline_container.h>

#include <cstdint>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "semaim/core/errors.h"

namespace semaim::io {

// A typed storage: `numel` elements of `dtype` at the start of the archive record `record`.
struct PthStorage {
  std::string record;
  at::ScalarType dtype = at::kByte;
  int64_t numel = 0;
};

namespace {

using Kind = PickleValue::Kind;
constexpr size_t kMaxPickleBytes = size_t{1} << 30;
constexpr size_t kMaxDims = 64;
constexpr int kMaxCallDepth = 8;

PicklePtr make(Kind kind) {
  auto v = std::make_shared<PickleValue>();
  v->kind = kind;
  return v;
}

PicklePtr make_text(Kind kind, std::string_view text) {
  auto v = make(kind);
  v->text = std::string(text);
  return v;
}

PicklePtr make_int(int64_t i) {
  auto v = make(Kind::kInt);
  v->integer = i;
  return v;
}

// An object the interpreter does not model: what built it and its arguments, nothing executed.
PicklePtr make_opaque(const std::string& built_by, PicklePtr args) {
  auto v = make_text(Kind::kObject, built_by);
  if (args) v->items.push_back(std::move(args));
  return v;
}

std::optional<at::ScalarType> storage_dtype(const std::string& cls) {
  static const std::map<std::string, at::ScalarType> kTypes = {
      {"torch.FloatStorage", at::kFloat},       {"torch.HalfStorage", at::kHalf},
      {"torch.BFloat16Storage", at::kBFloat16}, {"torch.DoubleStorage", at::kDouble},
      {"torch.LongStorage", at::kLong},         {"torch.IntStorage", at::kInt},
      {"torch.ShortStorage", at::kShort},       {"torch.CharStorage", at::kChar},
      {"torch.ByteStorage", at::kByte},         {"torch.BoolStorage", at::kBool},
      {"torch.UntypedStorage", at::kByte}};
  auto it = kTypes.find(cls);
  return it == kTypes.end() ? std::nullopt : std::optional<at::ScalarType>(it->second);
}

std::string first_line(const char* what) {
  std::string s(what);
  return s.substr(0, s.find('\n'));
}

// The zip archive and its records, every reader call turned into InputError naming the file.
class PthArchive {
 public:
  explicit PthArchive(std::string path) : path_(std::move(path)) {
    std::ifstream in(path_, std::ios::binary);
    if (!in) fail("cannot open the file");
    if (!is_pth_file(path_)) {
      char first = 0;
      in.get(first);
      fail(static_cast<unsigned char>(first) == 0x80
               ? "a legacy (before torch 1.6) torch.save file or a bare pickle: re-save it with torch.save"
               : "not a torch.save checkpoint (no zip signature)");
    }
    guarded([&] { reader_ = std::make_unique<caffe2::serialize::PyTorchStreamReader>(path_); });
    if (has("byteorder")) {
      const at::Tensor order = bytes("byteorder");
      const std::string s(static_cast<const char*>(order.data_ptr()), static_cast<size_t>(order.numel()));
      if (s != "little") fail("byte order '" + s + "' is not supported (only little-endian archives)");
    }
  }

  [[noreturn]] void fail(const std::string& fault) const { throw InputError(path_, fault); }

  std::string pickle() {
    if (!has("data.pkl")) fail("no data.pkl record (a zip, but not a torch.save archive)");
    if (size("data.pkl") > kMaxPickleBytes) fail("data.pkl is larger than 1 GiB");
    const at::Tensor t = bytes("data.pkl");
    return {static_cast<const char*>(t.data_ptr()), static_cast<size_t>(t.numel())};
  }

  // The storage `key` holding numel elements of dtype; its record must exist and be large enough.
  std::shared_ptr<PthStorage> storage(const std::string& key, at::ScalarType dtype, int64_t numel) {
    auto s = std::make_shared<PthStorage>(PthStorage{"data/" + key, dtype, numel});
    if (!has(s->record)) fail("missing storage record " + s->record);
    const size_t item = c10::elementSize(dtype);
    if (numel < 0 || static_cast<uint64_t>(numel) > size(s->record) / item)
      fail("storage record " + s->record + " holds " + std::to_string(size(s->record)) +
           " bytes, fewer than its " + std::to_string(numel) + " elements of " + c10::toString(dtype));
    return s;
  }

  // Reads a tensor value's bytes (once per record) and sets v.tensor to a contiguous copy of its view.
  void materialize(PickleValue& v) {
    if (v.tensor.defined()) return;
    const PthStorage& s = *v.storage;
    auto it = cache_.find(s.record);
    if (it == cache_.end()) it = cache_.emplace(s.record, bytes(s.record)).first;
    const int64_t nbytes = s.numel * static_cast<int64_t>(c10::elementSize(s.dtype));
    const at::Tensor raw = it->second.narrow(0, 0, nbytes);
    if (s.dtype == at::kBool && raw.gt(1).any().item<bool>())
      fail("bool storage " + s.record + " holds bytes other than 0 and 1");
    guarded(
        [&] { v.tensor = raw.view(s.dtype).as_strided(v.sizes, v.strides, v.storage_offset).contiguous(); });
  }

 private:
  template <typename F>
  void guarded(F&& f) const {
    try {
      f();
    } catch (const c10::Error& e) {
      fail(first_line(e.what_without_backtrace()));
    }
  }
  bool has(const std::string& record) {
    bool found = false;
    guarded([&] { found = reader_->hasRecord(record); });
    return found;
  }
  size_t size(const std::string& record) {
    size_t n = 0;
    guarded([&] { n = reader_->getRecordSize(record); });
    return n;
  }
  // The whole record. -> (bytes,) uint8
  at::Tensor bytes(const std::string& record) {
    const size_t n = size(record);
    at::Tensor t;
    guarded([&] {
      t = at::empty({static_cast<int64_t>(n)}, at::kByte);
      if (n > 0) reader_->getRecord(record, t.data_ptr(), n);
    });
    return t;
  }

  std::string path_;
  std::unique_ptr<caffe2::serialize::PyTorchStreamReader> reader_;
  std::unordered_map<std::string, at::Tensor> cache_;
};

// A stack machine over data.pkl (pickle protocols 2-5) that builds PickleValues and never imports anything.
class Unpickler {
 public:
  Unpickler(std::string_view data, PthArchive& archive, bool eager)
      : data_(data), archive_(archive), eager_(eager) {}

  PicklePtr run() {
    while (pos_ < data_.size()) {
      op_pos_ = pos_;
      const uint8_t op = static_cast<uint8_t>(data_[pos_++]);
      if (op == '.') {
        if (stack_.size() != 1 || !marks_.empty())
          fail("STOP with " + std::to_string(stack_.size()) + " values");
        return stack_.back();
      }
      if (!scalar_op(op) && !container_op(op) && !stack_op(op) && !object_op(op)) {
        char hex[8];
        std::snprintf(hex, sizeof(hex), "0x%02x", op);
        fail(std::string("unknown or unsupported pickle opcode ") + hex);
      }
    }
    op_pos_ = pos_;
    fail("truncated pickle (no STOP opcode)");
  }

 private:
  [[noreturn]] void fail(const std::string& fault) const {
    archive_.fail("data.pkl: " + fault + " at byte " + std::to_string(op_pos_));
  }
  std::string_view take(uint64_t n) {
    if (n > data_.size() - pos_) fail("truncated pickle (an argument runs past the end)");
    const std::string_view s = data_.substr(pos_, n);
    pos_ += n;
    return s;
  }
  uint64_t uint_le(size_t n) {
    const std::string_view s = take(n);
    uint64_t v = 0;
    for (size_t i = n; i-- > 0;) v = (v << 8) | static_cast<uint8_t>(s[i]);
    return v;
  }
  std::string_view line() {
    const size_t end = data_.find('\n', pos_);
    if (end == std::string_view::npos) fail("truncated pickle (GLOBAL without newline)");
    const size_t length = end - pos_;
    return take(length + 1).substr(0, length);
  }
  size_t base() const { return marks_.empty() ? 0 : marks_.back(); }
  PicklePtr& top() {
    if (stack_.size() <= base()) fail("stack underflow");
    return stack_.back();
  }
  PicklePtr pop() {
    PicklePtr v = std::move(top());
    stack_.pop_back();
    return v;
  }
  void push(PicklePtr v) { stack_.push_back(std::move(v)); }
  std::vector<PicklePtr> pop_mark() {
    if (marks_.empty()) fail("no MARK to pop to");
    std::vector<PicklePtr> items(
        std::make_move_iterator(stack_.begin() + static_cast<ptrdiff_t>(marks_.back())),
        std::make_move_iterator(stack_.end()));
    stack_.resize(marks_.back());
    marks_.pop_back();
    return items;
  }

  // Python int of n little-endian two's-complement bytes; beyond int64 an opaque builtins.int.
  PicklePtr long_value(size_t n) {
    const std::string_view s = take(n);
    if (n > 8) return make_opaque("builtins.int", nullptr);
    uint64_t v = 0;
    for (size_t i = n; i-- > 0;) v = (v << 8) | static_cast<uint8_t>(s[i]);
    if (n > 0 && n < 8 && (static_cast<uint8_t>(s[n - 1]) & 0x80)) v |= ~uint64_t{0} << (8 * n);
    return make_int(static_cast<int64_t>(v));
  }

  bool scalar_op(uint8_t op) {
    switch (op) {
      case 'N':  // NONE
        push(make(Kind::kNone));
        return true;
      case 0x88:
      case 0x89: {  // NEWTRUE, NEWFALSE
        auto v = make(Kind::kBool);
        v->boolean = op == 0x88;
        push(v);
        return true;
      }
      case 'J':  // BININT
        push(make_int(static_cast<int32_t>(uint_le(4))));
        return true;
      case 'K':  // BININT1
        push(make_int(static_cast<int64_t>(uint_le(1))));
        return true;
      case 'M':  // BININT2
        push(make_int(static_cast<int64_t>(uint_le(2))));
        return true;
      case 0x8a:  // LONG1
        push(long_value(uint_le(1)));
        return true;
      case 0x8b:  // LONG4
        push(long_value(uint_le(4)));
        return true;
      case 'G': {  // BINFLOAT: big-endian IEEE double
        const std::string_view s = take(8);
        uint64_t bits = 0;
        for (char c : s) bits = (bits << 8) | static_cast<uint8_t>(c);
        auto v = make(Kind::kFloat);
        std::memcpy(&v->real, &bits, sizeof(bits));
        push(v);
        return true;
      }
      case 0x8c:  // SHORT_BINUNICODE
        push(make_text(Kind::kString, take(uint_le(1))));
        return true;
      case 'X':  // BINUNICODE
        push(make_text(Kind::kString, take(uint_le(4))));
        return true;
      case 0x8d:  // BINUNICODE8
        push(make_text(Kind::kString, take(uint_le(8))));
        return true;
      case 'U':  // SHORT_BINSTRING
        push(make_text(Kind::kString, take(uint_le(1))));
        return true;
      case 'T':  // BINSTRING
        push(make_text(Kind::kString, take(static_cast<uint32_t>(static_cast<int32_t>(uint_le(4))))));
        return true;
      case 'C':  // SHORT_BINBYTES
        push(make_text(Kind::kBytes, take(uint_le(1))));
        return true;
      case 'B':  // BINBYTES
        push(make_text(Kind::kBytes, take(uint_le(4))));
        return true;
      case 0x8e:
      case 0x96:  // BINBYTES8, BYTEARRAY8
        push(make_text(Kind::kBytes, take(uint_le(8))));
        return true;
      default:
        return false;
    }
  }

  void append_to(PickleValue& target, std::vector<PicklePtr> items) {
    if (target.kind != Kind::kList && target.kind != Kind::kSet && target.kind != Kind::kObject)
      fail("APPEND/ADDITEMS to a value that is not a list or set");
    for (auto& v : items) target.items.push_back(std::move(v));
  }
  void set_items(PickleValue& target, std::vector<PicklePtr> kv) {
    if (kv.size() % 2) fail("SETITEMS/DICT with an odd number of values");
    if (target.kind == Kind::kObject) return;  // an opaque mapping: its contents are not modelled
    if (target.kind != Kind::kDict) fail("SETITEM on a value that is not a dict");
    for (size_t i = 0; i < kv.size(); i += 2) target.set(std::move(kv[i]), std::move(kv[i + 1]));
  }
  PicklePtr sequence(Kind kind, std::vector<PicklePtr> items) {
    auto v = make(kind);
    v->items = std::move(items);
    return v;
  }

  bool container_op(uint8_t op) {
    switch (op) {
      case ')':  // EMPTY_TUPLE
        push(make(Kind::kTuple));
        return true;
      case 't':  // TUPLE
        push(sequence(Kind::kTuple, pop_mark()));
        return true;
      case 0x85:
      case 0x86:
      case 0x87: {  // TUPLE1..3
        std::vector<PicklePtr> items(op - 0x84);
        for (size_t i = items.size(); i-- > 0;) items[i] = pop();
        push(sequence(Kind::kTuple, std::move(items)));
        return true;
      }
      case ']':  // EMPTY_LIST
        push(make(Kind::kList));
        return true;
      case 'l':  // LIST
        push(sequence(Kind::kList, pop_mark()));
        return true;
      case 'a': {  // APPEND
        auto v = pop();
        append_to(*top(), {std::move(v)});
        return true;
      }
      case 'e': {  // APPENDS
        auto items = pop_mark();
        append_to(*top(), std::move(items));
        return true;
      }
      case 0x8f:  // EMPTY_SET
        push(make(Kind::kSet));
        return true;
      case 0x90: {  // ADDITEMS
        auto items = pop_mark();
        append_to(*top(), std::move(items));
        return true;
      }
      case 0x91:  // FROZENSET
        push(sequence(Kind::kSet, pop_mark()));
        return true;
      case '}':  // EMPTY_DICT
        push(make(Kind::kDict));
        return true;
      case 'd': {  // DICT
        auto d = make(Kind::kDict);
        set_items(*d, pop_mark());
        push(d);
        return true;
      }
      case 's': {  // SETITEM
        auto v = pop();
        auto k = pop();
        set_items(*top(), {std::move(k), std::move(v)});
        return true;
      }
      case 'u': {  // SETITEMS
        auto kv = pop_mark();
        set_items(*top(), std::move(kv));
        return true;
      }
      default:
        return false;
    }
  }

  bool stack_op(uint8_t op) {
    switch (op) {
      case '(':  // MARK
        marks_.push_back(stack_.size());
        return true;
      case '0':  // POP: a value, or else the mark
        if (stack_.size() > base())
          stack_.pop_back();
        else
          pop_mark();
        return true;
      case '1':  // POP_MARK
        pop_mark();
        return true;
      case '2':  // DUP
        push(top());
        return true;
      case 'q':  // BINPUT
        memo_[uint_le(1)] = top();
        return true;
      case 'r':  // LONG_BINPUT
        memo_[uint_le(4)] = top();
        return true;
      case 0x94:  // MEMOIZE
        memo_[memo_.size()] = top();
        return true;
      case 'h':
      case 'j': {  // BINGET, LONG_BINGET
        const uint64_t i = uint_le(op == 'h' ? 1 : 4);
        auto it = memo_.find(i);
        if (it == memo_.end()) fail("memo entry " + std::to_string(i) + " was never stored");
        push(it->second);
        return true;
      }
      default:
        return false;
    }
  }

  PicklePtr global(std::string_view module, std::string_view name) {
    return make_text(Kind::kGlobal, std::string(module) + "." + std::string(name));
  }
  // NEWOBJ / OBJ: a dict for OrderedDict, anything else opaque.
  PicklePtr new_object(const PicklePtr& cls, PicklePtr args) {
    if (cls->kind == Kind::kGlobal && cls->text == "collections.OrderedDict") return make(Kind::kDict);
    return make_opaque(cls->kind == Kind::kGlobal ? cls->text : "", std::move(args));
  }

  bool object_op(uint8_t op) {
    switch (op) {
      case 0x80:  // PROTO
        if (uint_le(1) > 5) fail("unsupported pickle protocol");
        return true;
      case 0x95:  // FRAME: only groups the bytes that follow
        uint_le(8);
        return true;
      case 'c': {  // GLOBAL
        const auto module = line();
        push(global(module, line()));
        return true;
      }
      case 0x93: {  // STACK_GLOBAL
        auto name = pop();
        auto module = pop();
        if (module->kind != Kind::kString || name->kind != Kind::kString) fail("STACK_GLOBAL of non-strings");
        push(global(module->text, name->text));
        return true;
      }
      case 'R': {  // REDUCE
        auto args = pop();
        auto f = pop();
        push(call(f, args, 0));
        return true;
      }
      case 0x81: {  // NEWOBJ
        auto args = pop();
        auto cls = pop();
        push(new_object(cls, std::move(args)));
        return true;
      }
      case 0x92: {  // NEWOBJ_EX
        pop();
        auto args = pop();
        auto cls = pop();
        push(new_object(cls, std::move(args)));
        return true;
      }
      case 'o': {  // OBJ
        auto items = pop_mark();
        if (items.empty()) fail("OBJ without a class");
        auto cls = items.front();
        push(new_object(cls, sequence(Kind::kTuple, {items.begin() + 1, items.end()})));
        return true;
      }
      case 'b': {  // BUILD: opaque objects keep their state, dicts and tensors ignore it (e.g. _metadata)
        auto state = pop();
        if (top()->kind == Kind::kObject) top()->items.push_back(std::move(state));
        return true;
      }
      case 'Q': {  // BINPERSID
        auto pid = pop();
        push(persistent(*pid));
        return true;
      }
      default:
        return false;
    }
  }

  // The callables torch.save's pickles use; every other global becomes an opaque object of its arguments.
  PicklePtr call(const PicklePtr& f, const PicklePtr& args, int depth) {
    if (args->kind != Kind::kTuple) fail("REDUCE arguments are not a tuple");
    if (f->kind != Kind::kGlobal || depth > kMaxCallDepth) return make_opaque("", args);
    const std::string& name = f->text;
    const auto& a = args->items;
    if (name == "collections.OrderedDict" && a.empty()) return make(Kind::kDict);
    if (name == "torch._utils._rebuild_tensor_v2" || name == "torch._utils._rebuild_tensor")
      return rebuild_tensor(*args, name);
    if ((name == "torch._utils._rebuild_parameter" || name == "torch._utils._rebuild_parameter_with_state") &&
        !a.empty() && a[0]->kind == Kind::kTensor)
      return a[0];
    if (name == "torch._tensor._rebuild_from_type_v2" && a.size() >= 3 && a[2]->kind == Kind::kTuple)
      return call(a[0], a[2], depth + 1);
    return make_opaque(name, args);
  }

  int64_t nonnegative_int(const PicklePtr& v, const char* what) {
    if (v->kind != Kind::kInt || v->integer < 0)
      fail(std::string("tensor ") + what + " is not a non-negative int");
    return v->integer;
  }
  std::vector<int64_t> int_tuple(const PicklePtr& v, const char* what) {
    if (v->kind != Kind::kTuple || v->items.size() > kMaxDims)
      fail(std::string("tensor ") + what + " is not a tuple");
    std::vector<int64_t> out;
    for (const auto& x : v->items) out.push_back(nonnegative_int(x, what));
    return out;
  }

  // _rebuild_tensor_v2(storage, offset, size, stride, ...): a view that must lie inside its storage.
  PicklePtr rebuild_tensor(const PickleValue& args, const std::string& name) {
    const auto& a = args.items;
    if (a.size() < 4) fail(name + " with fewer than 4 arguments");
    if (a[0]->kind != Kind::kStorage) return make_opaque(name, a[0]);  // a storage type semaim does not read
    auto v = make(Kind::kTensor);
    v->storage = a[0]->storage;
    v->storage_offset = nonnegative_int(a[1], "offset");
    v->sizes = int_tuple(a[2], "size");
    v->strides = int_tuple(a[3], "stride");
    if (v->sizes.size() != v->strides.size()) fail("tensor size and stride differ in length");
    int64_t last = v->storage_offset;
    bool empty = false, overflow = false;
    for (size_t i = 0; i < v->sizes.size(); ++i) {
      empty = empty || v->sizes[i] == 0;
      int64_t step = 0;
      overflow = overflow ||
                 __builtin_mul_overflow(v->sizes[i] > 0 ? v->sizes[i] - 1 : 0, v->strides[i], &step) ||
                 __builtin_add_overflow(last, step, &last);
    }
    if (!empty && (overflow || last >= v->storage->numel))
      fail("tensor view (offset " + std::to_string(v->storage_offset) + ", size " +
           c10::str(at::IntArrayRef(v->sizes)) + ") reaches past its storage " + v->storage->record + " of " +
           std::to_string(v->storage->numel) + " elements");
    if (eager_) archive_.materialize(*v);
    return v;
  }

  // ('storage', torch.<T>Storage, key, location, numel) -> the archive's storage record.
  PicklePtr persistent(const PickleValue& pid) {
    const auto& a = pid.items;
    if (pid.kind != Kind::kTuple || a.size() != 5 || a[0]->kind != Kind::kString || a[0]->text != "storage" ||
        a[1]->kind != Kind::kGlobal || a[2]->kind != Kind::kString || a[4]->kind != Kind::kInt)
      fail("persistent id is not a torch storage ('storage', type, key, location, numel)");
    const auto dtype = storage_dtype(a[1]->text);
    if (!dtype) return make_opaque(a[1]->text, nullptr);
    auto v = make(Kind::kStorage);
    v->storage = archive_.storage(a[2]->text, *dtype, a[4]->integer);
    return v;
  }

  std::string_view data_;
  size_t pos_ = 0, op_pos_ = 0;
  PthArchive& archive_;
  bool eager_;
  std::vector<PicklePtr> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint64_t, PicklePtr> memo_;
};

std::string string_keys(const PickleValue& dict) {
  std::string out;
  size_t shown = 0;
  for (const auto& [k, v] : dict.entries) {
    if (k->kind != Kind::kString) continue;
    if (shown++ == 8) return out + ", ...";
    out += (out.empty() ? "'" : ", '") + k->text + "'";
  }
  return out.empty() ? "none" : out;
}

bool holds_tensors(const PickleValue& dict) {
  for (const auto& [k, v] : dict.entries)
    if (v->kind == Kind::kTensor) return true;
  return false;
}

// The dict holding the weights, by load_pth_state_dict's rule.
const PickleValue& state_dict(const PickleValue& root, const std::string& key, const PthArchive& archive) {
  if (root.kind != Kind::kDict) archive.fail("the saved object is not a dict");
  if (!key.empty()) {
    const PickleValue* d = root.get(key);
    if (!d) archive.fail("no key '" + key + "' (top-level keys: " + string_keys(root) + ")");
    if (d->kind != Kind::kDict) archive.fail("'" + key + "' is not a dict of tensors");
    return *d;
  }
  for (const char* k : {"model", "state_dict", "module"})
    if (const PickleValue* d = root.get(k); d && d->kind == Kind::kDict) return *d;
  if (holds_tensors(root)) return root;
  archive.fail(
      "no state dict: none of 'model', 'state_dict', 'module' is a dict and the top level holds no "
      "tensors (top-level keys: " +
      string_keys(root) + ")");
}

}  // namespace

PickleValue::~PickleValue() {
  std::vector<PicklePtr> pending;
  auto take_children = [&pending](PickleValue& v) {
    for (auto& p : v.items) pending.push_back(std::move(p));
    for (auto& [k, x] : v.entries) {
      pending.push_back(std::move(k));
      pending.push_back(std::move(x));
    }
    v.items.clear();
    v.entries.clear();
  };
  take_children(*this);
  while (!pending.empty()) {
    PicklePtr p = std::move(pending.back());
    pending.pop_back();
    if (p && p.use_count() == 1) take_children(*p);
  }
}

namespace {
std::string index_key(const PickleValue& k) {
  if (k.kind == Kind::kString) return "s:" + k.text;
  if (k.kind == Kind::kInt) return "i:" + std::to_string(k.integer);
  if (k.kind == Kind::kBool) return "i:" + std::to_string(k.boolean ? 1 : 0);
  return "";
}
}  // namespace

const PickleValue* PickleValue::get(const std::string& key) const {
  auto it = index_.find("s:" + key);
  return it == index_.end() ? nullptr : entries[it->second].second.get();
}

void PickleValue::set(PicklePtr key, PicklePtr value) {
  const std::string ik = index_key(*key);
  if (!ik.empty()) {
    auto [it, fresh] = index_.emplace(ik, entries.size());
    if (!fresh) {
      entries[it->second].second = std::move(value);
      return;
    }
  }
  entries.emplace_back(std::move(key), std::move(value));
}

bool is_pth_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  char magic[4] = {};
  return in.read(magic, 4) && std::memcmp(magic, "PK\x03\x04", 4) == 0;
}

PicklePtr load_pth(const std::string& path) {
  PthArchive archive(path);
  const std::string pickle = archive.pickle();
  return Unpickler(pickle, archive, /*eager=*/true).run();
}

NamedTensors load_pth_state_dict(const std::string& path, const std::string& key) {
  PthArchive archive(path);
  const std::string pickle = archive.pickle();
  const PicklePtr root = Unpickler(pickle, archive, /*eager=*/false).run();
  const PickleValue& dict = state_dict(*root, key, archive);
  NamedTensors out;
  for (const auto& [k, v] : dict.entries) {
    if (k->kind != Kind::kString) continue;
    if (v->kind == Kind::kObject && v->text.starts_with("torch._utils._rebuild_tensor"))
      archive.fail("tensor '" + k->text + "' has a storage type semaim does not read" +
                   (v->items.empty() ? "" : " (" + v->items[0]->text + ")"));
    if (v->kind != Kind::kTensor) continue;
    archive.materialize(*v);
    out.emplace_back(k->text, v->tensor);
  }
  if (out.empty()) archive.fail("the state dict holds no tensors");
  return out;
}

}  // namespace semaim::io
