#include "data/tokenizer/word_counts.h"

#include <filesystem>
#include <fstream>
#include <thread>

#include "core/errors.h"
#include "core/strings.h"
#include "core/whole_file.h"
#include "data/tokenizer/pre_tokenizer.h"

namespace stoch::data {
namespace {

std::string read_file(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec))
    throw InputError(str(path, ": input file not found"));
  auto bytes = read_whole_file(path);
  if (!bytes) throw InputError(str(path, ": cannot read"));
  return std::move(*bytes);
}

}  // namespace

void count_words_in(std::string_view text, WordCounts& counts) {
  size_t line_begin = 0;
  while (line_begin < text.size()) {
    size_t line_end = text.find('\n', line_begin);
    line_end = line_end == std::string_view::npos ? text.size() : line_end + 1;
    const std::string_view line = text.substr(line_begin, line_end - line_begin);
    for (size_t i = 0; i < line.size();) {
      const size_t j = pre_token_end(line, i);
      ++counts[line.substr(i, j - i)];
      i = j;
    }
    line_begin = line_end;
  }
}

WordCounts count_words(const std::vector<std::string>& files, int threads) {
  std::vector<std::string> texts;
  for (const auto& f : files) texts.push_back(read_file(f));
  // Cut the whole input into `threads` parts at line starts; each thread counts one part.
  struct Part {
    size_t file, begin, end;
  };
  size_t total = 0;
  for (const auto& t : texts) total += t.size();
  threads = std::max(1, threads);
  const size_t share = total / threads + 1;
  std::vector<std::vector<Part>> parts(threads);
  size_t thread = 0, filled = 0;
  for (size_t f = 0; f < texts.size(); ++f) {
    size_t begin = 0;
    while (begin < texts[f].size()) {
      size_t end = texts[f].size();
      if (thread + 1 < parts.size() && filled + (end - begin) > share) {
        const size_t nl = texts[f].find('\n', begin + (share - filled));
        end = nl == std::string::npos ? texts[f].size() : nl + 1;
      }
      parts[thread].push_back({f, begin, end});
      filled += end - begin;
      if (filled >= share && thread + 1 < parts.size()) {
        ++thread;
        filled = 0;
      }
      begin = end;
    }
  }
  std::vector<WordCounts> counts(threads, WordCounts(1 << 16));
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t)
    workers.emplace_back([&, t] {
      for (const auto& p : parts[t])
        count_words_in(std::string_view(texts[p.file]).substr(p.begin, p.end - p.begin), counts[t]);
    });
  for (auto& w : workers) w.join();
  for (int t = 1; t < threads; ++t)
    counts[t].for_each([&](std::string_view word, int64_t n) { counts[0][word] += n; });
  return std::move(counts[0]);
}

}  // namespace stoch::data
