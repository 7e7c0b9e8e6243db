#include "core/log.h"

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <vector>

namespace stoch::log {
namespace {

std::recursive_mutex g_mu;  // logger() may call init() while emit() holds it
std::shared_ptr<spdlog::logger> g_logger;
std::shared_ptr<spdlog::sinks::basic_file_sink_mt> g_file;
bool g_progress_shown = false;

// Lines logged before the run's log file exists (the memory estimate, the data and model lines:
// a run folder is written only once those checks pass). set_file() writes them first, with their
// own times, so log.txt holds the whole run. Bounded for commands that never open a file.
struct Pending {
  spdlog::log_clock::time_point time;
  spdlog::level::level_enum level;
  std::string msg;
};
std::vector<Pending> g_pending;
constexpr std::size_t kMaxPending = 256;

spdlog::logger& logger() {
  if (!g_logger) init();
  return *g_logger;
}

void clear_progress() {
  if (g_progress_shown) {
    std::fputs("\r\033[K", stderr);
    g_progress_shown = false;
  }
}

void emit(spdlog::level::level_enum lvl, const std::string& msg) {
  std::lock_guard<std::recursive_mutex> lock(g_mu);
  clear_progress();
  logger().log(lvl, msg);
  if (!g_file && g_pending.size() < kMaxPending)
    g_pending.push_back({spdlog::log_clock::now(), lvl, msg});
  // Every line reaches the log file as it is written: a run killed without warning (SIGKILL, the
  // OOM killer) keeps all it logged, and `tail -f log.txt` follows a live run. The write costs a
  // few microseconds a line.
  logger().flush();
}

}  // namespace

void init(const std::string& file, Level console) {
  std::lock_guard<std::recursive_mutex> lock(g_mu);
  auto console_sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
  console_sink->set_pattern("%H:%M:%S %^%l%$ %v");
  g_logger = std::make_shared<spdlog::logger>("stoch", console_sink);
  g_logger->set_level(spdlog::level::debug);
  // A log file that cannot be written (a full disk) says so once, in one line; the console log
  // and the run go on, and the write that matters (metrics, checkpoints) reports the failure.
  g_logger->set_error_handler([](const std::string& msg) {
    static bool said = false;
    if (said) return;
    said = true;
    std::fprintf(stderr, "stoch: log file: %s (further log-file errors are not shown)\n",
                 msg.c_str());
  });
  const auto lvl = console == Level::kDebug  ? spdlog::level::debug
                   : console == Level::kInfo ? spdlog::level::info
                   : console == Level::kWarn ? spdlog::level::warn
                                             : spdlog::level::err;
  console_sink->set_level(lvl);
  g_file.reset();
  if (!file.empty()) {
    g_file = std::make_shared<spdlog::sinks::basic_file_sink_mt>(file);
    g_file->set_pattern("%Y-%m-%d %H:%M:%S.%e %l %v");
    g_logger->sinks().push_back(g_file);
  }
}

void set_file(const std::string& file) {
  std::lock_guard<std::recursive_mutex> lock(g_mu);
  auto& sinks = logger().sinks();
  if (g_file) sinks.erase(std::remove(sinks.begin(), sinks.end(), g_file), sinks.end());
  g_file = std::make_shared<spdlog::sinks::basic_file_sink_mt>(file);
  g_file->set_pattern("%Y-%m-%d %H:%M:%S.%e %l %v");
  // Outside the logger, so its error handler does not see these writes: a full disk here ends
  // the run, said in stoch's words (the caller adds the free space).
  try {
    for (const Pending& p : g_pending)
      g_file->log(
          spdlog::details::log_msg(p.time, spdlog::source_loc{}, logger().name(), p.level, p.msg));
    g_file->flush();
  } catch (const std::exception& e) {
    g_file.reset();
    throw std::runtime_error(std::string("writing the log failed: ") + e.what());  // names file
  }
  g_pending.clear();
  sinks.push_back(g_file);
}

void debug(const std::string& msg) {
  emit(spdlog::level::debug, msg);
}
void info(const std::string& msg) {
  emit(spdlog::level::info, msg);
}
void warn(const std::string& msg) {
  emit(spdlog::level::warn, msg);
}
void error(const std::string& msg) {
  emit(spdlog::level::err, msg);
}

bool console_is_tty() {
  static const bool tty = isatty(STDERR_FILENO) == 1;
  return tty;
}

void progress(const std::string& line) {
  if (!console_is_tty()) return;
  std::lock_guard<std::recursive_mutex> lock(g_mu);
  std::fprintf(stderr, "\r\033[K%s", line.c_str());
  std::fflush(stderr);
  g_progress_shown = true;
}

}  // namespace stoch::log
