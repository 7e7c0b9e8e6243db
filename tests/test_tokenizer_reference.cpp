// stoch's byte-level BPE against the real Hugging Face `tokenizers` (the project's Python), on
// text every test machine has (Debian's license texts and the `fortunes` package): both train
// on the same files (`stoch tokenizer train`) and must write the same vocab.json and merges.txt
// byte for byte, and encode held-out lines (with special tokens, Unicode and odd whitespace)
// into the same ids, with stoch's files and with tokenizers' own.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>

#include "core/strings.h"
#include "data/tokenizer/tokenizer.h"
#include "test_util.h"

namespace stoch {
namespace {

namespace fs = std::filesystem;

test::Result run_python(const std::string& script_path, const std::string& args = "") {
  return test::run_python(script_path, args, "TOKENIZERS_PARALLELISM=false");
}

const char* kTrainFortunes[] = {"computers", "literature", "wisdom"};
const char* kHeldOutFortune = "science";
const std::string kFortunes = "/usr/share/games/fortunes/";

// The training files: the license texts (not the links between them) and a few fortune files.
std::vector<std::string> corpus() {
  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator("/usr/share/common-licenses"))
    if (e.is_regular_file() && !e.is_symlink()) files.push_back(e.path().string());
  std::sort(files.begin(), files.end());
  for (const char* f : kTrainFortunes) files.push_back(kFortunes + f);
  return files;
}

std::string corpus_missing() {
  for (const std::string& f : {kFortunes + kTrainFortunes[0], kFortunes + kHeldOutFortune})
    if (!fs::exists(f)) return f + " is missing (Debian package fortunes, see scripts/setup)";
  return "";
}

// Lines the corpus does not have: special tokens inside words, Unicode classes, whitespace runs
// of every kind, contractions, digits, carriage returns.
const char* kExtraLines =
    "before<|endoftext|>after <|endoftext|> <|pad|><|endoftext|>\n"
    "naïve café Ж字 ½² ٣ 😀😀! déjà-vu\n"
    "tabs\tand  double  spaces \u3000 ideographic\u00A0nbsp   \n"
    "I'll don't they're we've I'm he'd it's IT'S ?'s 's\n"
    "12345 6.7e-8 0x1F 2024-01-01\r\n"
    "   \n"
    "\n"
    "trailing spaces and a tab \t\n";

// Words with letters of Unicode 15 and 16 (Nag Mundari, Cyrillic TJE, Ol Onal, Garay), which
// tokenizers 0.23 counts as letters: trained on, their bytes merge with the letters around them
// only where the pre-tokeniser keeps them in one word.
const char* kNewLetters = "x\U0001E4D0y a\u1C89b \U0001E5D0\U0001E5D1z \U00010D50q\n";

// Trains tokenizers with each case's settings, saves its files and encodes the held-out lines.
const char* kReferenceScript = R"(
import json, os, sys
from tokenizers import ByteLevelBPETokenizer
cfg = json.load(open(sys.argv[1]))
text = open(cfg["held_out"], encoding="utf-8", newline="").read()
lines = text.split("\n")[:-1]
for case in cfg["cases"]:
    t = ByteLevelBPETokenizer()
    t.train(cfg["files"], vocab_size=case["vocab_size"], min_frequency=case["min_frequency"],
            special_tokens=case["specials"], show_progress=False)
    os.makedirs(case["dir"], exist_ok=True)
    t.save_model(case["dir"])
    with open(case["dir"] + "/ids.txt", "w") as f:
        for line in lines:
            f.write(" ".join(map(str, t.encode(line).ids)) + "\n")
)";

// The lines of `text`, without their '\n'.
std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  for (size_t begin = 0; begin < text.size();) {
    size_t end = text.find('\n', begin);
    if (end == std::string::npos) end = text.size();
    lines.push_back(text.substr(begin, end - begin));
    begin = end + 1;
  }
  return lines;
}

