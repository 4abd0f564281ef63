// C++ entry points of the fused ordering ops (include/semaim/ordering/kernels.h, ordering::order_from_keys):
// validate input with InputError, then call the op through the dispatcher (kernels/registration.cpp).
#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>

#include <string>
#include <tuple>

#include "kernels/ops.h"
#include "semaim/core/errors.h"
#include "semaim/ordering/kernels.h"
#include "semaim/ordering/ordering.h"

namespace semaim::ordering {
namespace {

constexpr const char* kWhere = "ordering.kernels";

std::string shape_str(const at::Tensor& t) {
  std::string s = "(";
  for (int64_t i = 0; i < t.dim(); ++i) s += (i ? ", " : "") + std::to_string(t.size(i));
  return s + ")";
}

void check_device(const at::Tensor& t, const char* what) {
  const auto type = t.device().type();
  if (type == c10::DeviceType::CPU) return;
#ifdef SEMAIM_WITH_CUDA
  if (type == c10::DeviceType::CUDA) return;
  const char* have = "CPU and CUDA";
#else
  const char* have = "CPU only (built without the CUDA kernels)";
#endif
  throw InputError(
      kWhere, std::string(what) + " on device " + t.device().str() + ": semaim's kernels run on " + have);
}

// The checks both token ops share: tokens (N, L+1, D) of a float type on a device the kernels run on, a gh x
// gw grid of L patches, noise (N, L) float32/float64 beside the tokens. -> L
int64_t check_token_args(const std::string& op, const at::Tensor& tokens, int64_t gh, int64_t gw,
                         const at::Tensor& noise) {
  if (!tokens.defined() || tokens.dim() != 3 || tokens.size(1) < 2 || tokens.size(2) < 1)
    throw InputError(kWhere, op + ": tokens must be (N, L+1, D) with L >= 1, got " +
                                 (tokens.defined() ? shape_str(tokens) : std::string("none")));
  const auto st = tokens.scalar_type();
  if (st != at::kFloat && st != at::kBFloat16 && st != at::kHalf && st != at::kDouble)
    throw InputError(kWhere, op + ": tokens must be float32, bfloat16, float16 or float64, got " +
                                 std::string(c10::toString(st)));
  const int64_t n = tokens.size(0), l = tokens.size(1) - 1;
  if (gh < 1 || gw < 1 || gh * gw != l)
    throw InputError(kWhere, op + ": the " + std::to_string(gh) + "x" + std::to_string(gw) +
                                 " grid does not match tokens " + shape_str(tokens) +
                                 " (need gh*gw = L = " + std::to_string(l) + ")");
  if (!noise.defined() || noise.dim() != 2 || noise.size(0) != n || noise.size(1) != l)
    throw InputError(kWhere, op + ": noise must be (N, L) = (" + std::to_string(n) + ", " +
                                 std::to_string(l) + "), got " +
                                 (noise.defined() ? shape_str(noise) : std::string("none")));
  if (noise.scalar_type() != at::kFloat && noise.scalar_type() != at::kDouble)
    throw InputError(kWhere, op + ": noise must be float32 or float64, got " +
                                 std::string(c10::toString(noise.scalar_type())));
  check_device(tokens, (op + ": tokens").c_str());
  if (noise.device() != tokens.device())
    throw InputError(
        kWhere, op + ": noise is on " + noise.device().str() + " but tokens are on " + tokens.device().str());
  return l;
}

}  // namespace

std::tuple<at::Tensor, at::Tensor, at::Tensor> semantic_order(const at::Tensor& tokens, int64_t gh,
                                                              int64_t gw, const std::string& source,
                                                              const at::Tensor& noise) {
  check_token_args("semantic_order", tokens, gh, gw, noise);
  if (source != "cls" && source != "gap")
    throw InputError(kWhere, "semantic_order: unknown similarity source '" + source + "' (valid: cls, gap)");
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("semaim::semantic_order", "")
                             .typed<std::tuple<at::Tensor, at::Tensor, at::Tensor>(
                                 const at::Tensor&, int64_t, int64_t, c10::string_view, const at::Tensor&)>();
  return op.call(tokens, gh, gw, c10::string_view(source), noise);
}

std::tuple<at::Tensor, at::Tensor> parts_order(const at::Tensor& tokens, int64_t gh, int64_t gw, int64_t k,
                                               int64_t iters, const at::Tensor& noise) {
  check_parts_args(check_token_args("parts_order", tokens, gh, gw, noise), k, iters);
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("semaim::parts_order", "")
                             .typed<std::tuple<at::Tensor, at::Tensor>(
                                 const at::Tensor&, int64_t, int64_t, int64_t, int64_t, const at::Tensor&)>();
  return op.call(tokens, gh, gw, k, iters, noise);
}

bool cuda_kernels_built() { return kernels::link_ops() && kernels::cuda_ops_built(); }

Permutation order_from_keys(const at::Tensor& keys) {
  if (!keys.defined() || keys.dim() != 2) {
    throw InputError("ordering",
                     "keys must be (N, L), got " + (keys.defined() ? shape_str(keys) : std::string("none")));
  }
  const auto st = keys.scalar_type();
  if (!at::isFloatingType(st) && !at::isIntegralType(st, /*includeBool=*/false)) {
    throw InputError("ordering",
                     "keys must be a real floating or integer type, got " + std::string(c10::toString(st)));
  }
  // CUDA keys in a build without the CUDA kernels keep working through the ATen composition.
  if (keys.is_cuda() && !cuda_kernels_built()) return order_from_keys_reference(keys);
  check_device(keys, "order_from_keys: keys");
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("semaim::order_from_keys", "")
                             .typed<std::tuple<at::Tensor, at::Tensor>(const at::Tensor&)>();
  auto [order, inverse] = op.call(keys);
  return {order, inverse};
}

}  // namespace semaim::ordering
