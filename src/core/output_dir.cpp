#include "core/output_dir.h"

#include <filesystem>
#include <system_error>

#include "core/errors.h"
#include "core/strings.h"

namespace stoch {

void make_output_dir(const std::string& dir, const std::string& option) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec || !std::filesystem::is_directory(dir))
    throw InputError(str(option, " ", dir, ": cannot create the folder (",
                         ec ? ec.message() : "not a directory", ")"));
}

}  // namespace stoch
