// CRC-32C (Castagnoli), used for checkpoint checksums and TensorBoard record framing.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace stoch {

// Continues a CRC: crc32c(b, crc32c(a)) == crc32c(a + b). Start with crc = 0.
uint32_t crc32c(const void* data, size_t n, uint32_t crc = 0);

// CRC-32C of a whole file, streamed; throws InputError when it cannot be read.
uint32_t crc32c_file(const std::string& path);

// TensorBoard's masking of a CRC stored next to the data it covers.
inline uint32_t mask_crc32c(uint32_t c) {
  return ((c >> 15) | (c << 17)) + 0xA282EAD8u;
}

}  // namespace stoch
