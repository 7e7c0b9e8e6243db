// What a run will hold in memory, estimated from its config before anything is allocated, so
// that a run that cannot fit is refused at once (exit 2, with the estimate) instead of being
// killed by the kernel or crawling in swap. Estimates count the large buffers only (weights,
// gradients, optimiser moments, the activations a backward pass keeps, data and replay
// buffers) and leave out LibTorch's own overheads: they are lower bounds, so a refusal is
// certain to be right and a run that passes may still need somewhat more.
#pragma once

#include <c10/core/Device.h>

#include <cstdint>
#include <string>
#include <vector>

namespace stoch::train {

class ExperimentConfig;

struct MemoryEstimate {
  struct Part {
    std::string what;
    double bytes;
    bool on_host;       // stays in host memory on CUDA runs too (data, replay buffers)
    std::string lower;  // the keys that make it smaller, for a refusal to name
  };
  std::vector<Part> parts;

  // Parts with the model (weights, gradients, activations) live on its device.
  void add(const std::string& what, double bytes, const std::string& lower, bool on_host = false) {
    parts.push_back({what, bytes, on_host, lower});
  }
  double total() const;
  std::string describe() const;  // "parameters 1.2 MB + ... = 3.4 GB"
};

// The keys that set a model's size, for a refusal to name.
inline constexpr const char* kLmSizeKeys = "model.n_layer, model.d_model or model.vocab_size";
inline constexpr const char* kValueNetSizeKeys =
    "model.hidden, model.channels, model.d_model or model.n_layer";

// The weights, their gradients and AdamW's two moments, in float32, for `parameters` of which
// each rank keeps `optimizer_share` of the moments (1/W when sharded); `size_keys` names the
// keys that set the model's size, for a refusal.
void add_training_state(MemoryEstimate& e, double parameters, double optimizer_share,
                        const std::string& size_keys);

// Bytes this process may still allocate: MemAvailable from /proc/meminfo, or the cgroup's
// limit less its usage where that is lower; negative when neither can be read.
double available_memory_bytes();

// What may still be allocated where a run's parts live, in bytes; negative where unknown.
struct MemoryRoom {
  double host = -1;    // available_memory_bytes()
  double device = -1;  // free on the run's CUDA device (unused on CPU runs)
};

// Asks the machine: the host's memory, and on CUDA the device's free memory from its driver.
MemoryRoom memory_room(const c10::Device& device);

// Throws InputError naming the estimate and what is available when `ranks_here` ranks of
// `per_rank` bytes cannot fit. On CPU every part counts against the host's memory. On CUDA the
// parts that stay on the host (data, replay buffers) count against it for every rank of this
// machine, and the rest against the free memory of the rank's own device (one GPU per rank).
void check_memory_fits(const MemoryEstimate& per_rank, int64_t ranks_here,
                       const c10::Device& device, const MemoryRoom& room);
void check_memory_fits(const MemoryEstimate& per_rank, int64_t ranks_here,
                       const c10::Device& device);

std::string format_bytes(double bytes);

}  // namespace stoch::train
