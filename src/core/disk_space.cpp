#include "core/disk_space.h"

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <system_error>

#include <nlohmann/json.hpp>

#include "core/errors.h"

namespace stoch {

std::string free_space_note(const std::string& path) {
  namespace fs = std::filesystem;
  fs::path p = path.empty() ? fs::path(".") : fs::path(path);
  std::error_code ec;
  while (!fs::exists(p, ec) && p.has_parent_path() && p.parent_path() != p) p = p.parent_path();
  const auto info = fs::space(p, ec);
  if (ec) return "free space unknown";
  const double bytes = static_cast<double>(info.available);
  const char* units[] = {"bytes", "KiB", "MiB", "GiB", "TiB"};
  double v = bytes;
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  char buf[64];
  if (u == 0)
    std::snprintf(buf, sizeof buf, "%.0f bytes", v);
  else
    std::snprintf(buf, sizeof buf, "%.1f %s", v, units[u]);
  return std::string(buf) + " free on its file system";
}

std::string failed_write_message(const std::string& path, const char* what, int err) {
  return path + ": " + what + " failed: " + std::strerror(err) + " (" + free_space_note(path) + ")";
}

void noting_free_space(const std::string& path, const std::function<void()>& write) {
  try {
    write();
  } catch (const InputError&) {
    throw;  // bad input is not a full disk, and keeps its exit code
  } catch (const nlohmann::json::exception&) {
    throw;  // nor is a value JSON cannot hold
  } catch (const std::exception& e) {
    throw std::runtime_error(std::string(e.what()) + " (" + free_space_note(path) + ")");
  }
}

}  // namespace stoch
