// Hugging Face GPT-2 interop against the real `transformers` (the project's Python): a stoch
// run exported with `stoch export --format hf-gpt2` gives transformers' logits equal to stoch's,
// and a GPT2LMHeadModel saved by Python starts a stoch run (`model.init_from`) with its logits.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdlib>

#include "core/errors.h"
#include "core/torch/model_tensors.h"
#include "core/torch/safetensors.h"
#include "models/hf_gpt2.h"
#include "test_util.h"
#include "train/experiment.h"
#include "train/lm_task.h"

namespace stoch {
namespace {

namespace fs = std::filesystem;

constexpr double kLogitTolerance = 1e-4;

// Runs SCRIPT (text) in the project's Python, offline: the models are made or exported here.
test::Result run_python(const std::string& script, const std::string& dir) {
  test::write_text(dir + "/script.py", script);
  return test::run_python(dir + "/script.py", "", "HF_HUB_OFFLINE=1 TRANSFORMERS_VERBOSITY=error");
}

// The value after "maxdiff " in a script's output, or NaN.
double max_diff(const test::Result& r) {
  const auto at = r.output.find("maxdiff ");
  return at == std::string::npos ? NAN : std::stod(r.output.substr(at + 8));
}

// The input every comparison feeds: [2, 16] ids below 8.
torch::Tensor test_ids() {
  return torch::arange(32, torch::kLong).mul(5).add(3).remainder(8).reshape({2, 16});
}
const char* kIdsPython = "ids = (torch.arange(32) * 5 + 3).remainder(8).reshape(2, 16)\n";

std::string lm_config(const std::string& model, int steps = 6) {
  return "task: lm\n"
         "run: {seed: 3, threads: 1}\n"
         "data: {source: markov, vocab_size: 8, order: 1, alpha: 0.3}\n"
         "model: {context: 16, n_layer: 2, n_head: 2, d_model: 16, " +
         model +
         "}\n"
         "optim: {lr: 0.01}\n"
         "schedule: {warmup_steps: 2}\n"
         "train: {steps: " +
         std::to_string(steps) +
         ", batch_size: 4, eval_every: 3, eval_batches: 2, ckpt_every: 3}\n"
         "log: {every: 1, console_every: 1000}\n";
}

train::ExperimentConfig parse(const std::string& path) {
  return train::parse_experiment(train::load_config(path, {}));
}

// stoch's logits for test_ids() from a run's checkpoint, built straight from its config.
torch::Tensor run_logits(const std::string& run, int64_t step) {
  auto mc = parse(run + "/config.yaml").task_sections<train::LmSections>().model;
  mc.vocab_size = 8;
  models::Gpt gpt(mc);
  const std::string file = test::checkpoint_dir(run, step) + "/model.safetensors";
  load_model_tensors(*gpt, read_safetensors(file), file);
  gpt->eval();
  torch::NoGradGuard no_grad;
  return gpt->forward(test_ids());
}

// Exit 2 with one line of output naming `key` (InputError), whatever was logged before it.
void expect_refusal(const test::Result& r, const std::string& key) {
  EXPECT_EQ(r.code, 2) << r.output;
  std::istringstream in(r.output);
  int naming = 0;
  for (std::string line; std::getline(in, line);) naming += line.find(key) != std::string::npos;
  EXPECT_EQ(naming, 1) << r.output;
}

class HfGpt2Export : public ::testing::TestWithParam<std::string> {};

TEST_P(HfGpt2Export, TransformersLogitsMatchStochs) {
  STOCH_REQUIRE(test::python_missing("transformers, safetensors, torch"));
  const std::string dir = test::temp_dir("hfexport");
  // mlp_ratio 3 and dropout: n_inner and the *_pdrop keys are exported too.
  test::write_text(dir + "/c.yaml",
                   lm_config("mlp_ratio: 3, dropout: 0.1, activation: " + GetParam()));
  auto r = test::run_stoch("train " + dir + "/c.yaml --run-dir " + dir + "/run");
  ASSERT_EQ(r.code, 0) << r.output;
  r = test::run_stoch("export " + dir + "/run --format hf-gpt2 --out " + dir + "/hf");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_FALSE(fs::exists(dir + "/hf/vocab.json"));  // synthetic tokens: no tokenizer
  write_safetensors(dir + "/stoch_logits.safetensors", {{"logits", run_logits(dir + "/run", 6)}});
  const std::string script = std::string("import torch\n") +
                             "from safetensors.torch import load_file\n"
                             "from transformers import GPT2LMHeadModel\n"
                             "m = GPT2LMHeadModel.from_pretrained('" +
                             dir + "/hf').eval()\n" + kIdsPython +
                             "with torch.no_grad():\n"
                             "    logits = m(ids).logits\n"
                             "ref = load_file('" +
                             dir +
                             "/stoch_logits.safetensors')['logits']\n"
                             "assert logits.dtype == torch.float32 and logits.shape == ref.shape\n"
                             "print('act', m.config.activation_function)\n"
                             "print('maxdiff', (logits - ref).abs().max().item())\n";
  r = run_python(script, dir);
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find(GetParam() == "gelu" ? "act gelu\n" : "act gelu_new\n"),
            std::string::npos)
      << r.output;
  const double diff = max_diff(r);
  std::cout << "[ hf-gpt2 ] activation " << GetParam() << ": max |logit difference| " << diff
            << "\n";
  EXPECT_LT(diff, kLogitTolerance) << r.output;
}

INSTANTIATE_TEST_SUITE_P(HfGpt2, HfGpt2Export, ::testing::Values("gelu", "gelu_tanh"));

TEST(HfGpt2, InitFromATransformersModelGivesItsLogits) {
  STOCH_REQUIRE(test::python_missing("transformers, safetensors, torch"));
  const std::string dir = test::temp_dir("hfinit");
  // Every parameter moved off its initial value, so that a biased or transposed tensor shows.
  const std::string script = std::string("import torch\n") +
                             "from safetensors.torch import save_file\n"
                             "from transformers import GPT2Config, GPT2LMHeadModel\n"
                             "torch.manual_seed(0)\n"
                             "cfg = GPT2Config(vocab_size=8, n_positions=32, n_embd=16, n_layer=2,"
                             " n_head=2, activation_function='gelu_new')\n"
                             "m = GPT2LMHeadModel(cfg)\n"
                             "with torch.no_grad():\n"
                             "    for p in m.parameters():\n"
                             "        p.add_(torch.randn_like(p) * 0.2)\n"
                             "m.save_pretrained('" +
                             dir + "/py')\n" + "m.eval()\n" + kIdsPython +
                             "with torch.no_grad():\n"
                             "    logits = m(ids).logits.contiguous()\n"
                             "save_file({'logits': logits}, '" +
                             dir + "/py_logits.safetensors')\n";
  auto r = run_python(script, dir);
  ASSERT_EQ(r.code, 0) << r.output;
  torch::Tensor py_logits;
  for (auto& [name, t] : read_safetensors(dir + "/py_logits.safetensors")) py_logits = t;

  // n_inner null is 4 * n_embd: mlp_ratio 4, the default. vocab_size 0 takes the data's 8.
  test::write_text(dir + "/c.yaml",
                   lm_config("activation: gelu_tanh, init_from: " + dir + "/py", 1));
  auto cfg = parse(dir + "/c.yaml");
  train::LmTask task(cfg, torch::kCPU);
  task.start_fresh();
  task.language_model().eval();
  torch::NoGradGuard no_grad;
  const double diff =
      (task.language_model().forward(test_ids()) - py_logits).abs().max().item<double>();
  std::cout << "[ hf-gpt2 ] init_from: max |logit difference| " << diff << "\n";
  EXPECT_LT(diff, kLogitTolerance);

  // Through the command line: a run that barely moves (lr 1e-12) exports what it imported.
  r = test::run_stoch("train " + dir + "/c.yaml --run-dir " + dir +
                      "/run --set optim.lr=1e-12 --set train.ckpt_every=1");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("model.init_from"), std::string::npos) << r.output;
  r = test::run_stoch("export " + dir + "/run --format hf-gpt2 --out " + dir + "/back");
  ASSERT_EQ(r.code, 0) << r.output;
  std::map<std::string, torch::Tensor> original;
  for (auto& [name, t] : read_safetensors(dir + "/py/model.safetensors")) original[name] = t;
  int compared = 0;
  for (auto& [name, t] : read_safetensors(dir + "/back/model.safetensors")) {
    ASSERT_TRUE(original.count(name)) << name;
    auto want = original[name];
    // The run's context (16) keeps the first rows of the 32-position table.
    if (name == "transformer.wpe.weight") want = want.slice(0, 0, 16);
    ASSERT_EQ(t.sizes(), want.sizes()) << name;
    EXPECT_TRUE(torch::allclose(t, want, 0, 1e-6)) << name;
    ++compared;
  }
  EXPECT_EQ(compared, 2 + 2 * 12 + 2);
}

