#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "cli/checks.h"
#include "cli/run_dir.h"
#include "core/cpu_isa.h"
#include "test_util.h"

namespace stoch {
namespace {

// The check's verdict on `text`: "" when accepted, else the message.
std::string verdict(CLI::Validator v, std::string text) {
  return v(text);
}

// The commands that messages suggest (`stoch resume RUN`, `stoch compare OUT`) paste back into a
// shell as the same path, whatever it holds.
TEST(CommandLine, SuggestedCommandsQuoteTheirPaths) {
  EXPECT_EQ(cli::shell_word("runs/lr=0.001,seed=1"), "runs/lr=0.001,seed=1");
  for (const std::string path : {"my runs/a", "it's", "$HOME", "a;rm -rf b", "*", "", "x\"y`z"}) {
    const std::string word = cli::shell_word(path);
    EXPECT_EQ(word.front(), '\'') << path;
    FILE* shell = ::popen(("printf %s " + word).c_str(), "r");
    ASSERT_NE(shell, nullptr);
    std::string echoed;
    for (int c; (c = std::fgetc(shell)) != EOF;) echoed += static_cast<char>(c);
    EXPECT_EQ(::pclose(shell), 0);
    EXPECT_EQ(echoed, path) << word;
  }
}

TEST(CommandLine, IntegerChecksSayWhatWasExpected) {
  const auto positive = cli::integer_in(1);
  EXPECT_EQ(verdict(positive, "1"), "");
  EXPECT_EQ(verdict(positive, "0"), "expected an integer >= 1, got \"0\"");
  EXPECT_EQ(verdict(positive, "1.5"), "expected an integer >= 1, got \"1.5\"");
  EXPECT_EQ(verdict(positive, "abc"), "expected an integer >= 1, got \"abc\"");
  EXPECT_EQ(verdict(positive, ""), "expected an integer >= 1, got \"\"");
  EXPECT_EQ(verdict(positive, "99999999999999999999"),
            "expected an integer >= 1, got \"99999999999999999999\"");
  const auto draft = cli::integer_in(1, 64);
  EXPECT_EQ(verdict(draft, "64"), "");
  EXPECT_EQ(verdict(draft, "65"), "expected an integer in [1, 64], got \"65\"");
  const auto any = cli::integer_in(std::numeric_limits<int64_t>::min());
  EXPECT_EQ(verdict(any, "-7"), "");
  EXPECT_EQ(verdict(any, "x"), "expected an integer, got \"x\"");
}

TEST(CommandLine, NumberChecksSayWhatWasExpected) {
  const auto p = cli::number_in(0, 1);
  EXPECT_EQ(verdict(p, "0"), "");
  EXPECT_EQ(verdict(p, "0.95"), "");
  EXPECT_EQ(verdict(p, "1"), "");
  EXPECT_EQ(verdict(p, "1.01"), "expected a number in [0, 1], got \"1.01\"");
  EXPECT_EQ(verdict(p, "nan"), "expected a number in [0, 1], got \"nan\"");
  EXPECT_EQ(verdict(p, "0.5x"), "expected a number in [0, 1], got \"0.5x\"");
  EXPECT_EQ(verdict(cli::number_in(0), "-1"), "expected a number >= 0, got \"-1\"");
  EXPECT_EQ(verdict(cli::number_in(0), "1e3"), "");
  const auto held_out = cli::number_in(0, 0.5, /*above_lo=*/true);
  EXPECT_EQ(verdict(held_out, "0.5"), "");
  EXPECT_EQ(verdict(held_out, "0"), "expected a number in (0, 0.5], got \"0\"");
}

TEST(CommandLine, BadOptionValuesExitTwoWithOneLine) {
  // Options are checked before the run directory is read, so a missing one does not matter.
  struct Case {
    std::string args, message;
  };
  const std::vector<Case> cases = {
      {"sample nowhere --top-k -2", "stoch: error: --top-k: expected an integer >= 0, got \"-2\""},
      {"sample nowhere --temperature -1",
       "stoch: error: --temperature: expected a number >= 0, got \"-1\""},
      {"sample nowhere --draft 100",
       "stoch: error: --draft: expected an integer in [1, 64], got \"100\""},
      {"eval nowhere --checkpoint last",
       "stoch: error: --checkpoint: expected an integer >= 0, got \"last\""},
      {"data prepare --input x --out y --val-fraction 0",
       "stoch: error: --val-fraction: expected a number in (0, 0.5], got \"0\""},
      {"sweep nowhere.yaml --seeds 0",
       "stoch: error: --seeds: expected an integer >= 1, got \"0\""},
      {"compare nowhere --reps many",
       "stoch: error: --reps: expected an integer in [1, 2147483647], got \"many\""},
  };
  for (const auto& c : cases) {
    const auto r = test::run_stoch(c.args);
    EXPECT_EQ(r.code, 2) << c.args;
    EXPECT_EQ(r.output, c.message + " (see stoch --help)\n") << c.args;
  }
}

// Help shows each option's default, after its type and range (it showed none).
TEST(CommandLine, HelpShowsEachOptionsDefault) {
  const auto r = test::run_stoch("sample --help");
  ASSERT_EQ(r.code, 0) << r.output;
  for (const char* line :
       {"--max-tokens INT:>= 1 (default 200)", "--draft INT:in [1, 64] (default 4)",
        "--checkpoint INT:>= 0 (default the newest complete)"})
    EXPECT_NE(r.output.find(line), std::string::npos) << line << "\n" << r.output;
  const auto sweep = test::run_stoch("sweep --help");
  EXPECT_NE(sweep.output.find("--seeds INT:>= 1 (default 1)"), std::string::npos) << sweep.output;
  EXPECT_NE(sweep.output.find("--grid TEXT ..."), std::string::npos) << sweep.output;
}

TEST(CommandLine, OutputFoldersThatCannotBeMadeExitTwo) {
  const std::string dir = test::temp_dir("cli");
  test::write_text(dir + "/c.yaml", test::tiny_lm_config(2));
  test::write_text(dir + "/in.txt", std::string(200, 'x'));
  test::write_text(dir + "/file", "a file where a folder should go");
  const std::string bad = dir + "/file/sub";
  struct Case {
    std::string args, message;
  };
  const std::vector<Case> cases = {
      {"train " + dir + "/c.yaml --run-dir " + bad, "--run-dir " + bad + ": cannot create"},
      {"sweep " + dir + "/c.yaml --out " + bad, "--out " + bad + ": cannot create"},
      {"data prepare --input " + dir + "/in.txt --out " + bad, "--out " + bad + ": cannot create"},
  };
  for (const auto& c : cases) {
    const auto r = test::run_stoch(c.args);
    EXPECT_EQ(r.code, 2) << c.args << "\n" << r.output;
    EXPECT_NE(r.output.find(c.message), std::string::npos) << r.output;
  }
}

// STOCH_CPU_ISA caps the kernels' clone, and the run's first lines say which clone and which
// attention kernel it runs; a value that names no clone stops the program before it writes.
class CpuIsaVariable : public ::testing::Test {
 protected:
  void TearDown() override {
    ::unsetenv("STOCH_CPU_ISA");
    ::unsetenv("ATEN_CPU_CAPABILITY");
  }

