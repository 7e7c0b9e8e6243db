// Logging facade. spdlog lives behind this header, in a library that never sees LibTorch's
// include paths: the torch wheel ships fmt 12 headers that Debian's spdlog cannot compile with.
#pragma once

#include <string>

namespace stoch::log {

enum class Level { kDebug, kInfo, kWarn, kError };

// Console logging to stderr; when `file` is non-empty, also appends to that file.
void init(const std::string& file = "", Level console = Level::kInfo);
void set_file(const std::string& file);  // starts (or replaces) the file sink

void debug(const std::string& msg);
void info(const std::string& msg);
void warn(const std::string& msg);
void error(const std::string& msg);

// A transient status line: redrawn in place on a terminal, written to nothing otherwise
// (periodic info lines carry the same content for files and pipes).
void progress(const std::string& line);
bool console_is_tty();

}  // namespace stoch::log
