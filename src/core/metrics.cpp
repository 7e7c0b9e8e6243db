#include "core/metrics.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string_view>

#include "core/disk_space.h"
#include "core/errors.h"
#include "core/log.h"
#include "core/strings.h"
#include "core/tensorboard.h"
#include "core/whole_file.h"

namespace stoch {

MetricsWriter::MetricsWriter(const std::string& path, const std::string& tb_dir)
    : path_(path), f_(std::fopen(path.c_str(), "a")) {
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
  // A lost line would leave a gap in the run's record: a full disk ends the run instead.
  if (std::fwrite(line.data(), 1, line.size(), f_) != line.size() || std::fflush(f_) != 0) {
    const int err = errno;
    std::clearerr(f_);
    throw std::runtime_error(failed_write_message(path_, "write", err));
  }
  if (tb_)
    for (const auto& [k, v] : values) tb_->scalar(k, step, v);
}

void MetricsWriter::sync() {
  if (std::fflush(f_) != 0 || ::fsync(::fileno(f_)) != 0) {
    const int err = errno;
    std::clearerr(f_);
    throw std::runtime_error(failed_write_message(path_, "fsync", err));
  }
  if (tb_) tb_->sync();
}

void MetricsWriter::restart_after(int64_t step) {
  if (tb_) tb_->session_start(step + 1);
}

void truncate_metrics_after(const std::string& path, int64_t step) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    if (step > 0)
      log::warn(str(path, ": missing; the run's metrics up to step ", step,
                    " are lost, and the file starts again after it"));
    return;
  }
  if (!std::filesystem::is_regular_file(path, ec))
    throw InputError(str(path, ": not a file; the run's metrics file must be one"));
  const auto text = read_whole_file(path);
  if (!text) throw ReadError(str(path, ": cannot read (", std::strerror(errno), ")"));
  std::string kept;
  size_t begin = 0;
  int64_t line_number = 0, foreign = 0, first_foreign = 0;
  while (begin < text->size()) {
    const size_t end = std::min(text->find('\n', begin), text->size());
    const std::string_view line(text->data() + begin, end - begin);
    const bool last = end + 1 >= text->size();
    begin = end + 1;
    ++line_number;
    bool ours = false;
    try {
      const auto j = nlohmann::json::parse(line);
      // A line without an integer step is not one stoch wrote: dropped like a torn one.
      const auto s = j.is_object() ? j.find("step") : j.end();
      ours = s != j.end() && s->is_number_integer();
      if (ours && s->get<int64_t>() <= step) {
        kept += line;
        kept += '\n';
      }
    } catch (const std::exception&) {
    }
    // A torn last line is a killed process's; elsewhere the file was changed by hand or damaged.
    if (!ours && !last && (foreign++ == 0)) first_foreign = line_number;
  }
  if (foreign > 0)
    log::warn(str(path, ": dropped ", foreign, " line", foreign > 1 ? "s" : "",
                  " that stoch did not write whole (the first: line ", first_foreign, ")"));
  if (kept == *text) return;  // nothing to drop: no copy, so no space needed
  // A copy replaces the file only once it is whole: a full disk keeps the old record.
  noting_free_space(path, [&] { replace_file_durably(path, kept); });
}

}  // namespace stoch