  // Trains the tiny language model into dir_/run with `variable=value` in its environment.
  test::Result train_with(const char* variable, const char* value, const std::string& sets = "") {
    dir_ = test::temp_dir("isa");
    test::write_text(dir_ + "/c.yaml", test::tiny_lm_config(2));
    ::setenv(variable, value, 1);
    return test::run_stoch("train " + dir_ + "/c.yaml --run-dir " + dir_ + "/run" + sets);
  }

  std::string dir_;
};

TEST_F(CpuIsaVariable, PortableIsLoggedWithItsAttentionChoice) {
  const auto r =
      train_with("STOCH_CPU_ISA", "portable", " --set model.dropout=0 --set model.d_model=32");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("(kernels: portable; CPU supports " +
                          std::string(cpu_isa_name(cpu_isa_supported())) + ")"),
            std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("attention: sdpa (stoch kernels slower on this CPU: portable clone, "
                          "context 16)"),
            std::string::npos)
      << r.output;
}

// LibTorch's kernels choose their instruction set themselves and change a run's bits, so the
// device line names the set they run: the one ATEN_CPU_CAPABILITY forces, here the baseline.
TEST_F(CpuIsaVariable, LibTorchKernelsAreLogged) {
  const auto r = train_with("ATEN_CPU_CAPABILITY", "default");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("), LibTorch kernels default; "), std::string::npos) << r.output;
}

// run.libtorch_kernels pins that set from the config (over the variable, with a warning); a set
// this CPU lacks stops the run before it writes (LibTorch would die of an illegal instruction).
TEST_F(CpuIsaVariable, TheConfigKeyPinsLibTorchKernelsTheCpuHas) {
  std::string flags;
  {
    std::ifstream in("/proc/cpuinfo");
    for (std::string line; std::getline(in, line);)
      if (line.rfind("flags", 0) == 0) {
        flags = line + " ";
        break;
      }
  }
  const auto has = [&](const std::vector<std::string>& names) {
    for (const auto& n : names)
      if (flags.find(" " + n + " ") == std::string::npos) return false;
    return true;
  };
  const std::vector<std::pair<std::string, bool>> sets = {
      {"default", true},
      {"avx2", has({"avx2", "fma"})},
      {"avx512", has({"avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512dq"})}};
  for (const auto& [set, runs] : sets) {
    const auto r = train_with("ATEN_CPU_CAPABILITY", set == "default" ? "avx2" : "default",
                              " --set run.libtorch_kernels=" + set);
    if (runs) {
      ASSERT_EQ(r.code, 0) << r.output;
      EXPECT_NE(r.output.find("), LibTorch kernels " + set + "; "), std::string::npos) << r.output;
      EXPECT_NE(r.output.find("run.libtorch_kernels=" + set + " overrides ATEN_CPU_CAPABILITY="),
                std::string::npos)
          << r.output;
      EXPECT_NE(test::read_text(dir_ + "/run/config.yaml").find("libtorch_kernels: " + set),
                std::string::npos);
    } else {
      EXPECT_EQ(r.code, 2) << r.output;
      EXPECT_NE(r.output.find("run.libtorch_kernels: this CPU ("), std::string::npos) << r.output;
      EXPECT_NE(r.output.find(") has no " + set + "; expected auto, default or a set it has"),
                std::string::npos)
          << r.output;
      EXPECT_FALSE(std::filesystem::exists(dir_ + "/run"));
    }
  }
}

TEST_F(CpuIsaVariable, UnknownCloneExitsTwoBeforeWriting) {
  const auto r = train_with("STOCH_CPU_ISA", "avx3");
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_NE(r.output.find("STOCH_CPU_ISA=avx3: expected portable, avx2 or avx512"),
            std::string::npos)
      << r.output;
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/run"));
}

}  // namespace
}  // namespace stoch