TEST(HfGpt2, WeightsRoundTripThroughTheFormat) {
  models::LmConfig c;
  c.vocab_size = 11;
  c.context = 8;
  c.n_layer = 2;
  c.n_head = 2;
  c.d_model = 8;
  c.mlp_ratio = 3;
  torch::manual_seed(1);
  models::Gpt a(c);
  torch::manual_seed(2);
  models::Gpt b(c);
  const std::string dir = test::temp_dir("hfround");
  test::write_text(dir + "/config.json", models::gpt2_config_json(c));
  write_safetensors(dir + "/model.safetensors", models::gpt2_tensors(*a));
  models::load_gpt2_weights(*b, dir, false);
  const auto pa = a->named_parameters(), pb = b->named_parameters();
  for (const auto& item : pa) EXPECT_TRUE(torch::equal(item.value(), pb[item.key()])) << item.key();

  // A longer position table is cut to the context; a model wider in context is refused.
  c.context = 6;
  models::Gpt shorter(c);
  EXPECT_NO_THROW(models::load_gpt2_weights(*shorter, dir, false));
  c.context = 9;
  models::Gpt longer(c);
  EXPECT_THROW(models::load_gpt2_weights(*longer, dir, false), InputError);
}

TEST(HfGpt2, RefusesWhatGpt2CannotExpress) {
  const std::string dir = test::temp_dir("hfrefuse");
  for (const std::string& model : std::vector<std::string>{"positions: rotary", "bias: false"}) {
    const std::string name = model.substr(0, model.find(':'));
    test::write_text(dir + "/" + name + ".yaml", lm_config(model, 2));
    auto r = test::run_stoch("train " + dir + "/" + name + ".yaml --run-dir " + dir + "/" + name);
    ASSERT_EQ(r.code, 0) << r.output;
    r = test::run_stoch("export " + dir + "/" + name + " --format hf-gpt2 --out " + dir + "/x");
    expect_refusal(r, "model." + name);
    EXPECT_FALSE(fs::exists(dir + "/x"));
  }
}

