// `<section>.precision: fp32 | bf16 | auto`: bf16 autocast for the forward passes (fp32 master weights,
// optimizer and loss; norms and softmax statistics in fp32 as autocast's op lists keep them), chosen by
// `auto` where the matrix units have native bf16: CPUs with AVX-512 BF16 or AMX-BF16, CUDA devices of compute
// capability 8.0 or later.
#pragma once
#include <c10/core/Device.h>

#include <string>

namespace semaim::engine {

struct PrecisionChoice {
  bool bf16 = false;
  std::string reason;  // "bf16 (auto: CPU has AVX-512 BF16)", "fp32 (configured)", ...
};

// precision: "fp32" | "bf16" | "auto" (the schema's choices; anything else is a programming error).
PrecisionChoice resolve_precision(const std::string& precision, const c10::Device& device);

}  // namespace semaim::engine