// "" when the files are equal, else where they first differ, with some context.
std::string first_difference(const std::string& ours_path, const std::string& theirs_path) {
  const std::string a = test::read_text(ours_path), b = test::read_text(theirs_path);
  if (a == b) return "";
  size_t at = 0;
  while (at < a.size() && at < b.size() && a[at] == b[at]) ++at;
  const size_t line = std::count(a.begin(), a.begin() + at, '\n') + 1;
  const size_t from = at < 40 ? 0 : at - 40;
  return ours_path + " and " + theirs_path + " differ at byte " + std::to_string(at) + " (line " +
         std::to_string(line) + "):\n  stoch      ..." + a.substr(from, 80) + "\n  tokenizers ..." +
         b.substr(from, 80);
}

struct Case {
  int64_t vocab_size, min_frequency;
  std::vector<std::string> specials;
};

TEST(TokenizerReference, TrainsAndEncodesAsHuggingFaceTokenizers) {
  const std::string dir = test::temp_dir("bpe-ref");
  STOCH_REQUIRE(test::python_missing("tokenizers"));
  STOCH_REQUIRE(corpus_missing());
  const std::vector<Case> cases = {{2000, 2, {"<|endoftext|>", "<|pad|>"}}, {1000, 5, {}}};
  auto files = corpus();
  std::string new_letters;
  for (int i = 0; i < 50; ++i) new_letters += kNewLetters;
  test::write_text(dir + "/new_letters.txt", new_letters);
  files.push_back(dir + "/new_letters.txt");
  const std::string held_out = dir + "/held_out.txt";
  test::write_text(held_out,
                   test::read_text(kFortunes + kHeldOutFortune) + kExtraLines + kNewLetters);

  nlohmann::json cfg = {
      {"files", files}, {"held_out", held_out}, {"cases", nlohmann::json::array()}};
  for (size_t k = 0; k < cases.size(); ++k)
    cfg["cases"].push_back({{"vocab_size", cases[k].vocab_size},
                            {"min_frequency", cases[k].min_frequency},
                            {"specials", cases[k].specials},
                            {"dir", dir + "/hf" + std::to_string(k)}});
  test::write_text(dir + "/cfg.json", cfg.dump());
  test::write_text(dir + "/reference.py", kReferenceScript);
  const auto ref = run_python(dir + "/reference.py", "'" + dir + "/cfg.json'");
  ASSERT_EQ(ref.code, 0) << ref.output;

  std::string inputs;
  for (const auto& f : files) inputs += " '" + f + "'";
  for (size_t k = 0; k < cases.size(); ++k) {
    SCOPED_TRACE("case " + std::to_string(k));
    const std::string hf = dir + "/hf" + std::to_string(k);
    const std::string ours = dir + "/stoch" + std::to_string(k);
    std::string args = "tokenizer train --input" + inputs + " --vocab-size " +
                       std::to_string(cases[k].vocab_size) + " --min-frequency " +
                       std::to_string(cases[k].min_frequency) + " --out " + ours;
    for (const auto& s : cases[k].specials) args += " --special '" + s + "'";
    auto r = test::run_stoch(args);
    ASSERT_EQ(r.code, 0) << r.output;
    EXPECT_EQ(first_difference(ours + "/merges.txt", hf + "/merges.txt"), "");
    EXPECT_EQ(first_difference(ours + "/vocab.json", hf + "/vocab.json"), "");

    // Held-out lines: stoch with its own files and with tokenizers' files, against tokenizers.
    const auto want = split_lines(test::read_text(hf + "/ids.txt"));
    const auto text = split_lines(test::read_text(held_out));
    ASSERT_EQ(want.size(), text.size());
    for (const std::string& dir : {ours, hf}) {
      const auto tok = data::load_tokenizer(dir);
      std::string decoded;
      int shown = 0;
      for (size_t i = 0; i < text.size(); ++i) {
        std::vector<int32_t> ids;
        tok->encode(text[i], ids);
        const std::string got = join(ids, " ");
        if (got != want[i] && shown++ < 5)
          ADD_FAILURE() << dir << ": line " << i + 1 << " '" << text[i] << "'\n  stoch      " << got
                        << "\n  tokenizers " << want[i];
        decoded += tok->decode(ids.data(), ids.size()) + "\n";
      }
      EXPECT_EQ(decoded, test::read_text(held_out));
    }
  }
}

}  // namespace
}  // namespace stoch
