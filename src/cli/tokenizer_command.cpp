// tokenizer train | encode | decode: byte-level BPE vocabularies in the GPT-2 / Hugging Face
// format, and text to ids and back one line at a time.
#include <unistd.h>

#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>

#include "cli/checks.h"
#include "cli/command.h"
#include "core/errors.h"
#include "core/log.h"
#include "core/output_dir.h"
#include "core/strings.h"
#include "data/tokenizer/bpe_files.h"
#include "data/tokenizer/bpe_trainer.h"
#include "data/tokenizer/byte_level.h"
#include "data/tokenizer/pre_tokenizer.h"
#include "data/tokenizer/tokenizer.h"

namespace stoch::cli {
namespace {

struct TokenizerTrainArgs {
  std::vector<std::string> inputs;
  int64_t vocab_size = 0;
  std::string out;
  std::vector<std::string> specials;
  int64_t min_frequency = 2;  // as Hugging Face's ByteLevelBPETokenizer.train
};

struct TokenizerCodeArgs {
  std::string tokenizer;
  std::string input;    // empty: stdin
  bool timing = false;  // encode: log the encoding throughput
};

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

std::string read_input(const std::string& path) {
  std::ostringstream text;
  if (path.empty()) {
    text << std::cin.rdbuf();
    return text.str();
  }
  // A folder opens as a stream that reads nothing: it would pass for an empty file.
  if (std::filesystem::is_directory(path))
    throw InputError(str(path, ": is a folder; expected the --input file"));
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(str(path, ": cannot read the --input file"));
  text << in.rdbuf();
  return text.str();
}

// The lines of `text` without their '\n'; a final newline does not start another line.
std::vector<std::string_view> lines_of(const std::string& text) {
  std::vector<std::string_view> lines;
  for (size_t begin = 0; begin < text.size();) {
    size_t end = text.find('\n', begin);
    if (end == std::string::npos) end = text.size();
    lines.push_back(std::string_view(text).substr(begin, end - begin));
    begin = end + 1;
  }
  return lines;
}

int tokenizer_train(const TokenizerTrainArgs& a) {
  const auto t0 = std::chrono::steady_clock::now();
  data::BpeTrainOptions o;
  o.vocab_size = a.vocab_size;
  o.min_frequency = a.min_frequency;
  // A token named twice is one token (as `tokenizers` keeps it), in the order first given.
  std::vector<std::string> specials;
  for (const auto& s : a.specials)
    if (std::find(specials.begin(), specials.end(), s) == specials.end()) specials.push_back(s);
  o.special_tokens = specials;
  if (a.vocab_size < 256 + static_cast<int64_t>(specials.size()))
    throw InputError(str("--vocab-size: expected at least 256 (the bytes) + ", specials.size(),
                         " (special tokens), got ", a.vocab_size));
  for (const auto& s : specials) {
    if (s.empty()) throw InputError("--special: expected a non-empty token");
    if (first_invalid_utf8(s) != std::string::npos)
      throw InputError(str("--special ", s, ": expected valid UTF-8"));
    // vocab.json + merges.txt mark no token special: a loader takes a token that is a byte or a
    // merge's result for a piece of text. A token spelled in the byte-level alphabet whose bytes
    // are one pre-token ("ab", or "Ġhello" for " hello") can be either, and then loads as text
    // (it stopped being special: ids differed from tokenizers').
    const std::string bytes = data::from_byte_level(s);
    if (data::to_byte_level(bytes) == s && data::pre_tokenize(bytes).size() == 1)
      throw InputError(str("--special ", s,
                           ": the text's own bytes or merges could make this token, so GPT-2's "
                           "files could not mark it special; wrap it in characters the "
                           "pre-tokeniser splits off, e.g. <",
                           s, ">"));
  }
  // Checked before --out is made, so a bad command line leaves nothing behind.
  for (const auto& f : a.inputs)
    if (!std::filesystem::is_regular_file(f) || ::access(f.c_str(), R_OK) != 0)
      throw InputError(str("--input ", f, ": expected a readable file"));
  make_output_dir(a.out, "--out");
  const data::BpeVocabulary v = data::train_bpe(a.inputs, o);
  data::write_bpe_files(a.out, v);
  log::info(str("wrote ", a.out, "/vocab.json and merges.txt: ", v.tokens.size(), " tokens (",
                specials.size(), " special, 256 bytes, ", v.merges.size(), " merges) from ",
                a.inputs.size(), " files in ", format_number(seconds_since(t0), 3), " s"));
  return kExitOk;
}

int tokenizer_encode(const TokenizerCodeArgs& a) {
  const auto tok = data::load_tokenizer(a.tokenizer);
  const std::string text = read_input(a.input);
  const auto lines = lines_of(text);
  std::vector<int32_t> ids;
  std::vector<size_t> ends;  // ids of line i end at ends[i]
  ends.reserve(lines.size());
  const auto t0 = std::chrono::steady_clock::now();
  for (const auto& line : lines) {
    tok->encode(line, ids);
    ends.push_back(ids.size());
  }
  const double s = seconds_since(t0);
  std::string out;
  for (size_t i = 0, k = 0; i < lines.size(); ++i) {
    for (size_t first = k; k < ends[i]; ++k) {
      if (k > first) out += ' ';
      out += std::to_string(ids[k]);
    }
    out += '\n';
  }
  std::cout << out << std::flush;
  if (a.timing)
    log::info(str("encoded ", format_number(text.size() / 1e6, 4), " MB (", lines.size(),
                  " lines) into ", ids.size(), " tokens in ", format_number(s, 4),
                  " s: ", format_number(text.size() / 1e6 / s, 4), " MB/s on one thread"));
  return kExitOk;
}

int tokenizer_decode(const TokenizerCodeArgs& a) {
  const auto tok = data::load_tokenizer(a.tokenizer);
  const std::string text = read_input(a.input);
  const auto lines = lines_of(text);
  std::string out;
  std::vector<int32_t> ids;
  for (size_t i = 0; i < lines.size(); ++i) {
    ids.clear();
    std::istringstream in{std::string(lines[i])};
    std::string word;
    while (in >> word) {
      size_t used = 0;
      long long id = -1;
      try {
        id = std::stoll(word, &used);
      } catch (const std::exception&) {
      }
      if (used != word.size() || id < 0 || id >= tok->vocab_size())
        throw InputError(str(a.input.empty() ? "stdin" : a.input, ":", i + 1, ": '", word,
                             "' is not a token id of ", tok->describe()));
      ids.push_back(static_cast<int32_t>(id));
    }
    out += tok->decode(ids.data(), ids.size());
    out += '\n';
  }
  std::cout << out << std::flush;
  return kExitOk;
}

// encode and decode take the same options.
std::shared_ptr<TokenizerCodeArgs> add_code_options(CLI::App& cmd) {
  auto a = std::make_shared<TokenizerCodeArgs>();
  cmd.add_option("--tokenizer", a->tokenizer, "bytes, or a vocab.json + merges.txt folder")
      ->required();
  cmd.add_option("--input", a->input, "input file (default: stdin)");
  return a;
}

const bool group =
    register_command_group("tokenizer", "byte-level BPE tokenizers (GPT-2 format)", 80);

const bool registered_train = register_command(
    "tokenizer train",
    "learn a byte-level BPE vocabulary: vocab.json + merges.txt (as HF tokenizers)", 81,
    [](CLI::App& cmd) -> CommandRun {
      auto a = std::make_shared<TokenizerTrainArgs>();
      cmd.add_option("--input", a->inputs, "input text files")->required();
      cmd.add_option("--vocab-size", a->vocab_size, "tokens in the vocabulary")
          ->required()
          ->check(integer_in(1, 1'000'000'000));
      cmd.add_option("--out", a->out, "output folder")->required();
      // One token per --special: CLI11 would read "[MASK]" as a list and keep MASK.
      cmd.add_option("--special", a->specials,
                     "a special token, given the first ids (repeat for more)")
          ->allow_extra_args(false);
      cmd.add_option("--min-frequency", a->min_frequency, "fewest occurrences of a merge")
          ->check(integer_in(0));
      return [a] { return tokenizer_train(*a); };
    });

const bool registered_encode = register_command(
    "tokenizer encode", "print the token ids of each input line", 82,
    [](CLI::App& cmd) -> CommandRun {
      auto a = add_code_options(cmd);
      cmd.add_flag("--timing", a->timing, "log the encoding throughput (one thread)");
      return [a] { return tokenizer_encode(*a); };
    });

const bool registered_decode =
    register_command("tokenizer decode", "print the text of each line of token ids", 83,
                     [](CLI::App& cmd) -> CommandRun {
                       auto a = add_code_options(cmd);
                       return [a] { return tokenizer_decode(*a); };
                     });

}  // namespace
}  // namespace stoch::cli
