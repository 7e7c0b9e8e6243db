// The safetensors container (checkpoint tensors, Hugging Face weights for `stoch export` and
// GPT-2 import): the whole file's bytes, header and data.
#include <cstdlib>
#include <iostream>

#include "core/safetensors_layout.h"
#include "fuzz_target.h"

namespace stoch::fuzz {

void fuzz_one(const std::string& input) {
  const SafetensorsLayout layout = parse_safetensors_layout(input, "fuzz.safetensors");
  // What the LibTorch reader then does: copy each tensor's bytes out of the file.
  for (const auto& e : layout.entries) {
    if (layout.data_start + e.end > input.size()) {
      std::cerr << "finding: tensor " << e.name << " reaches past the file\n";
      std::abort();
    }
    volatile char sink = 0;
    for (uint64_t i = e.begin; i < e.end; i += 4096) sink = sink + input[layout.data_start + i];
  }
}

std::vector<std::string> fuzz_seeds() {
  const auto file = [](const std::vector<SafetensorsEntry>& entries,
                       const std::map<std::string, std::string>& metadata) {
    std::string bytes = safetensors_header(entries, metadata);
    for (const auto& e : entries) {
      size_t n = safetensors_dtype_size(e.dtype);
      for (const int64_t d : e.shape) n *= static_cast<size_t>(d);
      bytes += std::string(n, '\x3f');
    }
    return bytes;
  };
  return {
      file({{"wte.weight", "F32", {4, 3}}, {"ln_f.bias", "F32", {3}}}, {}),
      file({{"step", "I64", {}}, {"mask", "BOOL", {2, 2}}, {"h", "BF16", {0, 5}}},
           {{"format", "pt"}}),
      file({{"a", "U8", {7}},
            {"b", "F64", {1}},
            {"c", "I32", {2}},
            {"d", "F16", {3}},
            {"e", "U16", {1}},
            {"f", "U32", {1}},
            {"g", "U64", {1}},
            {"h", "I8", {1}},
            {"i", "I16", {1}}},
           {}),
      file({}, {}),
  };
}

}  // namespace stoch::fuzz
