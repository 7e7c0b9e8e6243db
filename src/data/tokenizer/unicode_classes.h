// The character classes of GPT-2's pre-tokenisation regex: \p{L} (letter), \p{N} (number), \s
// (whitespace) and everything else, as sorted code point ranges generated from the Unicode
// database by scripts/gen_unicode_classes.py (unicode_classes.cpp names the version).
#pragma once

#include <cstddef>
#include <cstdint>

namespace stoch::data::unicode {

enum class CharClass : uint8_t { Other, Letter, Number, Space };

struct CodepointRange {
  uint32_t first, last;  // inclusive
  CharClass cls;
};

extern const char* const kUnicodeVersion;
extern const CodepointRange kClassRanges[];
extern const size_t kClassRangeCount;

// The class of a code point (binary search; callers keep their own ASCII table).
inline CharClass char_class(uint32_t cp) {
  size_t lo = 0, hi = kClassRangeCount;
  while (lo < hi) {
    const size_t mid = (lo + hi) / 2;
    if (kClassRanges[mid].last < cp)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo < kClassRangeCount && kClassRanges[lo].first <= cp ? kClassRanges[lo].cls
                                                               : CharClass::Other;
}

}  // namespace stoch::data::unicode
