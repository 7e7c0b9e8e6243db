#include "cli/checks.h"

#include <cerrno>
#include <cstdlib>

#include "core/strings.h"

namespace stoch::cli {
namespace {

// ">= 1", "in [1, 64]" or "in (0, 0.5]": shown by --help after the type, and in errors.
template <typename T>
std::string bounds(T lo, T hi, bool unbounded_above, bool above_lo = false) {
  if (unbounded_above) return stoch::str(above_lo ? "> " : ">= ", lo);
  return stoch::str("in ", above_lo ? "(" : "[", lo, ", ", hi, "]");
}

}  // namespace

CLI::Validator integer_in(int64_t lo, int64_t hi) {
  const bool open = hi == std::numeric_limits<int64_t>::max();
  const std::string range =
      lo == std::numeric_limits<int64_t>::min() && open ? "" : bounds(lo, hi, open);
  const std::string want = "expected an integer" + (range.empty() ? "" : " " + range);
  return CLI::Validator(
      [=](std::string& s) -> std::string {
        errno = 0;
        char* end = nullptr;
        const long long v = std::strtoll(s.c_str(), &end, 10);
        const bool whole = !s.empty() && end == s.c_str() + s.size() && errno == 0;
        if (whole && v >= lo && v <= hi) return "";
        return stoch::str(want, ", got \"", s, "\"");
      },
      range, "integer range");
}

CLI::Validator number_in(double lo, double hi, bool above_lo) {
  const bool open = hi == std::numeric_limits<double>::infinity();
  const std::string range = bounds(lo, hi, open, above_lo);
  return CLI::Validator(
      [=](std::string& s) -> std::string {
        errno = 0;
        char* end = nullptr;
        const double v = std::strtod(s.c_str(), &end);
        const bool whole = !s.empty() && end == s.c_str() + s.size() && errno == 0;
        if (whole && (above_lo ? v > lo : v >= lo) && v <= hi) return "";
        return stoch::str("expected a number ", range, ", got \"", s, "\"");
      },
      range, "number range");
}

}  // namespace stoch::cli