TEST(HfGpt2, InitFromRefusesAnotherArchitectureBeforeMakingTheRun) {
  const std::string dir = test::temp_dir("hfmismatch");
  test::write_text(dir + "/c.yaml", lm_config("mlp_ratio: 2", 2));
  auto r = test::run_stoch("train " + dir + "/c.yaml --run-dir " + dir + "/run");
  ASSERT_EQ(r.code, 0) << r.output;
  r = test::run_stoch("export " + dir + "/run --format hf-gpt2 --out " + dir + "/hf");
  ASSERT_EQ(r.code, 0) << r.output;
  // An existing non-empty --out is refused; an empty one is filled.
  r = test::run_stoch("export " + dir + "/run --format hf-gpt2 --out " + dir + "/hf");
  EXPECT_EQ(r.code, 2) << r.output;
  fs::create_directories(dir + "/empty");
  r = test::run_stoch("export " + dir + "/run --checkpoint 0 --format hf-gpt2 --out " + dir +
                      "/empty");
  EXPECT_EQ(r.code, 2) << r.output;  // no checkpoint of step 0
  r = test::run_stoch("export " + dir + "/run --format hf-gpt2 --out " + dir + "/c.yaml/sub");
  expect_refusal(r, "--out " + dir + "/c.yaml/sub: cannot create");
  r = test::run_stoch("export " + dir + "/run --checkpoint 2 --format hf-gpt2 --out " + dir +
                      "/empty/");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_TRUE(fs::exists(dir + "/empty/model.safetensors"));

  const std::string init = " --set model.init_from=" + dir + "/hf";
  r = test::run_stoch("train " + dir + "/c.yaml --run-dir " + dir + "/ok" + init);
  EXPECT_EQ(r.code, 0) << r.output;
  const std::vector<std::pair<std::string, std::string>> mismatches = {
      {"model.n_layer", "model.n_layer=3"},
      {"model.n_head", "model.n_head=4"},
      {"model.d_model", "model.d_model=32"},
      {"model.mlp_ratio", "model.mlp_ratio=4"},
      {"model.vocab_size", "model.vocab_size=7"},  // 9 pads the folder's 8 (as its export)
      {"model.context", "model.context=17"},
      {"model.activation", "model.activation=gelu_tanh"},
      {"model.bias", "model.bias=false"},
      {"model.positions", "model.positions=rotary"}};
  for (const auto& [key, set] : mismatches) {
    r = test::run_stoch("train " + dir + "/c.yaml --run-dir " + dir + "/bad" + init + " --set " +
                        set);
    expect_refusal(r, key);
    EXPECT_FALSE(fs::exists(dir + "/bad")) << key;
  }
  // Both values named: stoch's and the file's.
  r = test::run_stoch("train " + dir + "/c.yaml --run-dir " + dir + "/bad" + init +
                      " --set model.n_layer=3");
  EXPECT_NE(r.output.find("3 but"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("n_layer 2"), std::string::npos) << r.output;

  // A missing tensor names the file and the tensor.
  TensorList kept;
  for (auto& [name, t] : read_safetensors(dir + "/hf/model.safetensors"))
    if (name != "transformer.h.1.mlp.c_fc.bias") kept.emplace_back(name, t);
  write_safetensors(dir + "/hf/model.safetensors", kept);
  r = test::run_stoch("train " + dir + "/c.yaml --run-dir " + dir + "/bad" + init);
  expect_refusal(r, "model.safetensors: no tensor transformer.h.1.mlp.c_fc.bias");
  EXPECT_FALSE(fs::exists(dir + "/bad"));
}

TEST(HfGpt2, ResumeKeepsTheCheckpointNotInitFrom) {
  const std::string dir = test::temp_dir("hfresume");
  test::write_text(dir + "/c.yaml", lm_config("dropout: 0", 2));
  auto r = test::run_stoch("train " + dir + "/c.yaml --run-dir " + dir + "/src");
  ASSERT_EQ(r.code, 0) << r.output;
  r = test::run_stoch("export " + dir + "/src --format hf-gpt2 --out " + dir + "/hf");
  ASSERT_EQ(r.code, 0) << r.output;
  r = test::run_stoch("train " + dir + "/c.yaml --run-dir " + dir + "/run --set train.steps=3" +
                      " --set model.init_from=" + dir + "/hf");
  ASSERT_EQ(r.code, 0) << r.output;
  fs::remove_all(dir + "/hf");  // a resume does not read it
  r = test::run_stoch("resume " + dir + "/run --set train.steps=4");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("resumed from"), std::string::npos) << r.output;
}

