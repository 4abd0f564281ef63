// CPUID leaves per the Intel SDM: leaf 7 subleaf 0 EDX bit 22 = AMX-BF16; leaf 7 subleaf 1 EAX bit 5 =
// AVX512_BF16; leaf 1 ECX bit 27 = OSXSAVE, then XCR0 says which register states the OS saves.
#include "semaim/core/cpu_features.h"

#include <cstdint>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

namespace semaim::core {

std::string CpuFeatures::describe() const {
  if (avx512_bf16 && amx_bf16) return "AVX-512 BF16, AMX-BF16";
  if (avx512_bf16) return "AVX-512 BF16";
  if (amx_bf16) return "AMX-BF16";
  return "no AVX-512 BF16 or AMX-BF16";
}

CpuFeatures cpu_features() {
  CpuFeatures f;
#if defined(__x86_64__) || defined(__i386__)
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (__get_cpuid_max(0, nullptr) < 7) return f;
  __cpuid(1, a, b, c, d);
  if (!(c & (1u << 27))) return f;  // no OSXSAVE: XCR0 cannot be read, no extended state is enabled
  uint32_t xcr0_lo = 0, xcr0_hi = 0;
  __asm__ volatile("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
  const uint64_t xcr0 = (static_cast<uint64_t>(xcr0_hi) << 32) | xcr0_lo;
  const bool os_avx512 = (xcr0 & 0xE6) == 0xE6;               // SSE, AVX, opmask, ZMM_Hi256, Hi16_ZMM
  const bool os_amx = (xcr0 & (3ull << 17)) == (3ull << 17);  // XTILECFG, XTILEDATA
  __cpuid_count(7, 0, a, b, c, d);
  const bool avx512f = b & (1u << 16);
  f.amx_bf16 = os_amx && (d & (1u << 22));
  const unsigned max_sub = a;
  if (max_sub >= 1) {
    __cpuid_count(7, 1, a, b, c, d);
    f.avx512_bf16 = os_avx512 && avx512f && (a & (1u << 5));
  }
#endif
  return f;
}

}  // namespace semaim::core
