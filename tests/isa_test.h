// Runs a kernel test once per instruction-set clone (core/cpu_isa.h): parameterise the suite on
// kEveryIsa and open each test with STOCH_USE_ISA_OR_SKIP(isa). A clone this CPU cannot run is
// skipped with the reason in the test's output, so a log shows which clones were checked.
#pragma once

#include <gtest/gtest.h>

#include <optional>
#include <ostream>
#include <string>

#include "core/cpu_isa.h"

namespace stoch {

// Test names and failure lines show the clone's name, not its bytes.
inline void PrintTo(CpuIsa isa, std::ostream* os) {
  *os << cpu_isa_name(isa);
}

}  // namespace stoch

namespace stoch::test {

inline const CpuIsa kEveryIsa[] = {CpuIsa::kPortable, CpuIsa::kAvx2, CpuIsa::kAvx512};

// Caps the kernels at one clone for the guard's life.
class IsaCap {
 public:
  explicit IsaCap(CpuIsa isa) { set_cpu_isa_cap(isa); }
  ~IsaCap() { set_cpu_isa_cap(std::nullopt); }
  IsaCap(const IsaCap&) = delete;
  IsaCap& operator=(const IsaCap&) = delete;
};

inline std::string isa_test_name(CpuIsa isa) {
  return cpu_isa_name(isa);
}

}  // namespace stoch::test

// Skips the test when this CPU cannot run `isa`'s clone (or STOCH_CPU_ISA caps it lower);
// otherwise caps the kernels at it until the test ends.
#define STOCH_USE_ISA_OR_SKIP(isa)                                                                \
  if ((isa) > ::stoch::cpu_isa_supported())                                                       \
    GTEST_SKIP() << "this CPU cannot run the " << ::stoch::cpu_isa_name(isa)                      \
                 << " clone (it supports " << ::stoch::cpu_isa_name(::stoch::cpu_isa_supported()) \
                 << ")";                                                                          \
  ::stoch::test::IsaCap isa_cap_guard_(isa);                                                      \
  if (::stoch::cpu_isa() != (isa))                                                                \
  GTEST_SKIP() << "STOCH_CPU_ISA caps the kernels below " << ::stoch::cpu_isa_name(isa)
