// Byte-level BPE: GPT-2's byte map, the hand-written pre-tokenisation regex, training, encoding,
// decoding, round trips on arbitrary bytes, and the errors for malformed vocabulary files.
// (tests/test_tokenizer_reference.cpp compares all of it with Hugging Face `tokenizers`.)
#include <gtest/gtest.h>

#include <random>
#include <set>

#include "core/errors.h"
#include "core/strings.h"
#include "data/tokenizer/bpe_files.h"
#include "data/tokenizer/bpe_tokenizer.h"
#include "data/tokenizer/bpe_trainer.h"
#include "data/tokenizer/byte_level.h"
#include "data/tokenizer/pre_tokenizer.h"
#include "data/tokenizer/tokenizer.h"
#include "test_util.h"

namespace stoch::data {
namespace {

using Pieces = std::vector<std::string>;

Pieces pieces(const std::string& text) {
  Pieces out;
  for (auto p : pre_tokenize(text)) out.emplace_back(p);
  return out;
}

const char* kText =
    "The quick brown fox jumps over the lazy dog. The dog's owner said: \"I'll be back!\"\n"
    "Numbers 12345 and 678 and 90; naïve café, Ж字 ½.\n"
    "  indented line\twith\ttabs and trailing spaces   \n";

// A small vocabulary trained on kText repeated, written to and loaded from a folder.
std::unique_ptr<Tokenizer> small_tokenizer(const std::string& dir, int64_t vocab_size = 320) {
  WordCounts counts;
  for (int i = 0; i < 20; ++i) count_words_in(kText, counts);
  BpeTrainOptions o;
  o.vocab_size = vocab_size;
  o.special_tokens = {"<|endoftext|>", "<pad>"};
  write_bpe_files(dir, train_bpe(counts, o));
  return load_tokenizer(dir);
}

std::vector<int32_t> encode(const Tokenizer& t, const std::string& text) {
  std::vector<int32_t> ids;
  t.encode(text, ids);
  return ids;
}

std::string decode(const Tokenizer& t, const std::vector<int32_t>& ids) {
  return t.decode(ids.data(), ids.size());
}

TEST(BpeByteLevel, MapsBytesAsGpt2Does) {
  EXPECT_EQ(byte_level_char(' '), "\u0120");   // Ġ
  EXPECT_EQ(byte_level_char('\n'), "\u010A");  // Ċ
  EXPECT_EQ(byte_level_char(0), "\u0100");
  EXPECT_EQ(byte_level_char(0xAD), "\u0143");  // the last remapped byte
  EXPECT_EQ(byte_level_char('a'), "a");
  EXPECT_EQ(byte_level_char(0xE9), "\u00E9");
  std::set<std::string> distinct;
  std::string all;
  for (int b = 0; b < 256; ++b) {
    distinct.insert(byte_level_char(static_cast<uint8_t>(b)));
    all += static_cast<char>(b);
    EXPECT_EQ(byte_of_codepoint(byte_level_codepoint(static_cast<uint8_t>(b))), b);
  }
  EXPECT_EQ(distinct.size(), 256u);
  EXPECT_EQ(from_byte_level(to_byte_level(all)), all);
  EXPECT_EQ(to_byte_level("hi there"), "hi\u0120there");
  const auto order = bytes_in_codepoint_order();
  EXPECT_EQ(order.front(), '!');
  EXPECT_EQ(order[93], '~');
  EXPECT_EQ(order[94], 0xA1);
  EXPECT_EQ(order[188], 0);  // after the 188 bytes that stand for themselves
  EXPECT_EQ(order.back(), 0xAD);
}

TEST(BpePreTokenizer, SplitsWordsWithTheirLeadingSpace) {
  EXPECT_EQ(pieces("Hello world"), (Pieces{"Hello", " world"}));
  EXPECT_EQ(pieces("Hello!!! ?x"), (Pieces{"Hello", "!!!", " ?", "x"}));
  EXPECT_EQ(pieces(""), Pieces{});
  EXPECT_EQ(pieces(" "), (Pieces{" "}));
}

TEST(BpePreTokenizer, WhitespaceRunLeavesItsLastCharacterToTheNextWord) {
  // \s+(?!\S): a run followed by a word gives its last character to that word's piece.
  EXPECT_EQ(pieces("a  b"), (Pieces{"a", " ", " b"}));
  EXPECT_EQ(pieces("a   \n b"), (Pieces{"a", "   \n", " b"}));
  EXPECT_EQ(pieces("a \n\nb"), (Pieces{"a", " \n", "\n", "b"}));
  EXPECT_EQ(pieces("end   "), (Pieces{"end", "   "}));  // at the end: the whole run
  EXPECT_EQ(pieces("x\ty"), (Pieces{"x", "\t", "y"}));  // one character: \s+ takes it
  EXPECT_EQ(pieces("x \ty"), (Pieces{"x", " ", "\t", "y"}));
  EXPECT_EQ(pieces("\n\n"), (Pieces{"\n\n"}));
  EXPECT_EQ(pieces("a\u3000b\u00A0c"), (Pieces{"a", "\u3000", "b", "\u00A0", "c"}));
}

TEST(BpePreTokenizer, Contractions) {
  EXPECT_EQ(pieces("I'll don't they're we've I'm he'd it's"),
            (Pieces{"I", "'ll", " don", "'t", " they", "'re", " we", "'ve", " I", "'m", " he", "'d",
                    " it", "'s"}));
  EXPECT_EQ(pieces("IT'S"), (Pieces{"IT", "'", "S"}));  // case-sensitive
  EXPECT_EQ(pieces("x 's"), (Pieces{"x", " '", "s"}));  // a space before: punctuation
  EXPECT_EQ(pieces("?'s"), (Pieces{"?'", "s"}));        // inside a punctuation run
  EXPECT_EQ(pieces("'sa"), (Pieces{"'s", "a"}));
}

TEST(BpePreTokenizer, DigitsAndUnicodeClasses) {
  EXPECT_EQ(pieces("abc 12345 6.7x9"), (Pieces{"abc", " 12345", " 6", ".", "7", "x", "9"}));
  EXPECT_EQ(pieces("naïve Ж字 ½² ٣"), (Pieces{"naïve", " Ж字", " ½²", " ٣"}));
  EXPECT_EQ(pieces("emoji 😀😀!"), (Pieces{"emoji", " 😀😀!"}));
}

TEST(BpePreTokenizer, InvalidUtf8BytesAreSingleOtherCharacters) {
  EXPECT_EQ(pieces("ab\xFF"
                   "cd"),
            (Pieces{"ab", "\xFF", "cd"}));
  EXPECT_EQ(pieces("ab \xC3"), (Pieces{"ab", " \xC3"}));  // truncated at the end
  EXPECT_EQ(pieces("\xC0\xAF"
                   "a"),
            (Pieces{"\xC0\xAF", "a"}));                                     // overlong '/'
  EXPECT_EQ(pieces("x\xED\xA0\x80y"), (Pieces{"x", "\xED\xA0\x80", "y"}));  // a surrogate
}

TEST(BpePreTokenizer, PiecesCoverRandomBytes) {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 200; ++trial) {
    std::string s(rng() % 64, '\0');
    for (auto& c : s) c = static_cast<char>(rng() % 4 ? rng() % 256 : " a1'\n"[rng() % 5]);
    std::string joined;
    for (auto p : pre_tokenize(s)) {
      EXPECT_FALSE(p.empty());
      joined += p;
    }
    EXPECT_EQ(joined, s);
  }
}

TEST(BpeTokenizer, TrainsTheRequestedVocabularyWithSpecialTokensFirst) {
  const std::string dir = test::temp_dir("bpe");
  const auto tok = small_tokenizer(dir);
  EXPECT_EQ(tok->vocab_size(), 320);
  EXPECT_EQ(tok->describe(), "bpe(" + dir + ", vocab 320)");
  const auto files = read_bpe_files(dir);
  EXPECT_EQ(files.vocab[0], (std::pair<std::string, int64_t>{"<|endoftext|>", 0}));
  EXPECT_EQ(files.vocab[1].first, "<pad>");
  EXPECT_EQ(files.vocab[2].first, "!");  // the alphabet in code point order
  EXPECT_EQ(files.merges.size(), 320u - 258u);
  EXPECT_EQ(test::read_text(dir + "/merges.txt").rfind("#version: 0.2\n", 0), 0u);
  // The first merge is the most frequent pair of bytes within pieces (counted here by brute
  // force), the smaller pair of ids on ties.
  std::array<int, 256> id{};
  const auto order = bytes_in_codepoint_order();
  for (int k = 0; k < 256; ++k) id[order[k]] = k + 2;
  std::map<std::pair<int, int>, int> count;
  for (const auto& line : split(kText, '\n')) {
    const std::string with_newline = line + "\n";
    for (auto p : pre_tokenize(with_newline))
      for (size_t i = 0; i + 1 < p.size(); ++i)
        count[{id[static_cast<uint8_t>(p[i])], id[static_cast<uint8_t>(p[i + 1])]}] += 20;
  }
  auto best = count.begin();
  for (auto it = count.begin(); it != count.end(); ++it)
    if (it->second > best->second) best = it;
  EXPECT_EQ(files.merges[0],
            (std::pair<std::string, std::string>{byte_level_char(order[best->first.first - 2]),
                                                 byte_level_char(order[best->first.second - 2])}));
}

TEST(BpeTokenizer, EncodesKnownWordsIntoFewTokensAndDecodesBack) {
  const auto tok = small_tokenizer(test::temp_dir("bpe"), 600);
  const std::string line = "The quick brown fox jumps over the lazy dog.";
  const auto ids = encode(*tok, line);
  EXPECT_LE(ids.size(), 12u);
  EXPECT_EQ(decode(*tok, ids), line);
}

TEST(BpeTokenizer, MatchesSpecialTokensLiterally) {
  const auto tok = small_tokenizer(test::temp_dir("bpe"));
  const auto ids = encode(*tok, "fox<|endoftext|><pad> dog<|endoftext");
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 0), 1);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 1), 1);
  EXPECT_EQ(decode(*tok, ids), "fox<|endoftext|><pad> dog<|endoftext");
  EXPECT_EQ(encode(*tok, "<pad>"), std::vector<int32_t>{1});
}

