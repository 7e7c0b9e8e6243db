// Which vector instruction set stoch's hand-written CPU kernels use, and how they dispatch to it.
//
// Every kernel is one always-inline body compiled three times, for AVX-512, AVX2 + FMA and the
// x86-64 baseline (SSE2), each clone with tiles sized for its registers; `dispatch_isa` calls the
// clone for `cpu_isa()`. That is the best set the CPU has, capped by the environment variable
// STOCH_CPU_ISA=portable|avx2|avx512 (and, in tests, by set_cpu_isa_cap), so that every clone a
// machine can run is tested and benchmarked on it. Off x86-64 (or under clang) there is one
// portable build. No LibTorch here.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace stoch {

enum class CpuIsa { kPortable = 0, kAvx2 = 1, kAvx512 = 2 };

// "portable", "avx2", "avx512".
const char* cpu_isa_name(CpuIsa isa);
std::optional<CpuIsa> parse_cpu_isa(const std::string& name);

// The best set this CPU (and this build) supports: AVX-512 needs AVX-512F, AVX2 also needs FMA.
CpuIsa cpu_isa_supported();

// The set the kernels use: cpu_isa_supported(), capped by STOCH_CPU_ISA and set_cpu_isa_cap.
// Throws InputError (naming the variable and the values it takes) when STOCH_CPU_ISA is set to
// anything else; the CLI calls it first thing, so a typo stops the program before any work.
CpuIsa cpu_isa();

// Caps cpu_isa() for this process (tests run each clone in turn); nullopt lifts the cap.
void set_cpu_isa_cap(std::optional<CpuIsa> cap);

// Every set cpu_isa() can take on this CPU, portable first.
std::vector<CpuIsa> cpu_isas_runnable();

// The CPU's model name (from /proc/cpuinfo; "unknown CPU" elsewhere), for benchmark headers.
std::string cpu_model_name();

// One line for logs and benchmarks: "AMD EPYC (kernels: avx2; CPU supports avx2)".
std::string cpu_isa_summary();

}  // namespace stoch

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define STOCH_X86_CLONES 1
#define STOCH_TARGET_AVX512 __attribute__((target("avx512f,avx512vl,avx512dq,avx2,fma,bmi2")))
#define STOCH_TARGET_AVX2 __attribute__((target("avx2,fma,bmi2")))
#else
#define STOCH_TARGET_AVX512
#define STOCH_TARGET_AVX2
#endif

namespace stoch {

// Tags naming a clone at compile time; kernels specialise their tiles on them. kFloatLanes: the
// floats in one of the clone's vector registers (SSE2's 4, AVX2's 8, AVX-512's 16).
struct IsaPortable {
  static constexpr CpuIsa kIsa = CpuIsa::kPortable;
  static constexpr int kFloatLanes = 4;
};
struct IsaAvx2 {
  static constexpr CpuIsa kIsa = CpuIsa::kAvx2;
  static constexpr int kFloatLanes = 8;
};
struct IsaAvx512 {
  static constexpr CpuIsa kIsa = CpuIsa::kAvx512;
  static constexpr int kFloatLanes = 16;
};

namespace detail {
template <class Kernel, class... Args>
STOCH_TARGET_AVX512 auto run_avx512(Args... args) {
  return Kernel::template run<IsaAvx512>(args...);
}
template <class Kernel, class... Args>
STOCH_TARGET_AVX2 auto run_avx2(Args... args) {
  return Kernel::template run<IsaAvx2>(args...);
}
template <class Kernel, class... Args>
auto run_portable(Args... args) {
  return Kernel::template run<IsaPortable>(args...);
}
}  // namespace detail

// Kernel::run<Isa>(args...) for the clone cpu_isa() names. Kernel::run must be a static
// always-inline template, so that its body (and what it inlines) is compiled with that clone's
// instructions.
template <class Kernel, class... Args>
auto dispatch_isa(Args... args) {
#ifdef STOCH_X86_CLONES
  switch (cpu_isa()) {
    case CpuIsa::kAvx512:
      return detail::run_avx512<Kernel>(args...);
    case CpuIsa::kAvx2:
      return detail::run_avx2<Kernel>(args...);
    case CpuIsa::kPortable:
      break;
  }
#endif
  return detail::run_portable<Kernel>(args...);
}

}  // namespace stoch

#define STOCH_ALWAYS_INLINE inline __attribute__((always_inline))
