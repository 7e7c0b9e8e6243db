#include "core/cpu_isa.h"

#include <atomic>
#include <cstdlib>
#include <fstream>

#include "core/errors.h"

namespace stoch {
namespace {

constexpr const char* kEnvVar = "STOCH_CPU_ISA";

// -1: no cap; otherwise a CpuIsa.
std::atomic<int> test_cap{-1};

// STOCH_CPU_ISA, parsed once: kernels ask for the clone at every call.
struct EnvCap {
  std::optional<CpuIsa> cap;
  std::string error;  // non-empty when the value names no clone
};

const EnvCap& env_cap() {
  static const EnvCap parsed = [] {
    EnvCap e;
    const char* raw = std::getenv(kEnvVar);
    if (!raw || !*raw) return e;
    e.cap = parse_cpu_isa(raw);
    if (!e.cap) e.error = std::string(kEnvVar) + "=" + raw + ": expected portable, avx2 or avx512";
    return e;
  }();
  return parsed;
}

}  // namespace

const char* cpu_isa_name(CpuIsa isa) {
  switch (isa) {
    case CpuIsa::kAvx512:
      return "avx512";
    case CpuIsa::kAvx2:
      return "avx2";
    case CpuIsa::kPortable:
      break;
  }
  return "portable";
}

std::optional<CpuIsa> parse_cpu_isa(const std::string& name) {
  for (CpuIsa isa : {CpuIsa::kPortable, CpuIsa::kAvx2, CpuIsa::kAvx512})
    if (name == cpu_isa_name(isa)) return isa;
  return std::nullopt;
}

CpuIsa cpu_isa_supported() {
#ifdef STOCH_X86_CLONES
  static const CpuIsa best = [] {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
        __builtin_cpu_supports("avx512dq"))
      return CpuIsa::kAvx512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return CpuIsa::kAvx2;
    return CpuIsa::kPortable;
  }();
  return best;
#else
  return CpuIsa::kPortable;
#endif
}

CpuIsa cpu_isa() {
  auto isa = cpu_isa_supported();
  const EnvCap& env = env_cap();
  if (!env.error.empty()) throw InputError(env.error);  // every time: no clone is safe to guess
  if (env.cap && *env.cap < isa) isa = *env.cap;
  const int t = test_cap.load(std::memory_order_relaxed);
  if (t >= 0 && static_cast<CpuIsa>(t) < isa) isa = static_cast<CpuIsa>(t);
  return isa;
}

void set_cpu_isa_cap(std::optional<CpuIsa> cap) {
  test_cap.store(cap ? static_cast<int>(*cap) : -1, std::memory_order_relaxed);
}

std::vector<CpuIsa> cpu_isas_runnable() {
  std::vector<CpuIsa> out;
  for (CpuIsa isa : {CpuIsa::kPortable, CpuIsa::kAvx2, CpuIsa::kAvx512})
    if (isa <= cpu_isa_supported()) out.push_back(isa);
  return out;
}

std::string cpu_model_name() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) != 0) continue;
    const auto colon = line.find(':');
    if (colon == std::string::npos) break;
    const auto start = line.find_first_not_of(' ', colon + 1);
    return start == std::string::npos ? "unknown CPU" : line.substr(start);
  }
  return "unknown CPU";
}

std::string cpu_isa_summary() {
  return cpu_model_name() + " (kernels: " + cpu_isa_name(cpu_isa()) + "; CPU supports " +
         cpu_isa_name(cpu_isa_supported()) + ")";
}

}  // namespace stoch