TEST(HfGpt2, ExportCopiesTheTokenizerOfATokenFolder) {
  const std::string dir = test::temp_dir("hftok");
  std::string text;
  for (int i = 0; i < 200; ++i) text += "the quick brown fox jumps over the lazy dog\n";
  test::write_text(dir + "/in.txt", text);
  auto r = test::run_stoch("data prepare --input " + dir + "/in.txt --out " + dir + "/tok");
  ASSERT_EQ(r.code, 0) << r.output;
  // What a BPE-prepared folder holds beside train.bin: a tokenizer's two files.
  r = test::run_stoch("tokenizer train --input " + dir + "/in.txt --vocab-size 270 --out " + dir +
                      "/bpe --special '<|endoftext|>'");
  ASSERT_EQ(r.code, 0) << r.output;
  for (const char* f : {"/vocab.json", "/merges.txt"})
    test::write_text(dir + "/tok" + f, test::read_text(dir + "/bpe" + f));
  std::string meta = test::read_text(dir + "/tok/meta.json");
  const auto at = meta.find("\"byte\"");
  ASSERT_NE(at, std::string::npos) << meta;
  test::write_text(dir + "/tok/meta.json", meta.replace(at, 6, "\"bpe\""));
  // A tiny run on the token folder DATA_DIR.
  const auto config_on = [](const std::string& data_dir) {
    return "task: lm\nrun: {threads: 1}\ndata: {source: tokens, dir: " + data_dir +
           "}\nmodel: {context: 16, n_layer: 1, n_head: 2, d_model: 16}\n"
           "train: {steps: 2, batch_size: 4, eval_every: 0, eval_batches: 1}\n"
           "schedule: {warmup_steps: 1}\n";
  };
  test::write_text(dir + "/c.yaml", config_on(dir + "/tok"));
  r = test::run_stoch("train " + dir + "/c.yaml --run-dir " + dir + "/run");
  ASSERT_EQ(r.code, 0) << r.output;
  r = test::run_stoch("export " + dir + "/run --format hf-gpt2 --out " + dir + "/hf");
  ASSERT_EQ(r.code, 0) << r.output;
  for (const char* f : {"/vocab.json", "/merges.txt"})
    EXPECT_EQ(test::read_text(dir + "/hf" + f), test::read_text(dir + "/bpe" + f)) << f;
  EXPECT_TRUE(fs::exists(dir + "/hf/tokenizer_config.json"));
  const std::string config = test::read_text(dir + "/hf/config.json");
  EXPECT_NE(config.find("\"vocab_size\": 256"), std::string::npos) << config;
  // generate() in transformers stops at the vocabulary's <|endoftext|> (id 0): it was null.
  EXPECT_NE(config.find("\"eos_token_id\": 0"), std::string::npos) << config;

  // A relative data.dir read from another directory, or a BPE folder without its merges: the
  // export would lack its tokenizer, so it is refused before anything is written.
  test::write_text(dir + "/rel.yaml", config_on("tok"));
  r = test::run_command("cd " + dir + " && " + STOCH_BINARY + " train rel.yaml --run-dir rel");
  ASSERT_EQ(r.code, 0) << r.output;
  r = test::run_stoch("export " + dir + "/rel --format hf-gpt2 --out " + dir + "/hf2");
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_NE(r.output.find(dir + "/rel/config.yaml: data.dir tok: token folder not found from here"),
            std::string::npos)
      << r.output;
  fs::remove(dir + "/tok/merges.txt");
  r = test::run_stoch("export " + dir + "/run --format hf-gpt2 --out " + dir + "/hf2");
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_NE(r.output.find(dir + "/tok/merges.txt: missing (" + dir +
                          "/tok/meta.json says the ids are BPE tokens)"),
            std::string::npos)
      << r.output;
  EXPECT_FALSE(fs::exists(dir + "/hf2"));
}

