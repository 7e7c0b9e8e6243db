// The safetensors format (8-byte little-endian header length, JSON header, raw tensor bytes):
// stoch's checkpoint tensors, readable by Python's `safetensors` and Hugging Face tools.
#pragma once

#include <ATen/core/Tensor.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

namespace stoch {

using TensorList = std::vector<std::pair<std::string, at::Tensor>>;

// Writes tensors (moved to CPU, made contiguous) in list order; fsyncs the file.
void write_safetensors(const std::string& path, const TensorList& tensors,
                       const std::map<std::string, std::string>& metadata = {});

// Reads every tensor back onto the CPU; throws InputError naming the file on any malformation.
TensorList read_safetensors(const std::string& path);

}  // namespace stoch
