#include "train/memory_estimate.h"

#include <algorithm>
#include <fstream>
#include <sstream>

#include "core/cuda_memory.h"
#include "core/errors.h"
#include "core/strings.h"

namespace stoch::train {

double MemoryEstimate::total() const {
  double sum = 0;
  for (const auto& p : parts) sum += p.bytes;
  return sum;
}

std::string format_bytes(double bytes) {
  const char* units[] = {"B", "KB", "MB", "GB", "TB", "PB"};
  int u = 0;
  while (bytes >= 1000 && u < 5) {
    bytes /= 1000;
    ++u;
  }
  return stoch::str(format_number(bytes, 3), " ", units[u]);
}

std::string MemoryEstimate::describe() const {
  std::string s;
  for (const auto& p : parts) {
    if (p.bytes <= 0) continue;
    s += stoch::str(s.empty() ? "" : " + ", p.what, " ", format_bytes(p.bytes));
  }
  return s + " = " + format_bytes(total());
}

void add_training_state(MemoryEstimate& e, double parameters, double optimizer_share,
                        const std::string& size_keys) {
  e.add("parameters", 4 * parameters, size_keys);
  e.add("gradients", 4 * parameters, size_keys);
  e.add("optimizer state", 8 * parameters * optimizer_share, size_keys);
}

namespace {

// What to lower, for a refusal: the keys of the largest part.
std::string lower_advice(const MemoryEstimate& e) {
  const MemoryEstimate::Part* largest = nullptr;
  for (const auto& p : e.parts)
    if (!largest || p.bytes > largest->bytes) largest = &p;
  if (!largest || largest->lower.empty()) return "lower the run's batch or the model's size";
  return stoch::str("the largest part is ", largest->what, ": lower ", largest->lower);
}

// A number from a one-value file (cgroup v2), or -1 ("max", missing, unreadable).
double read_number(const std::string& path) {
  std::ifstream in(path);
  std::string word;
  if (!(in >> word) || word == "max") return -1;
  try {
    return std::stod(word);
  } catch (const std::exception&) {
    return -1;
  }
}

}  // namespace

double available_memory_bytes() {
  double available = -1;
  std::ifstream in("/proc/meminfo");
  std::string key;
  double kb = 0;
  std::string unit;
  while (in >> key >> kb >> unit)
    if (key == "MemAvailable:") available = kb * 1024;
  const double limit = read_number("/sys/fs/cgroup/memory.max");
  const double used = read_number("/sys/fs/cgroup/memory.current");
  if (limit > 0 && used >= 0) {
    const double room = std::max(0.0, limit - used);
    available = available < 0 ? room : std::min(available, room);
  }
  return available;
}

MemoryRoom memory_room(const c10::Device& device) {
  MemoryRoom room;
  room.host = available_memory_bytes();
  // cuda without an index is the current device, which is 0 until something sets another.
  if (device.is_cuda())
    room.device = cuda_free_memory_bytes(device.has_index() ? device.index() : 0);
  return room;
}

void check_memory_fits(const MemoryEstimate& per_rank, int64_t ranks_here,
                       const c10::Device& device, const MemoryRoom& room) {
  MemoryEstimate host, on_device;
  for (const auto& p : per_rank.parts)
    (device.is_cpu() || p.on_host ? host : on_device).parts.push_back(p);
  const double need = host.total() * static_cast<double>(ranks_here);
  if (room.host >= 0 && need > room.host)
    throw InputError(stoch::str(
        "the run needs at least ", format_bytes(need), " of memory",
        ranks_here > 1 ? stoch::str(" (", ranks_here, " ranks on this machine, each ") : " (",
        host.describe(), ") but ", format_bytes(room.host), " is available; ", lower_advice(host)));
  if (room.device >= 0 && on_device.total() > room.device)
    throw InputError(stoch::str("the run needs at least ", format_bytes(on_device.total()),
                                " of memory on ", device.str(), " (", on_device.describe(),
                                ") but ", format_bytes(room.device), " is free there; ",
                                lower_advice(on_device), ", or use more GPUs with dist.shard"));
}

void check_memory_fits(const MemoryEstimate& per_rank, int64_t ranks_here,
                       const c10::Device& device) {
  check_memory_fits(per_rank, ranks_here, device, memory_room(device));
}

}  // namespace stoch::train
