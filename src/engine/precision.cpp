// precision: auto -> bf16 where the hardware multiplies bf16 natively (see the header).
#include "semaim/engine/precision.h"

#include <stdexcept>

#include "semaim/core/cpu_features.h"

#ifdef SEMAIM_WITH_CUDA
#include <ATen/cuda/CUDAContext.h>
#endif

namespace semaim::engine {

PrecisionChoice resolve_precision(const std::string& precision, const c10::Device& device) {
  if (precision == "fp32") return {false, "fp32 (configured)"};
  if (precision == "bf16") return {true, "bf16 autocast (configured)"};
  if (precision != "auto") throw std::logic_error("resolve_precision: unknown precision '" + precision + "'");
  if (device.is_cuda()) {
#ifdef SEMAIM_WITH_CUDA
    const auto* prop = at::cuda::getDeviceProperties(device.has_index() ? device.index() : 0);
    const std::string cc = std::to_string(prop->major) + "." + std::to_string(prop->minor);
    if (prop->major >= 8) return {true, "bf16 autocast (auto: CUDA compute capability " + cc + ")"};
    return {false, "fp32 (auto: CUDA compute capability " + cc + " has no native bf16)"};
#else
    return {false, "fp32 (auto: built without SEMAIM_WITH_CUDA, the device's bf16 support is unknown)"};
#endif
  }
  const core::CpuFeatures f = core::cpu_features();
  if (f.native_bf16_matmul()) return {true, "bf16 autocast (auto: CPU has " + f.describe() + ")"};
  return {false, "fp32 (auto: CPU has " + f.describe() + ")"};
}

}  // namespace semaim::engine
