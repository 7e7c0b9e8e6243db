// RUN_DIR/metrics.jsonl: one JSON object a line, {"step": N, "split": "...", "<name>": value}.
// Each line is flushed as written, so a killed run keeps every metric up to its death.
#pragma once

#include <cstdint>
#include <cstdio>
#include <map>
#include <string>

namespace stoch {

class MetricsWriter {
 public:
  explicit MetricsWriter(const std::string& path);
  ~MetricsWriter();
  MetricsWriter(const MetricsWriter&) = delete;
  MetricsWriter& operator=(const MetricsWriter&) = delete;

  void write(int64_t step, const std::string& split, const std::map<std::string, double>& values);

 private:
  std::FILE* f_ = nullptr;
};

// Rewrites the file keeping only lines whose step is <= `step` (a resumed run re-logs the rest).
void truncate_metrics_after(const std::string& path, int64_t step);

}  // namespace stoch
