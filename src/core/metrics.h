// RUN_DIR/metrics.jsonl: one JSON object a line, {"step": N, "split": "...", "<name>": value}.
// Each line is flushed as written, so a killed run keeps every metric up to its death.
#pragma once

#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <string>

namespace stoch {

// Named values of one step: what tasks, hooks and evaluations report.
using Metrics = std::map<std::string, double>;

class TensorBoardWriter;

class MetricsWriter {
 public:
  // With a non-empty tb_dir, every value also goes to a TensorBoard event file there, tagged
  // by its metric name.
  explicit MetricsWriter(const std::string& path, const std::string& tb_dir = "");
  ~MetricsWriter();
  MetricsWriter(const MetricsWriter&) = delete;
  MetricsWriter& operator=(const MetricsWriter&) = delete;

  void write(int64_t step, const std::string& split, const std::map<std::string, double>& values);

  // A resumed run continues after `step`: TensorBoard drops what was logged past it before.
  void restart_after(int64_t step);

  // Makes every line so far durable (fsync), metrics and TensorBoard events: called before a
  // checkpoint, so that after a power loss no checkpoint outlives the lines of its steps.
  void sync();

 private:
  std::string path_;
  std::FILE* f_ = nullptr;
  std::unique_ptr<TensorBoardWriter> tb_;
};

// Rewrites the file keeping only lines whose step is <= `step` (a resumed run re-logs the rest).
// Warns when the file is missing past step 0, or loses lines other than a torn last one; throws
// InputError when the path is not a file, ReadError when it cannot be read.
void truncate_metrics_after(const std::string& path, int64_t step);

}  // namespace stoch
