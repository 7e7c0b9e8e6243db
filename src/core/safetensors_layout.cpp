#include "core/safetensors_layout.h"

#include <algorithm>
#include <limits>
#include <nlohmann/json.hpp>

#include "core/errors.h"
#include "core/strings.h"

namespace stoch {

size_t safetensors_dtype_size(const std::string& dtype) {
  static const std::map<std::string, size_t> sizes = {
      {"BOOL", 1}, {"U8", 1},  {"I8", 1},  {"F16", 2}, {"BF16", 2}, {"I16", 2}, {"U16", 2},
      {"F32", 4},  {"I32", 4}, {"U32", 4}, {"F64", 8}, {"I64", 8},  {"U64", 8}};
  const auto it = sizes.find(dtype);
  return it == sizes.end() ? 0 : it->second;
}

namespace {

// The product of the dimensions times the element size, or none when it overflows 64 bits.
bool byte_size(const std::vector<int64_t>& shape, size_t element, uint64_t& out) {
  uint64_t n = element;
  for (const int64_t d : shape) {
    const auto u = static_cast<uint64_t>(d);
    if (u != 0 && n > std::numeric_limits<uint64_t>::max() / u) return false;
    n *= u;
  }
  out = n;
  return true;
}

SafetensorsEntry read_entry(const std::string& name, const nlohmann::json& e,
                            const std::string& path) {
  const auto bad = [&](const std::string& what) {
    return InputError(stoch::str(path, ": tensor \"", name, "\": ", what));
  };
  if (!e.is_object()) throw bad("not a JSON object");
  SafetensorsEntry out;
  out.name = name;
  const auto dtype = e.find("dtype");
  if (dtype == e.end() || !dtype->is_string()) throw bad("\"dtype\" is not a string");
  out.dtype = dtype->get<std::string>();
  const size_t element = safetensors_dtype_size(out.dtype);
  if (element == 0) throw bad(stoch::str("unsupported dtype ", out.dtype));
  const auto shape = e.find("shape");
  if (shape == e.end() || !shape->is_array()) throw bad("\"shape\" is not a list");
  for (const auto& d : *shape) {
    if (!d.is_number_unsigned() && !(d.is_number_integer() && d.get<int64_t>() >= 0))
      throw bad("\"shape\" holds something other than a non-negative integer");
    if (d.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      throw bad("a dimension is too large");
    out.shape.push_back(d.get<int64_t>());
  }
  const auto offsets = e.find("data_offsets");
  if (offsets == e.end() || !offsets->is_array() || offsets->size() != 2 ||
      !(*offsets)[0].is_number_unsigned() || !(*offsets)[1].is_number_unsigned())
    throw bad("\"data_offsets\" is not a pair of non-negative integers");
  out.begin = (*offsets)[0].get<uint64_t>();
  out.end = (*offsets)[1].get<uint64_t>();
  uint64_t bytes = 0;
  if (!byte_size(out.shape, element, bytes) || out.end < out.begin || out.end - out.begin != bytes)
    throw bad("data offsets do not match its shape");
  return out;
}

}  // namespace

SafetensorsLayout parse_safetensors_layout(std::string_view file, const std::string& path) {
  if (file.size() < 8) throw InputError(stoch::str(path, ": not a safetensors file (too short)"));
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= uint64_t(static_cast<unsigned char>(file[i])) << (8 * i);
  if (n > file.size() - 8)
    throw InputError(stoch::str(path, ": safetensors header length past end of file"));
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(file.substr(8, n));
  } catch (const nlohmann::json::exception& e) {
    throw InputError(stoch::str(path, ": bad safetensors header: ", e.what()));
  }
  if (!header.is_object())
    throw InputError(stoch::str(path, ": the safetensors header is not a JSON object"));
  SafetensorsLayout layout;
  layout.data_start = 8 + n;
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") {
      if (!it->is_object())
        throw InputError(stoch::str(path, ": \"__metadata__\" is not a JSON object"));
      for (auto m = it->begin(); m != it->end(); ++m) {
        if (!m->is_string())
          throw InputError(
              stoch::str(path, ": \"__metadata__\" value \"", m.key(), "\" is not a string"));
        layout.metadata[m.key()] = m->get<std::string>();
      }
      continue;
    }
    layout.entries.push_back(read_entry(it.key(), *it, path));
  }
  std::sort(layout.entries.begin(), layout.entries.end(), [](const auto& a, const auto& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  // The entries must cover the data section exactly, as the format's own reader requires.
  uint64_t at = 0;
  for (const auto& e : layout.entries) {
    if (e.begin != at)
      throw InputError(stoch::str(path, ": tensor \"", e.name, "\": data offsets ",
                                  e.begin < at ? "overlap another tensor's" : "leave a hole"));
    at = e.end;
  }
  if (at != file.size() - layout.data_start)
    throw InputError(stoch::str(path, ": the data section is ", file.size() - layout.data_start,
                                " bytes but its tensors cover ", at));
  return layout;
}

std::string safetensors_header(const std::vector<SafetensorsEntry>& entries,
                               const std::map<std::string, std::string>& metadata) {
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const auto& e : entries) {
    uint64_t bytes = 0;
    byte_size(e.shape, safetensors_dtype_size(e.dtype), bytes);
    header[e.name] = {
        {"dtype", e.dtype}, {"shape", e.shape}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string h = header.dump();
  h.resize((h.size() + 7) / 8 * 8, ' ');  // the format pads the header to 8 bytes with spaces
  std::string out;
  const uint64_t n = h.size();
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((n >> (8 * i)) & 0xFF));
  return out + h;
}

}  // namespace stoch