// A run on BPE tokens exports its tokenizer: transformers' AutoTokenizer encodes as stoch does.
TEST(HfGpt2, ExportedBpeTokenizerLoadsInTransformers) {
  STOCH_REQUIRE(test::python_missing("transformers, safetensors, torch"));
  const std::string dir = test::temp_dir("hfbpe");
  std::string text;
  for (int i = 0; i < 300; ++i)
    text += "the quick brown fox jumps over the lazy dog " + std::to_string(i) + "\n";
  test::write_text(dir + "/in.txt", text);
  // A special token of stoch's own; GPT-2's <|endoftext|> is not one of this vocabulary's.
  auto r = test::run_stoch("tokenizer train --input " + dir + "/in.txt --vocab-size 300 --out " +
                           dir + "/tok --special '<|sep|>'");
  ASSERT_EQ(r.code, 0) << r.output;
  r = test::run_stoch("data prepare --input " + dir + "/in.txt --tokenizer " + dir + "/tok --out " +
                      dir + "/data");
  ASSERT_EQ(r.code, 0) << r.output;
  test::write_text(dir + "/c.yaml",
                   "task: lm\nrun: {threads: 1}\ndata: {source: tokens, dir: " + dir +
                       "/data}\nmodel: {context: 16, n_layer: 1, n_head: 2, d_model: 16, "
                       "vocab_size: 320}\n"
                       "train: {steps: 2, batch_size: 4, eval_every: 0, eval_batches: 1}\n"
                       "schedule: {warmup_steps: 1}\n");
  r = test::run_stoch("train " + dir + "/c.yaml --run-dir " + dir + "/run");
  ASSERT_EQ(r.code, 0) << r.output;
  r = test::run_stoch("export " + dir + "/run --format hf-gpt2 --out " + dir + "/hf");
  ASSERT_EQ(r.code, 0) << r.output;
  // Without tokenizer_config.json, transformers split <|sep|> into bytes and added
  // <|endoftext|> as id 300, past the model's vocabulary.
  const std::string line = "the quick <|sep|> brown fox <|endoftext|> 42";
  test::write_text(dir + "/line.txt", line + "\n");
  const auto ours =
      test::run_stoch("tokenizer encode --tokenizer " + dir + "/tok --input " + dir + "/line.txt");
  ASSERT_EQ(ours.code, 0) << ours.output;
  r = run_python(
      "from transformers import AutoTokenizer, GPT2LMHeadModel\n"
      "t = AutoTokenizer.from_pretrained('" +
          dir +
          "/hf')\n"
          "m = GPT2LMHeadModel.from_pretrained('" +
          dir +
          "/hf')\n"
          // The padded rows (model.vocab_size 320) are dropped: no probability for ids that
          // no text has. No <|endoftext|> here, so no eos.
          "assert m.config.vocab_size == 300, m.config.vocab_size\n"
          "assert m.config.eos_token_id is None\n"
          "print('ids', ' '.join(map(str, t('" +
          line + "').input_ids)))\n",
      dir);
  ASSERT_EQ(r.code, 0) << r.output;
  const std::string first = ours.output.substr(0, ours.output.find('\n'));
  // The same padded config starts from the export: its 300 rows fill the first of 320.
  const auto again = test::run_stoch("train " + dir + "/c.yaml --run-dir " + dir +
                                     "/again --set model.init_from=" + dir + "/hf");
  EXPECT_EQ(again.code, 0) << again.output;
  EXPECT_NE(again.output.find("initial weights from " + dir + "/hf"), std::string::npos)
      << again.output;
  EXPECT_NE(r.output.find("ids " + first + "\n"), std::string::npos) << r.output << ours.output;
}

}  // namespace
}  // namespace stoch
