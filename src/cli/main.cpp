// The `stoch` executable: parses the command line with CLI11 and dispatches to a subcommand.
#include <malloc.h>

#include <c10/util/Exception.h>

#include <CLI/CLI.hpp>

#include <iostream>

#include "cli/checks.h"
#include "cli/commands.h"
#include "cli/compare_command.h"
#include "cli/sweep.h"
#include "core/cpu_isa.h"
#include "core/errors.h"
#include "core/log.h"

int main(int argc, char** argv) {
  using namespace stoch;
  // glibc serves blocks over 128 KiB (a MinAtar batch's columns, a layer's gradient) with a
  // fresh mmap each time, so every training step paid page faults and zeroing for them; keep
  // such blocks in the heap instead.
  mallopt(M_MMAP_THRESHOLD, 64 << 20);
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
  CLI::App app{"stoch: train transformer LMs and value networks from one YAML config"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "stoch 0.1");

  cli::TrainArgs train;
  auto* t = app.add_subcommand("train", "start a run from a config");
  t->add_option("config", train.config, "YAML config file")->required();
  t->add_option("--set", train.sets, "override a key: KEY=VALUE (repeatable)");
  t->add_option("--run-dir", train.run_dir, "run directory (default runs/<name>-<time>)");
  t->add_option("--nproc", train.nproc,
                "data-parallel processes on this machine, sharing its cores (CPU: Gloo)")
      ->check(cli::integer_in(1));

  cli::ResumeArgs resume;
  auto* r = app.add_subcommand("resume", "continue a run from its newest complete checkpoint");
  r->add_option("run_dir", resume.run_dir, "run directory")->required();
  r->add_option("--set", resume.sets,
                "override a key that cannot change the past (e.g. train.steps)");
  r->add_option(
       "--nproc", resume.nproc,
       "data-parallel processes on this machine; another count than the run's reshards its "
       "optimizer state and keeps its micro-batches per step")
      ->check(cli::integer_in(1));

  cli::ConfigArgs config;
  auto* c = app.add_subcommand("config", "print the resolved config with every default, then exit");
  c->add_option("config", config.config, "YAML config file")->required();
  c->add_option("--set", config.sets, "override a key: KEY=VALUE (repeatable)");
  c->add_flag("--no-docs", config.no_docs, "omit the doc comments");

  cli::EvalArgs eval;
  auto* e = app.add_subcommand(
      "eval", "evaluate a run's checkpoint with its task's protocol (held-out data, episodes)");
  e->add_option("run_dir", eval.run_dir, "run directory")->required();
  e->add_option("--checkpoint", eval.checkpoint, "checkpoint step (default: newest complete)")
      ->check(cli::integer_in(0));
  e->add_option("--set", eval.sets,
                "override a key for this evaluation only, e.g. dqn.eval_episodes=100 (repeatable)");

  cli::SampleArgs sample;
  auto* s = app.add_subcommand("sample", "generate text from a trained language model");
  s->add_option("run_dir", sample.run_dir, "run directory")->required();
  s->add_option("--prompt", sample.prompt,
                "prompt text (token ids separated by spaces for synthetic data)");
  s->add_option("--max-tokens", sample.max_tokens, "tokens to generate")->check(cli::integer_in(1));
  s->add_option("--temperature", sample.temperature, "softmax temperature; 0 is greedy")
      ->check(cli::number_in(0));
  s->add_option("--top-k", sample.top_k, "keep the k most likely tokens; 0 keeps all")
      ->check(cli::integer_in(0));
  s->add_option("--top-p", sample.top_p, "keep the smallest set with this much mass")
      ->check(cli::number_in(0, 1));
  s->add_option("--seed", sample.seed, "sampling seed")
      ->check(cli::integer_in(std::numeric_limits<int64_t>::min()));
  s->add_option("--checkpoint", sample.checkpoint, "checkpoint step (default: newest complete)")
      ->check(cli::integer_in(0));
  s->add_flag("--speculative", sample.speculative,
              "draft with the run's surplus probe and verify with the model (same distribution)");
  s->add_option("--draft", sample.draft, "tokens drafted per model call with --speculative")
      ->check(cli::integer_in(1, 64));

  cli::ExportArgs exp;
  auto* x = app.add_subcommand("export", "write a language model in another format (Hugging Face)");
  x->add_option("run_dir", exp.run_dir, "run directory")->required();
  x->add_option("--checkpoint", exp.checkpoint, "checkpoint step (default: newest complete)")
      ->check(cli::integer_in(0));
  x->add_option("--format", exp.format,
                "hf-gpt2: config.json + model.safetensors for transformers' GPT2LMHeadModel")
      ->required()
      ->check(CLI::IsMember({"hf-gpt2"}));
  x->add_option("--out", exp.out, "output folder (absent or empty)")->required();

  cli::PrepareArgs prep;
  auto* d = app.add_subcommand("data", "data tools");
  d->require_subcommand(1);
  auto* dp = d->add_subcommand("prepare",
                               "tokenise text files into a token folder (stoch, nanoGPT or "
                               "llm.c files, with meta.json)");
  dp->add_option("--input", prep.inputs, "input text files")->required();
  dp->add_option("--out", prep.out, "output folder (new or empty)")->required();
  dp->add_option("--val-fraction", prep.val_fraction, "tail of each file held out")
      ->check(cli::number_in(0, 0.5, /*above_lo=*/true));
  dp->add_option("--tokenizer", prep.tokenizer,
                 "bytes, or a folder with vocab.json + merges.txt (`stoch tokenizer train`)");
  dp->add_option("--format", prep.format, "stoch, nanogpt (raw uint16) or llmc (headed shards)")
      ->check(CLI::IsMember({"stoch", "nanogpt", "llmc"}));
  dp->add_option("--shard-tokens", prep.shard_tokens, "llmc: ids per shard file")
      ->check(cli::integer_in(1, 2'000'000'000));

  cli::TokenizerTrainArgs tok_train;
  cli::TokenizerCodeArgs tok_code;
  auto* tk = app.add_subcommand("tokenizer", "byte-level BPE tokenizers (GPT-2 format)");
  tk->require_subcommand(1);
  auto* tkt = tk->add_subcommand(
      "train", "learn a byte-level BPE vocabulary: vocab.json + merges.txt (as HF tokenizers)");
  tkt->add_option("--input", tok_train.inputs, "input text files")->required();
  tkt->add_option("--vocab-size", tok_train.vocab_size, "tokens in the vocabulary")
      ->required()
      ->check(cli::integer_in(1, 1'000'000'000));
  tkt->add_option("--out", tok_train.out, "output folder")->required();
  tkt->add_option("--special", tok_train.specials, "special tokens, given the first ids");
  tkt->add_option("--min-frequency", tok_train.min_frequency, "fewest occurrences of a merge")
      ->check(cli::integer_in(0));
  auto* tke = tk->add_subcommand("encode", "print the token ids of each input line");
  auto* tkd = tk->add_subcommand("decode", "print the text of each line of token ids");
  for (auto* sub : {tke, tkd}) {
    sub->add_option("--tokenizer", tok_code.tokenizer, "bytes, or a vocab.json + merges.txt folder")
        ->required();
    sub->add_option("--input", tok_code.input, "input file (default: stdin)");
  }
  tke->add_flag("--timing", tok_code.timing, "log the encoding throughput (one thread)");

  cli::SweepArgs sweep;
  cli::add_sweep_command(app, sweep);
  auto* sw = app.get_subcommand("sweep");

  cli::CompareArgs compare;
#ifdef STOCH_PYTHON
  compare.default_python = STOCH_PYTHON;
#endif
  auto* cmp = cli::add_compare_command(app, compare);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& ex) {
    return app.exit(ex);
  } catch (const CLI::CallForAllHelp& ex) {
    return app.exit(ex);
  } catch (const CLI::CallForVersion& ex) {
    return app.exit(ex);
  } catch (const CLI::ParseError& ex) {
    std::cerr << "stoch: error: " << ex.what() << " (see stoch --help)\n";
    return kExitBadInput;
  }

  try {
    cpu_isa();  // a bad STOCH_CPU_ISA stops here, before anything is written
    if (*t) return cli::train(train);
    if (*r) return cli::resume(resume);
    if (*c) return cli::print_config(config);
    if (*e) return cli::eval(eval);
    if (*s) return cli::sample(sample);
    if (*x) return cli::export_model(exp);
    if (*dp) return cli::data_prepare(prep);
    if (*tkt) return cli::tokenizer_train(tok_train);
    if (*tke) return cli::tokenizer_encode(tok_code);
    if (*tkd) return cli::tokenizer_decode(tok_code);
    if (*sw) return cli::sweep(sweep);
    if (*cmp) return cli::compare(compare);
  } catch (const InputError& ex) {
    log::error(ex.what());
    return kExitBadInput;
  } catch (const c10::Error& ex) {
    log::error(std::string("run failed: ") + ex.what_without_backtrace());
    return kExitFailure;
  } catch (const std::exception& ex) {
    log::error(std::string("run failed: ") + ex.what());
    return kExitFailure;
  }
  return kExitBadInput;
}
