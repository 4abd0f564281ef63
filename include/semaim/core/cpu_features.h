// What this CPU offers for reduced-precision matrix products, read from CPUID (and the OS's enabled register
// state), so `precision: auto` can choose bf16 only where the GEMMs have native bf16 instructions.
#pragma once
#include <string>

namespace semaim::core {

struct CpuFeatures {
  bool avx512_bf16 = false;  // AVX-512 BF16 (VDPBF16PS), with the OS saving the AVX-512 state
  bool amx_bf16 = false;     // AMX-BF16 tiles, with the OS offering the tile state
  bool native_bf16_matmul() const { return avx512_bf16 || amx_bf16; }
  // "AVX-512 BF16, AMX-BF16" / "AVX-512 BF16" / "no AVX-512 BF16 or AMX-BF16"
  std::string describe() const;
};

// Read once per call; cheap (a few CPUID instructions). All false on non-x86 builds.
CpuFeatures cpu_features();

}  // namespace semaim::core
