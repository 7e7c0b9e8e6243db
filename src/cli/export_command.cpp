// export: a language model's checkpoint in another framework's format (Hugging Face GPT-2).
#include <torch/torch.h>

#include <CLI/CLI.hpp>

#include <filesystem>
#include <memory>
#include <optional>

#include "cli/checks.h"
#include "cli/command.h"
#include "cli/run_dir.h"
#include "core/disk_space.h"
#include "core/errors.h"
#include "core/log.h"
#include "core/registry.h"
#include "core/staged_folder.h"
#include "core/strings.h"
#include "core/torch/model_tensors.h"
#include "core/torch/safetensors.h"
#include "core/whole_file.h"
#include "data/token_formats.h"
#include "data/tokenizer/bpe_files.h"
#include "data/tokenizer/bpe_tokenizer.h"
#include "models/hf_gpt2.h"
#include "train/lm_task.h"

namespace fs = std::filesystem;

namespace stoch::cli {
namespace {

struct ExportArgs {
  std::string run_dir;
  int64_t checkpoint = -1;  // -1: newest complete
  std::string format;       // hf-gpt2
  std::string out;
};

// The tokenizer files the export takes from the run's token folder (those of a BPE folder),
// checked before anything is written. A folder that cannot be found from here (a relative
// data.dir read from another directory) is refused, not exported without them.
std::vector<std::string> tokenizer_files(const std::string& run_dir, const std::string& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    throw InputError(stoch::str(run_dir, "/config.yaml: data.dir ", dir,
                                ": token folder not found from here (a relative folder is "
                                "read from the current directory), so its tokenizer files "
                                "cannot go with the export"));
  return data::bpe_tokenizer_files(dir);
}

// The model of a checkpoint, vocab_size resolved from its own embedding (0 in the config takes
// the data's, which export need not open).
models::Gpt checkpoint_gpt(models::LmConfig mc, const Checkpoint& ckpt) {
  const auto& saved = ckpt.tensors.at("model");
  for (const auto& [name, t] : saved)
    if (name == "param.wte.weight") mc.vocab_size = t.size(0);
  models::Gpt gpt(mc);
  load_model_tensors(*gpt, saved, ckpt.dir + "/model.safetensors");
  gpt->eval();
  return gpt;
}

int export_model(const ExportArgs& a) {
  auto cfg = read_run_config(a.run_dir);
  const auto* task = registry<train::TaskEntry>().find(cfg.task);
  if (!task || !task->language_model)
    throw InputError(stoch::str(a.run_dir, "/config.yaml: task is ", cfg.task,
                                ", --format hf-gpt2 needs an lm run"));
  const auto& s = cfg.task_sections<train::LmSections>();
  models::check_gpt2_expressible(s.model);  // before anything is read or written
  fs::path out_path = fs::path(a.out).lexically_normal();
  if (!out_path.has_filename()) out_path = out_path.parent_path();  // "DIR/" is DIR
  const std::string out = out_path.string();
  StagedFolder::check_target(out, "--out " + a.out);

  const std::vector<std::string> tokenizer = data::token_source_entry(s.data).prepared_folder
                                                 ? tokenizer_files(a.run_dir, s.data.dir)
                                                 : std::vector<std::string>{};
  const Checkpoint ckpt = load_run_checkpoint(a.run_dir, a.checkpoint);
  torch::NoGradGuard no_grad;
  models::Gpt gpt = checkpoint_gpt(s.model, ckpt);

  models::LmConfig exported = gpt->config();
  TensorList tensors = models::gpt2_tensors(*gpt);
  // Read before anything is written: a malformed tokenizer is refused naming its own files.
  std::string tokenizer_config;
  std::optional<int64_t> end_of_text;
  if (!tokenizer.empty()) {
    const std::string from = fs::path(tokenizer.front()).parent_path().string();
    const data::BpeTokenizer bpe(data::read_bpe_files(from), from);
    tokenizer_config = models::gpt2_tokenizer_config_json(bpe.special_tokens(), bpe.special_ids(),
                                                          gpt->config().context);
    for (size_t i = 0; i < bpe.special_tokens().size(); ++i)
      if (bpe.special_tokens()[i] == "<|endoftext|>") end_of_text = bpe.special_ids()[i];
    // Rows past the tokenizer's ids (model.vocab_size padded for speed) are ids no text has and
    // stoch never samples; transformers would give them probability. The unembedding is tied to
    // wte, so dropping them changes no other logit.
    if (bpe.vocab_size() < exported.vocab_size) {
      exported.vocab_size = bpe.vocab_size();
      for (auto& [name, t] : tensors)
        if (name == "transformer.wte.weight") t = t.narrow(0, 0, exported.vocab_size).contiguous();
    }
  }

  // Written whole into a staging folder beside --out, then renamed: never half an export.
  StagedFolder staged(out, "--out " + a.out);
  std::vector<std::string> copied;
  noting_free_space(staged.path(), [&] {
    write_file_durably(staged.path() + "/config.json",
                       models::gpt2_config_json(exported, end_of_text));
    write_safetensors(staged.path() + "/model.safetensors", tensors, {{"format", "pt"}});
    for (const auto& from : tokenizer) {
      const std::string name = fs::path(from).filename().string();
      copy_file_durably(from, staged.path() + "/" + name);
      copied.push_back(name);
    }
    if (!tokenizer_config.empty()) {
      write_file_durably(staged.path() + "/tokenizer_config.json", tokenizer_config);
      copied.push_back("tokenizer_config.json");
    }
    staged.commit();
  });
  log::info(stoch::str("exported step ", ckpt.step, " of ", a.run_dir, " as GPT-2 to ", out,
                       " (config.json, model.safetensors",
                       copied.empty() ? "" : ", " + join(copied, ", "), ")"));
  return kExitOk;
}

const bool registered = register_command(
    "export", "write a language model in another format (Hugging Face)", 60,
    [](CLI::App& cmd) -> CommandRun {
      auto a = std::make_shared<ExportArgs>();
      cmd.add_option("run_dir", a->run_dir, "run directory")->required();
      cmd.add_option("--checkpoint", a->checkpoint, "checkpoint step")
          ->default_str("the newest complete")
          ->check(integer_in(0));
      cmd.add_option("--format", a->format,
                     "hf-gpt2: config.json + model.safetensors for transformers' GPT2LMHeadModel")
          ->required()
          ->check(CLI::IsMember({"hf-gpt2"}));
      cmd.add_option("--out", a->out, "output folder (absent or empty)")->required();
      return [a] { return export_model(*a); };
    });

}  // namespace
}  // namespace stoch::cli
