// The safetensors container without tensors: the 8-byte little-endian header length, the JSON
// header, and where each tensor's bytes lie. Checked here, in plain C++, so that every byte of a
// file from outside is validated (and fuzzed) before LibTorch allocates anything for it.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace stoch {

struct SafetensorsEntry {
  std::string name;
  std::string dtype;            // the format's name: "F32", "BF16", "I64", ...
  std::vector<int64_t> shape;   // every dimension >= 0
  uint64_t begin = 0, end = 0;  // byte range relative to the data section
};

struct SafetensorsLayout {
  uint64_t data_start = 0;                      // 8 + header length
  std::vector<SafetensorsEntry> entries;        // in data order
  std::map<std::string, std::string> metadata;  // "__metadata__"
};

// Bytes per element of a dtype name, 0 for a name the format does not define (or stoch does not
// read: the 8-bit floats).
size_t safetensors_dtype_size(const std::string& dtype);

// Parses and checks a whole file's bytes as the format requires: a JSON object of entries with a
// known dtype, non-negative shape and offsets whose length is the shape's byte size; the entries
// tile the data section from its first byte to the file's end, without holes or overlaps.
// Throws InputError naming `path` and the entry at fault.
SafetensorsLayout parse_safetensors_layout(std::string_view file, const std::string& path);

// The header for tensors laid out in list order (8-byte length + JSON padded with spaces to a
// multiple of 8); `begin`/`end` of the entries are ignored and recomputed.
std::string safetensors_header(const std::vector<SafetensorsEntry>& entries,
                               const std::map<std::string, std::string>& metadata);

}  // namespace stoch
