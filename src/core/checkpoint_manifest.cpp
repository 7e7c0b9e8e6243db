#include "core/checkpoint_manifest.h"

#include "core/errors.h"
#include "core/strings.h"

namespace stoch {
namespace {

nlohmann::json parse_object(const std::string& text, const std::string& path) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw InputError(stoch::str(path, ": not JSON: ", e.what()));
  }
  if (!j.is_object()) throw InputError(stoch::str(path, ": not a JSON object"));
  return j;
}

bool is_count(const nlohmann::json& v) {
  return v.is_number_unsigned();
}

// Whether `j` records checkpoint `step`: the key both files carry.
bool has_step(const nlohmann::json& j, int64_t step) {
  const auto s = j.find("step");
  return s != j.end() && is_count(*s) && s->get<uint64_t>() == static_cast<uint64_t>(step);
}

bool is_crc(const nlohmann::json& v) {
  if (!v.is_string() || v.get_ref<const std::string&>().size() != 8) return false;
  for (const char c : v.get_ref<const std::string&>())
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

// A name that stays inside the folder: no separator, not "." or "..".
bool is_plain_file_name(const std::string& name) {
  return !name.empty() && name != "." && name != ".." && name.find('/') == std::string::npos &&
         name.find('\0') == std::string::npos;
}

}  // namespace

nlohmann::json manifest_json(const CheckpointManifest& m) {
  nlohmann::json files = nlohmann::json::object();
  for (const auto& f : m.files) files[f.name] = {{"bytes", f.bytes}, {"crc32c", f.crc32c}};
  return {{"format", "stoch-checkpoint"},
          {"format_version", m.format_version},
          {"libtorch", m.libtorch},
          {"step", m.step},
          {"files", files}};
}

CheckpointManifest parse_checkpoint_manifest(const std::string& text, const std::string& path,
                                             int64_t newest_version, int64_t step) {
  const nlohmann::json j = parse_object(text, path);
  const auto bad = [&](const std::string& what) {
    return InputError(stoch::str(path, ": ", what));
  };
  if (j.value("format", nlohmann::json()) != "stoch-checkpoint")
    throw bad("not a stoch checkpoint manifest (\"format\" is not \"stoch-checkpoint\")");
  CheckpointManifest m;
  const auto version = j.find("format_version");
  if (version == j.end() || !is_count(*version))
    throw bad("\"format_version\" is not a non-negative integer");
  if (version->get<uint64_t>() > static_cast<uint64_t>(newest_version))
    throw bad(stoch::str("format_version ", version->get<uint64_t>(),
                         " is newer than this stoch understands (", newest_version, ")"));
  m.format_version = version->get<int64_t>();
  if (!has_step(j, step))
    throw bad(stoch::str("\"step\" is not ", step, ", the step its folder is named for"));
  m.step = step;
  if (const auto lt = j.find("libtorch"); lt != j.end() && lt->is_string()) m.libtorch = *lt;
  const auto files = j.find("files");
  if (files == j.end() || !files->is_object()) throw bad("\"files\" is not a JSON object");
  for (auto it = files->begin(); it != files->end(); ++it) {
    if (!is_plain_file_name(it.key()))
      throw bad(
          stoch::str("\"files\" names \"", it.key(), "\", which is not a file in the folder"));
    if (!it->is_object() || !is_count(it->value("bytes", nlohmann::json())) ||
        !is_crc(it->value("crc32c", nlohmann::json())))
      throw bad(stoch::str("\"files\".\"", it.key(),
                           "\" is not {\"bytes\": integer, \"crc32c\": 8 hex digits}"));
    m.files.push_back({it.key(), it->at("bytes").get<uint64_t>(), it->at("crc32c")});
  }
  return m;
}

nlohmann::json parse_checkpoint_state(const std::string& text, const std::string& path,
                                      int64_t step) {
  nlohmann::json j = parse_object(text, path);
  const auto bad = [&](const std::string& key, const char* what) {
    return InputError(stoch::str(path, ": \"", key, "\" is not ", what));
  };
  if (!has_step(j, step))
    throw InputError(stoch::str(path, ": \"step\" is not ", step, ", the checkpoint's step"));
  // Counters the loop reads as int64: non-negative, and those it divides by at least 1.
  for (const char* key : {"micro_batches", "tokens_seen", "interval_steps", "interval_skipped",
                          "env_steps", "world_size", "grad_accum", "micro_batches_per_step"}) {
    const auto v = j.find(key);
    if (v == j.end()) continue;
    if (!is_count(*v) || v->get<uint64_t>() > uint64_t{1} << 62)
      throw bad(key, "a non-negative integer");
    const std::string k = key;
    if ((k == "world_size" || k == "grad_accum" || k == "micro_batches_per_step") &&
        v->get<uint64_t>() == 0)
      throw bad(key, "at least 1");
  }
  for (const char* key : {"elapsed_s", "interval_train_s", "interval_loss"}) {
    const auto v = j.find(key);
    // JSON has no NaN: a NaN written by the loop reads back as null.
    if (v != j.end() && !v->is_number() && !v->is_null()) throw bad(key, "a number");
  }
  if (const auto t = j.find("task"); t != j.end() && !t->is_string()) throw bad("task", "a string");
  return j;
}

}  // namespace stoch
