// GPT-2's pre-tokenisation, written out by hand: the text is cut where the regex
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// would cut it, and BPE then runs inside each piece. Bytes that are not valid UTF-8 count as
// single "other" characters, so any byte string splits, and the pieces always cover it exactly.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace stoch::data {

// The end of the piece that starts at byte `begin` (< text.size()) of `text`.
size_t pre_token_end(std::string_view text, size_t begin);

// All pieces of `text`, in order (for tests and tools; encoders loop over pre_token_end).
std::vector<std::string_view> pre_tokenize(std::string_view text);

}  // namespace stoch::data
