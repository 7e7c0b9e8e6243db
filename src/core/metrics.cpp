#include "core/metrics.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/strings.h"
#include "core/tensorboard.h"

namespace stoch {

MetricsWriter::MetricsWriter(const std::string& path, const std::string& tb_dir)
    : f_(std::fopen(path.c_str(), "a")) {
  if (!f_) throw std::runtime_error(str(path, ": cannot open for appending"));
  if (!tb_dir.empty()) tb_ = std::make_unique<TensorBoardWriter>(tb_dir);
}

MetricsWriter::~MetricsWriter() {
  if (f_) std::fclose(f_);
}

void MetricsWriter::write(int64_t step, const std::string& split,
                          const std::map<std::string, double>& values) {
  nlohmann::ordered_json j;
  j["step"] = step;
  j["split"] = split;
  for (const auto& [k, v] : values) {
    if (std::isfinite(v))
      j[k] = v;
    else
      j[k] = nullptr;  // JSON has no NaN or infinity
  }
  const std::string line = j.dump() + "\n";
  std::fwrite(line.data(), 1, line.size(), f_);
  std::fflush(f_);
  if (tb_)
    for (const auto& [k, v] : values) tb_->scalar(k, step, v);
}

void MetricsWriter::restart_after(int64_t step) {
  if (tb_) tb_->session_start(step + 1);
}

void truncate_metrics_after(const std::string& path, int64_t step) {
  std::ifstream in(path);
  if (!in) return;
  std::string kept, line;
  while (std::getline(in, line)) {
    try {
      const auto j = nlohmann::json::parse(line);
      if (j.value("step", int64_t{0}) <= step) kept += line + "\n";
    } catch (const std::exception&) {
      // A torn last line from a killed process: drop it.
    }
  }
  in.close();
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << kept;
  }
  std::filesystem::rename(tmp, path);
}

}  // namespace stoch
