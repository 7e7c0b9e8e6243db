#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <typeinfo>

#include "core/errors.h"
#include "core/log.h"
#include "core/whole_file.h"
#include "fuzz_target.h"

namespace fs = std::filesystem;

namespace stoch::fuzz {

const std::string kPartSeparator("\n\x01\x02\n", 4);

std::vector<std::string> split_parts(const std::string& input, size_t max_parts) {
  std::vector<std::string> parts;
  size_t at = 0;
  while (parts.size() + 1 < max_parts) {
    const size_t next = input.find(kPartSeparator, at);
    if (next == std::string::npos) break;
    parts.push_back(input.substr(at, next - at));
    at = next + kPartSeparator.size();
  }
  parts.push_back(input.substr(at));
  parts.resize(max_parts);
  return parts;
}

std::string join_parts(const std::vector<std::string>& parts) {
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) out += (i ? kPartSeparator : "") + parts[i];
  return out;
}

namespace {

std::string& scratch_root() {
  static std::string root;
  return root;
}

void remove_scratch() {
  std::error_code ec;
  if (!scratch_root().empty()) fs::remove_all(scratch_root(), ec);
}

}  // namespace

std::string scratch_dir() {
  std::string& root = scratch_root();
  if (root.empty()) {
    const bool shm = fs::is_directory("/dev/shm");
    root = (shm ? std::string("/dev/shm") : fs::temp_directory_path().string()) + "/stoch-fuzz-" +
           std::to_string(::getpid());
    std::atexit(remove_scratch);
  }
  std::error_code ec;
  fs::remove_all(root, ec);
  fs::create_directories(root);
  return root;
}

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string read_file(const std::string& path) {
  return read_whole_file(path).value_or("");
}

}  // namespace stoch::fuzz

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  stoch::log::init(
      "",
      stoch::log::Level::kError);  // warnings about skipped input would flood the fuzzer's output
  if (const char* dir = std::getenv("STOCH_FUZZ_SEEDS")) {
    fs::create_directories(dir);
    const auto seeds = stoch::fuzz::fuzz_seeds();
    for (size_t i = 0; i < seeds.size(); ++i)
      stoch::fuzz::write_file(std::string(dir) + "/seed-" + std::to_string(i), seeds[i]);
    std::fprintf(stderr, "wrote %zu seeds to %s\n", seeds.size(), dir);
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    stoch::fuzz::fuzz_one(std::string(reinterpret_cast<const char*>(data), size));
  } catch (const stoch::InputError&) {
    // The contract: bad bytes are refused with a message.
  } catch (const std::exception& e) {
    std::fprintf(stderr, "finding: %s escaped instead of InputError: %s\n", typeid(e).name(),
                 e.what());
    std::abort();
  }
  return 0;
}
