// Writing a whole file so that it survives a crash or power loss once the call returns.
#pragma once

#include <string>

namespace stoch {

// Writes `bytes` to `path` (created or truncated), fsyncs and closes it. Throws
// std::runtime_error naming the path and the system's reason when any step fails.
void write_file_durably(const std::string& path, const std::string& bytes);

}  // namespace stoch
