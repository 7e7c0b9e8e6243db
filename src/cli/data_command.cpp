// stoch data: data tools. `data prepare` tokenises text files into a token folder (stoch,
// nanoGPT or llm.c files, with meta.json).
#include <CLI/CLI.hpp>

#include <chrono>
#include <memory>

#include "cli/checks.h"
#include "cli/command.h"
#include "core/errors.h"
#include "core/log.h"
#include "core/strings.h"
#include "data/token_files.h"

namespace stoch::cli {
namespace {

struct PrepareArgs {
  std::vector<std::string> inputs;
  std::string out;
  double val_fraction = 0.1;
  std::string tokenizer = "bytes";
  std::string format = "stoch";
  int64_t shard_tokens = 100'000'000;
};

int data_prepare(const PrepareArgs& a) {
  const auto t0 = std::chrono::steady_clock::now();
  const auto r = data::prepare_token_files(
      {a.inputs, a.out, a.val_fraction, a.tokenizer, a.format, a.shard_tokens});
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  log::info(stoch::str("wrote ", a.out, " (", a.format, " format): ", r.train_tokens, " train and ",
                       r.val_tokens, " val tokens from ", r.files, " files, tokenizer ",
                       a.tokenizer, " (vocabulary ", r.vocab_size, ") in ", format_number(s, 3),
                       " s"));
  return kExitOk;
}

const bool group = register_command_group("data", "data tools", 70);

const bool registered = register_command(
    "data prepare",
    "tokenise text files into a token folder (stoch, nanoGPT or llm.c files, with meta.json)", 71,
    [](CLI::App& cmd) -> CommandRun {
      auto a = std::make_shared<PrepareArgs>();
      cmd.add_option("--input", a->inputs, "input text files")->required();
      cmd.add_option("--out", a->out, "output folder (new or empty)")->required();
      cmd.add_option("--val-fraction", a->val_fraction, "tail of each file held out")
          ->check(number_in(0, 0.5, /*above_lo=*/true));
      cmd.add_option("--tokenizer", a->tokenizer,
                     "bytes, or a folder with vocab.json + merges.txt (`stoch tokenizer train`)");
      cmd.add_option("--format", a->format, "stoch, nanogpt (raw uint16) or llmc (headed shards)")
          ->check(CLI::IsMember({"stoch", "nanogpt", "llmc"}));
      cmd.add_option("--shard-tokens", a->shard_tokens, "llmc: ids per shard file")
          ->check(integer_in(1, 2'000'000'000));
      return [a] { return data_prepare(*a); };
    });

}  // namespace
}  // namespace stoch::cli