TEST(BpeTokenizer, RoundTripsRandomBytes) {
  const auto tok = small_tokenizer(test::temp_dir("bpe"));
  std::mt19937 rng(11);
  for (int trial = 0; trial < 300; ++trial) {
    std::string s(rng() % 200, '\0');
    for (auto& c : s) c = static_cast<char>(rng() % 3 ? rng() % 256 : kText[rng() % 60]);
    EXPECT_EQ(decode(*tok, encode(*tok, s)), s);
  }
}

TEST(BpeTokenizer, RejectsUnknownIds) {
  const auto tok = small_tokenizer(test::temp_dir("bpe"));
  EXPECT_THROW(decode(*tok, {320}), InputError);
  EXPECT_THROW(decode(*tok, {-1}), InputError);
}

TEST(BpeTokenizer, BytesTokenizer) {
  const auto tok = load_tokenizer("bytes");
  EXPECT_EQ(tok->vocab_size(), 256);
  EXPECT_EQ(tok->describe(), "bytes");
  const std::string s = "a\xFF\n";
  EXPECT_EQ(encode(*tok, s), (std::vector<int32_t>{'a', 255, '\n'}));
  EXPECT_EQ(decode(*tok, encode(*tok, s)), s);
  EXPECT_THROW(decode(*tok, {256}), InputError);
}

