#include "core/torch/safetensors.h"

#include <torch/torch.h>

#include <cstring>

#include "core/errors.h"
#include "core/safetensors_layout.h"
#include "core/strings.h"
#include "core/whole_file.h"

namespace stoch {
namespace {

const std::vector<std::pair<at::ScalarType, const char*>>& dtype_names() {
  static const std::vector<std::pair<at::ScalarType, const char*>> names = {
      {at::kFloat, "F32"}, {at::kDouble, "F64"}, {at::kHalf, "F16"},   {at::kBFloat16, "BF16"},
      {at::kLong, "I64"},  {at::kInt, "I32"},    {at::kShort, "I16"},  {at::kChar, "I8"},
      {at::kByte, "U8"},   {at::kBool, "BOOL"},  {at::kUInt16, "U16"}, {at::kUInt32, "U32"},
      {at::kUInt64, "U64"}};
  return names;
}

const char* dtype_name(at::ScalarType t) {
  for (const auto& [s, n] : dtype_names())
    if (s == t) return n;
  throw std::runtime_error(stoch::str("safetensors: unsupported dtype ", c10::toString(t)));
}

}  // namespace

void write_safetensors(const std::string& path, const TensorList& tensors,
                       const std::map<std::string, std::string>& metadata) {
  std::vector<SafetensorsEntry> entries;
  std::vector<at::Tensor> cpu;
  cpu.reserve(tensors.size());
  size_t data_bytes = 0;
  for (const auto& [name, t] : tensors) {
    at::Tensor c = t.detach().to(at::kCPU).contiguous();
    entries.push_back({name, dtype_name(c.scalar_type()), c.sizes().vec()});
    data_bytes += c.nbytes();
    cpu.push_back(std::move(c));
  }
  std::string bytes = safetensors_header(entries, metadata);
  bytes.reserve(bytes.size() + data_bytes);
  for (const auto& c : cpu) bytes.append(static_cast<const char*>(c.data_ptr()), c.nbytes());
  write_file_durably(path, bytes);
}

TensorList read_safetensors(const std::string& path) {
  const auto file = read_whole_file(path);
  if (!file) throw InputError(stoch::str(path, ": cannot open"));
  const std::string& bytes = *file;
  const SafetensorsLayout layout = parse_safetensors_layout(bytes, path);
  TensorList out;
  for (const auto& e : layout.entries) {
    at::ScalarType type = at::kFloat;
    for (const auto& [s, nm] : dtype_names())
      if (e.dtype == nm) type = s;
    at::Tensor t = torch::empty(e.shape, torch::TensorOptions().dtype(type));
    if (e.end > e.begin)  // an empty tensor may have no storage to copy into
      std::memcpy(t.data_ptr(), bytes.data() + layout.data_start + e.begin, e.end - e.begin);
    out.emplace_back(e.name, std::move(t));
  }
  return out;
}

}  // namespace stoch
