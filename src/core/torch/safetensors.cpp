#include "core/torch/safetensors.h"

#include <fcntl.h>
#include <torch/torch.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/errors.h"
#include "core/strings.h"

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

void write_file_durably(const std::string& path, const std::string& bytes) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    throw std::runtime_error(stoch::str(path, ": cannot open for writing: ", std::strerror(errno)));
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t w = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (w < 0) {
      if (errno == EINTR) continue;
      const int e = errno;
      ::close(fd);
      throw std::runtime_error(stoch::str(path, ": write failed: ", std::strerror(e)));
    }
    done += static_cast<size_t>(w);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0)
    throw std::runtime_error(stoch::str(path, ": fsync/close failed: ", std::strerror(errno)));
}

void write_safetensors(const std::string& path, const TensorList& tensors,
                       const std::map<std::string, std::string>& metadata) {
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::vector<at::Tensor> cpu;
  cpu.reserve(tensors.size());
  size_t offset = 0;
  for (const auto& [name, t] : tensors) {
    at::Tensor c = t.detach().to(at::kCPU).contiguous();
    const size_t nbytes = c.numel() * c.element_size();
    header[name] = {{"dtype", dtype_name(c.scalar_type())},
                    {"shape", c.sizes().vec()},
                    {"data_offsets", {offset, offset + nbytes}}};
    offset += nbytes;
    cpu.push_back(std::move(c));
  }
  std::string h = header.dump();
  h.resize((h.size() + 7) / 8 * 8, ' ');  // the format pads the header to 8 bytes with spaces
  std::string bytes;
  bytes.reserve(8 + h.size() + offset);
  const uint64_t n = h.size();
  for (int i = 0; i < 8; ++i) bytes.push_back(static_cast<char>((n >> (8 * i)) & 0xFF));
  bytes += h;
  for (const auto& c : cpu)
    bytes.append(static_cast<const char*>(c.data_ptr()), c.numel() * c.element_size());
  write_file_durably(path, bytes);
}

TensorList read_safetensors(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(stoch::str(path, ": cannot open"));
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (bytes.size() < 8) throw InputError(stoch::str(path, ": not a safetensors file (too short)"));
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= uint64_t(static_cast<unsigned char>(bytes[i])) << (8 * i);
  if (n > bytes.size() - 8)
    throw InputError(stoch::str(path, ": safetensors header length past end of file"));
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(bytes.substr(8, n));
  } catch (const std::exception& e) {
    throw InputError(stoch::str(path, ": bad safetensors header: ", e.what()));
  }
  const size_t base = 8 + n, data_size = bytes.size() - base;
  std::vector<std::pair<size_t, std::string>> order;
  for (auto it = header.begin(); it != header.end(); ++it)
    if (it.key() != "__metadata__")
      order.emplace_back(it.value()["data_offsets"][0].get<size_t>(), it.key());
  std::sort(order.begin(), order.end());
  TensorList out;
  for (const auto& [start, name] : order) {
    const auto& e = header[name];
    at::ScalarType type = at::kFloat;
    bool known = false;
    const std::string dt = e.at("dtype").get<std::string>();
    for (const auto& [s, nm] : dtype_names())
      if (dt == nm) type = s, known = true;
    if (!known) throw InputError(stoch::str(path, ": tensor ", name, ": unsupported dtype ", dt));
    const auto shape = e.at("shape").get<std::vector<int64_t>>();
    const size_t end = e.at("data_offsets")[1].get<size_t>();
    at::Tensor t = torch::empty(shape, torch::TensorOptions().dtype(type));
    if (end < start || end > data_size || end - start != t.nbytes())
      throw InputError(
          stoch::str(path, ": tensor ", name, ": data offsets do not match its shape"));
    std::memcpy(t.data_ptr(), bytes.data() + base + start, end - start);
    out.emplace_back(name, std::move(t));
  }
  return out;
}

}  // namespace stoch
