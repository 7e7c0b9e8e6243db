#include "data/tokenizer/bpe_files.h"

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/disk_space.h"
#include "core/errors.h"
#include "core/strings.h"
#include "core/whole_file.h"

namespace stoch::data {
namespace {

std::string read_text(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) throw InputError(str(path, ": file not found"));
  auto text = read_whole_file(path);
  if (!text) throw InputError(str(path, ": cannot read"));
  return std::move(*text);
}

std::string json_string(const std::string& s) {
  try {
    return nlohmann::json(s).dump();
  } catch (const nlohmann::json::exception&) {
    throw InputError(str("token '", s, "' is not valid UTF-8"));
  }
}

}  // namespace

BpeFiles read_bpe_files(const std::string& dir) {
  BpeFiles f;
  const std::string vocab_path = dir + "/vocab.json";
  const std::string merges_path = dir + "/merges.txt";
  nlohmann::json vocab;  // not ordered_json: its insertion is linear in the size
  try {
    vocab = nlohmann::json::parse(read_text(vocab_path));
  } catch (const nlohmann::json::exception& e) {
    throw InputError(str(vocab_path, ": not valid JSON (", e.what(), ")"));
  }
  if (!vocab.is_object())
    throw InputError(str(vocab_path, ": expected an object from tokens to ids"));
  for (const auto& [token, id] : vocab.items()) {
    if (!id.is_number_unsigned() || id.get<uint64_t>() >= (uint64_t{1} << 31))
      throw InputError(str(vocab_path, ": token ", json_string(token), " has id ", id.dump(),
                           ", expected an integer in [0, 2^31)"));
    f.vocab.emplace_back(token, id.get<int64_t>());
  }
  std::stable_sort(f.vocab.begin(), f.vocab.end(),
                   [](const auto& x, const auto& y) { return x.second < y.second; });
  // Ids number the tokens 0..N-1, as every writer of the format numbers them; a stray large id
  // would otherwise size the tokenizer's tables.
  for (size_t i = 0; i < f.vocab.size(); ++i)
    if (f.vocab[i].second != static_cast<int64_t>(i))
      throw InputError(str(vocab_path, ": token ", json_string(f.vocab[i].first), " has id ",
                           f.vocab[i].second, ", but the ", f.vocab.size(),
                           " tokens must have the ids 0..", f.vocab.size() - 1, ", each once"));

  const std::string merges = read_text(merges_path);
  int64_t line_no = 0;
  for (size_t begin = 0; begin < merges.size();) {
    size_t end = merges.find('\n', begin);
    if (end == std::string::npos) end = merges.size();
    std::string line = merges.substr(begin, end - begin);
    begin = end + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line.rfind("#version", 0) == 0) continue;
    const size_t space = line.find(' ');
    if (space == std::string::npos || space == 0 || space + 1 == line.size() ||
        line.find(' ', space + 1) != std::string::npos)
      throw InputError(str(merges_path, ":", line_no,
                           ": expected two tokens separated by one space, got '", line, "'"));
    f.merges.emplace_back(line.substr(0, space), line.substr(space + 1));
    f.merge_lines.push_back(line_no);
  }
  return f;
}

void write_bpe_files(const std::string& dir, const BpeVocabulary& v) {
  // Compact JSON in id order, as serde_json writes the vocabulary for `tokenizers`.
  std::string vocab = "{";
  for (size_t id = 0; id < v.tokens.size(); ++id)
    vocab += str(id ? "," : "", json_string(v.tokens[id]), ":", id);
  vocab += "}";
  std::string merges = "#version: 0.2\n";
  for (const auto& [a, b] : v.merges) merges += a + " " + b + "\n";
  // Both or neither: a new vocabulary beside old merges would split text wrongly, silently.
  noting_free_space(dir, [&] {
    replace_files_durably({{dir + "/vocab.json", vocab}, {dir + "/merges.txt", merges}});
  });
}

}  // namespace stoch::data