// The message of the InputError that loading DIR throws, or "" when it loads.
std::string load_error(const std::string& dir) {
  try {
    load_tokenizer(dir);
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

TEST(BpeFiles, MalformedFilesNameTheFileAndLine) {
  const std::string dir = test::temp_dir("bpe");
  small_tokenizer(dir);
  const std::string vocab = test::read_text(dir + "/vocab.json");
  const std::string merges = test::read_text(dir + "/merges.txt");
  ASSERT_EQ(load_error(dir), "");

  std::filesystem::remove(dir + "/vocab.json");
  EXPECT_NE(load_error(dir).find(dir + "/vocab.json: file not found"), std::string::npos);
  test::write_text(dir + "/vocab.json", "{\"a\": 1,");
  EXPECT_NE(load_error(dir).find("vocab.json: not valid JSON"), std::string::npos);
  test::write_text(dir + "/vocab.json", "{\"a\": -1}");
  EXPECT_NE(load_error(dir).find("vocab.json: token \"a\" has id -1"), std::string::npos);
  test::write_text(dir + "/vocab.json", "{\"a\": 0}");
  EXPECT_NE(load_error(dir).find("vocab.json: no token for byte 0"), std::string::npos);
  test::write_text(dir + "/vocab.json", vocab);

  // Line 3 is the second merge.
  const size_t second = merges.find('\n', merges.find('\n') + 1) + 1;
  const size_t third = merges.find('\n', second) + 1;
  test::write_text(dir + "/merges.txt",
                   merges.substr(0, second) + "zq \u0120xyzzy\n" + merges.substr(third));
  EXPECT_NE(load_error(dir).find(dir + "/merges.txt:3: token 'zq' is not in vocab.json"),
            std::string::npos)
      << load_error(dir);
  test::write_text(dir + "/merges.txt",
                   merges.substr(0, second) + "a b c\n" + merges.substr(third));
  EXPECT_NE(load_error(dir).find("merges.txt:3: expected two tokens"), std::string::npos);
  std::filesystem::remove(dir + "/merges.txt");
  EXPECT_NE(load_error(dir).find(dir + "/merges.txt: file not found"), std::string::npos);
}

TEST(BpeCommand, TrainEncodeDecodeRoundTrip) {
  const std::string dir = test::temp_dir("bpe-cli");
  const std::string text = std::string(kText) + "no newline at the end \xFF";
  test::write_text(dir + "/in.txt", text);
  auto r = test::run_stoch("tokenizer train --input " + dir + "/in.txt --vocab-size 300 --out " +
                           dir + "/tok --special '<|endoftext|>' --min-frequency 1");
  ASSERT_EQ(r.code, 0) << r.output;
  r = test::run_stoch("tokenizer encode --tokenizer " + dir + "/tok --input " + dir + "/in.txt > " +
                      dir + "/ids.txt");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_EQ(test::count_lines(dir + "/ids.txt", ""), 4);
  r = test::run_stoch("tokenizer decode --tokenizer " + dir + "/tok < " + dir + "/ids.txt > " +
                      dir + "/out.txt");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_EQ(test::read_text(dir + "/out.txt"), text + "\n");
  test::write_text(dir + "/bad.txt", "1 2\n3 x\n");
  r = test::run_stoch("tokenizer decode --tokenizer " + dir + "/tok --input " + dir + "/bad.txt");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.output.find("bad.txt:2: 'x' is not a token id"), std::string::npos) << r.output;
  r = test::run_stoch("tokenizer encode --tokenizer " + dir + "/missing --input " + dir +
                      "/in.txt");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.output.find("missing/vocab.json: file not found"), std::string::npos) << r.output;
  // A folder as --input is refused, not read as an empty file.
  r = test::run_stoch("tokenizer encode --tokenizer " + dir + "/tok --input " + dir);
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.output.find(dir + ": is a folder; expected the --input file"), std::string::npos)
      << r.output;
  // A bad command line is refused before --out is made.
  r = test::run_stoch("tokenizer train --input " + dir + "/nope.txt --vocab-size 300 --out " + dir +
                      "/never");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.output.find("--input " + dir + "/nope.txt: expected a readable file"),
            std::string::npos)
      << r.output;
  r = test::run_stoch("tokenizer train --input " + dir + "/in.txt --vocab-size 300 --out " + dir +
                      "/never --special \"$(printf '\\377')\"");  // one byte 0xFF
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.output.find(": expected valid UTF-8"), std::string::npos) << r.output;
  // A special that the text's bytes or merges could make (one pre-token spelled by its bytes)
  // loads back as text, not as a special: refused, naming a wrapped form that works.
  for (const std::string special : {"ab", "###", "#", "\xC4\xA0hello"}) {  // "Ġhello": " hello"
    r = test::run_stoch("tokenizer train --input " + dir + "/in.txt --vocab-size 300 --out " + dir +
                        "/never --special '" + special + "'");
    EXPECT_EQ(r.code, 2) << r.output;
    EXPECT_NE(r.output.find("--special " + special +
                            ": the text's own bytes or merges could make this token, so GPT-2's "
                            "files could not mark it special; wrap it in characters the "
                            "pre-tokeniser splits off, e.g. <" +
                            special + ">"),
              std::string::npos)
        << r.output;
  }
  EXPECT_FALSE(test::fs::exists(dir + "/never"));
  // A special named twice is one token (it was counted twice in the log and the size check).
  r = test::run_stoch("tokenizer train --input " + dir + "/in.txt --vocab-size 257 --out " + dir +
                      "/twice --special '<|endoftext|>' --special '<|endoftext|>'");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("(1 special, 256 bytes"), std::string::npos) << r.output;
  // A special in brackets is that token (CLI11 read "[MASK]" as a list and kept MASK).
  r = test::run_stoch("tokenizer train --input " + dir + "/in.txt --vocab-size 300 --out " + dir +
                      "/bert --special '[MASK]' --special '[<a>,<b>]'");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_EQ(test::read_text(dir + "/bert/vocab.json").rfind("{\"[MASK]\":0,\"[<a>,<b>]\":1,", 0),
            0u);
  test::write_text(dir + "/mask.txt", "x[MASK]y\n");
  r = test::run_stoch("tokenizer encode --tokenizer " + dir + "/bert --input " + dir + "/mask.txt");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find(" 0 "), std::string::npos) << r.output;
}

}  // namespace
}  // namespace stoch::data
