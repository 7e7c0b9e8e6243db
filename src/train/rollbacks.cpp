#include "train/rollbacks.h"

#include <fstream>
#include <nlohmann/json.hpp>

#include "core/errors.h"
#include "core/strings.h"
#include "core/whole_file.h"

namespace stoch::train {
namespace {

std::string path_in(const std::string& run_dir) {
  return run_dir + "/rollbacks.json";
}

}  // namespace

Rollbacks Rollbacks::read(const std::string& run_dir) {
  Rollbacks r;
  std::ifstream in(path_in(run_dir));
  if (!in) return r;
  try {
    const auto j = nlohmann::json::parse(in);
    // Types checked before get<>(): a float where an integer belongs would be cast out of range.
    if (!j.is_object() || !j.contains("count") || !j["count"].is_number_integer() ||
        !j.contains("lr_scale") || !j["lr_scale"].is_number())
      throw std::runtime_error("count must be an integer and lr_scale a number");
    r.count = j["count"].get<int64_t>();
    r.lr_scale = j["lr_scale"].get<double>();
    if (r.count < 0 || !(r.lr_scale > 0)) throw std::runtime_error("out of range");
  } catch (const std::exception& e) {
    throw InputError(stoch::str(
        path_in(run_dir), ": expected {\"count\": N, \"lr_scale\": S, ...} (", e.what(), ")"));
  }
  return r;
}

void Rollbacks::write(const std::string& run_dir, int64_t step, const std::string& why) const {
  nlohmann::json j = nlohmann::json::object();
  {
    std::ifstream in(path_in(run_dir));
    if (in) j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
    if (!j.is_object()) j = nlohmann::json::object();
    if (!j["events"].is_array()) j["events"] = nlohmann::json::array();
  }
  j["count"] = count;
  j["lr_scale"] = lr_scale;
  j["events"].push_back({{"step", step}, {"why", why}, {"lr_scale", lr_scale}});
  replace_file_durably(path_in(run_dir), j.dump(2) + "\n");
}

}  // namespace stoch::train
