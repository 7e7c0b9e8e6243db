#include <gtest/gtest.h>

#include "core/config_tree.h"
#include "core/errors.h"
#include "core/torch/device.h"
#include "test_util.h"
#include "train/experiment.h"
#include "train/lm_task.h"

namespace stoch {
namespace {

using test::write_text;

std::string error_of(const std::string& yaml, const std::vector<std::string>& sets = {}) {
  const std::string dir = test::temp_dir("cfg");
  write_text(dir + "/c.yaml", yaml);
  try {
    train::parse_experiment(train::load_config(dir + "/c.yaml", sets));
  } catch (const InputError& e) {
    std::string msg = e.what();
    const auto pos = msg.find(dir);
    if (pos != std::string::npos) msg.replace(pos, dir.size(), "DIR");
    return msg;
  }
  return "";
}

TEST(Config, DefaultsFillEveryKey) {
  auto cfg = train::parse_experiment(config::parse_text("task: lm\n", "t"));
  EXPECT_EQ(cfg.train.steps, 1000);
  EXPECT_EQ(cfg.task_sections<train::LmSections>().model.n_layer, 4);
}

TEST(Config, UnknownKeySuggestsNearest) {
  EXPECT_EQ(error_of("task: lm\ntrain:\n  stesp: 5\n"),
            "DIR/c.yaml:3: unknown key train.stesp (did you mean train.steps?)");
  EXPECT_EQ(error_of("trian: {steps: 5}\n"),
            "DIR/c.yaml:1: unknown key trian (did you mean train?)");
}

TEST(Config, WrongTypeNamesFileLineAndExpectation) {
  EXPECT_EQ(error_of("train:\n  steps: many\n"),
            "DIR/c.yaml:2: train.steps: expected an integer >= 1, got \"many\"");
  EXPECT_EQ(error_of("model: {dropout: 1.5}\n"),
            "DIR/c.yaml:1: model.dropout: expected a number in [0, 0.99], got \"1.5\"");
  EXPECT_EQ(
      error_of("run: {device: gpu}\n"),
      "DIR/c.yaml:1: run.device: expected one of auto, cpu, cuda, got \"gpu\" (did you mean cpu?)");
  EXPECT_EQ(error_of("model: {bias: maybe}\n"),
            "DIR/c.yaml:1: model.bias: expected true or false, got \"maybe\"");
  // The micro-batches per step are bounded: tokens per step overflowed an int64 (UB) before.
  EXPECT_EQ(error_of("train: {grad_accum: 9223372036854775807}\n"),
            "DIR/c.yaml:1: train.grad_accum: expected an integer in [1, 65536], got "
            "\"9223372036854775807\"");
  EXPECT_EQ(error_of("train: 5\n"),
            "DIR/c.yaml:1: train: expected a mapping of keys, got a scalar");
}

// A section of another task was "unknown key dqn (did you mean run?)".
TEST(Config, AnotherTasksSectionIsNamedAsSuch) {
  try {
    train::parse_experiment(
        config::parse_text("task: value_regression\ndqn: {gamma: 0.9}\n", "c.yaml"));
    ADD_FAILURE() << "accepted";
  } catch (const InputError& e) {
    EXPECT_NE(
        std::string(e.what()).find(
            "c.yaml:2: dqn is a section of task dqn, but this config's task is value_regression"),
        std::string::npos)
        << e.what();
  }
}

TEST(Config, UnknownTaskSuggestsNearest) {
  EXPECT_EQ(error_of("task: llm\n"),
            "DIR/c.yaml:1: task: expected one of chess_value, dqn, lm, value_regression, got "
            "\"llm\" (did you mean lm?)");
}

TEST(Config, MalformedYamlNamesLine) {
  const std::string e = error_of("train:\n  steps: 5\n  eval_every: [1, 2\n");
  EXPECT_EQ(e.rfind("DIR/c.yaml:", 0), 0u) << e;
  EXPECT_NE(e.find("malformed YAML"), std::string::npos) << e;
}

TEST(Config, BaseInheritanceAndSetOverrides) {
  const std::string dir = test::temp_dir("base");
  write_text(dir + "/base.yaml", "train: {steps: 7, batch_size: 3}\nmodel: {n_layer: 2}\n");
  write_text(dir + "/c.yaml", "base: [base.yaml]\ntrain: {steps: 9}\n");
  auto cfg = train::parse_experiment(train::load_config(dir + "/c.yaml", {"model.d_model=32"}));
  EXPECT_EQ(cfg.train.steps, 9);       // the file wins over its base
  EXPECT_EQ(cfg.train.batch_size, 3);  // untouched keys come from the base
  EXPECT_EQ(cfg.task_sections<train::LmSections>().model.n_layer, 2);
  EXPECT_EQ(cfg.task_sections<train::LmSections>().model.d_model, 32);
}

TEST(Config, SetOverridesAreTypeChecked) {
  EXPECT_EQ(error_of("task: lm\n", {"train.steps=abc"}),
            "--set train.steps: train.steps: expected an integer >= 1, got \"abc\"");
  EXPECT_EQ(error_of("task: lm\n", {"train.stepz=3"}),
            "--set train.stepz: unknown key train.stepz (did you mean train.steps?)");
  EXPECT_EQ(error_of("task: lm\n", {"nonsense"}),
            "--set nonsense: expected KEY=VALUE, e.g. train.steps=100");
  // A section or key the option adds is blamed on it, not on the file's first line.
  EXPECT_EQ(error_of("task: lm\n", {"trian.steps=5"}),
            "--set trian.steps: unknown key trian (did you mean train?)");
  EXPECT_EQ(error_of("task: lm\nmodel: {n_layer: 2}\n", {"model.foo.bar=5"})
                .rfind("--set model.foo.bar: unknown key model.foo (valid keys: ", 0),
            0u);
  EXPECT_EQ(error_of("task: lm\n", {"hooks.0.every=5"}).rfind("--set hooks.0.every: hooks: ", 0),
            0u);
}

// A hook entry without a name is refused naming its line (the message named no place).
TEST(Config, AHookEntryWithoutANameNamesItsLine) {
  const std::string e = error_of("task: lm\nhooks:\n  - {name: entropy}\n  - every: 10\n");
  EXPECT_EQ(e.rfind("DIR/c.yaml:4: hooks.1.name: missing; expected one of ", 0), 0u) << e;
  EXPECT_NE(e.find("entropy"), std::string::npos) << e;
}

// Inputs that YAML allows but a config cannot mean: aliases that multiply a few hundred bytes
// into billions of values (minutes and gigabytes before), a second document (ignored before),
// and infinite numbers (`optim.lr: .inf` was accepted).
TEST(Config, AliasBombsSecondDocumentsAndInfinitiesAreRefused) {
  std::string bomb = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n";
  for (int i = 1; i <= 8; ++i)
    bomb += "a" + std::to_string(i) + ": &a" + std::to_string(i) + " [" + [&] {
      std::string items;
      for (int k = 0; k < 10; ++k) items += (k ? ", *a" : "*a") + std::to_string(i - 1);
      return items;
    }() + "]\n";
  EXPECT_EQ(error_of(bomb),
            "DIR/c.yaml: more than 100000 values (aliases that repeat a part many times over?)");
  EXPECT_EQ(error_of("train: {steps: 5}\n---\ntrain: {steps: 6}\n"),
            "DIR/c.yaml:2: a second YAML document; a config is one document");
  EXPECT_EQ(error_of("--- # one document\ntrain: {steps: 5}\n...\n# after its end\ntask: lm\n"),
            "DIR/c.yaml:5: a second YAML document; a config is one document");
  EXPECT_EQ(error_of("---\ntrain: {steps: 5}\n...\n"), "");
  EXPECT_EQ(error_of("--- {train: {steps: 5}}\n"), "");
  // Text on which yaml-cpp 0.7's LoadAll loops for ever (found by fuzz_config): refused at once.
  EXPECT_EQ(
      error_of("task: lm\n", {"model.x=,ode=c"}).rfind("--set model.x: unknown key model.x", 0),
      0u);
  EXPECT_EQ(error_of("optim: {lr: .inf}\n"),
            "DIR/c.yaml:1: optim.lr: expected a number > 0, got \".inf\"");
  EXPECT_NE(error_of("task: lm\n", {"optim.weight_decay=-.inf"}).find("expected a number"),
            std::string::npos);
}

TEST(Config, BaseCycleAndMissingFileAreErrors) {
  const std::string dir = test::temp_dir("cycle");
  write_text(dir + "/a.yaml", "base: b.yaml\n");
  write_text(dir + "/b.yaml", "base: a.yaml\n");
  EXPECT_THROW(config::load_file(dir + "/a.yaml"), InputError);
  EXPECT_THROW(config::load_file(dir + "/missing.yaml"), InputError);
}

TEST(Config, PrintedConfigReadsBackIdentically) {
  auto cfg = train::parse_experiment(
      config::parse_text("task: lm\noptim: {lr: 0.0003}\ndata: {files: [a b.txt, 'x: y']}\n", "t"));
  const std::string yaml = train::to_yaml(cfg, true);
  auto again = train::parse_experiment(config::parse_text(yaml, "printed"));
  EXPECT_EQ(train::to_yaml(again, true), yaml);
  EXPECT_DOUBLE_EQ(again.optim.lr, 0.0003);
  EXPECT_EQ(again.task_sections<train::LmSections>().data.files[1], "x: y");
}

TEST(Config, ResumableKeysAreDeclared) {
  auto cfg = train::parse_experiment(
      config::parse_text("task: lm\nhooks: [{name: entropy, every: 10}]\n", "t"));
  const auto keys = train::list_keys(cfg);
  EXPECT_TRUE(keys.resumable.count("train.steps"));
  EXPECT_FALSE(keys.resumable.count("optim.lr"));
  EXPECT_TRUE(keys.all.count("model.n_layer"));
  // Keys inside list entries too: a hook's interval, as `stoch config` says.
  EXPECT_TRUE(keys.resumable.count("hooks.0.every"));
  EXPECT_FALSE(keys.resumable.count("hooks.0.name"));
}

TEST(Config, KeysFixedForEvaluationAreDeclaredAndPrinted) {
  auto cfg = train::parse_experiment(config::parse_text("task: dqn\n", "t"));
  const auto fixed = train::list_keys(cfg).fixed_for_eval;
  // eval refuses these by their declaration (tests/rl/test_dqn.cpp), not by a list of its own.
  EXPECT_TRUE(fixed.count("env.name"));
  EXPECT_TRUE(fixed.count("dqn.gamma"));
  EXPECT_FALSE(fixed.count("dqn.eval_episodes"));
  const std::string printed = train::to_yaml(cfg, /*with_docs=*/true);
  const auto line = printed.substr(printed.find("gamma:"));
  EXPECT_NE(line.substr(0, line.find('\n')).find("eval keeps the run's"), std::string::npos)
      << line.substr(0, line.find('\n'));
}

TEST(Config, EveryShippedConfigIsValid) {
  int n = 0;
  for (const auto& e :
       test::fs::recursive_directory_iterator(std::string(STOCH_SOURCE_DIR) + "/configs")) {
    if (e.path().extension() != ".yaml") continue;
    EXPECT_NO_THROW(train::parse_experiment(train::load_config(e.path().string(), {}))) << e.path();
    ++n;
  }
  EXPECT_GE(n, 10);
}

TEST(Cli, BadConfigExitsTwoWithOneLineAndNoRunDir) {
  const std::string dir = test::temp_dir("cli");
  write_text(dir + "/c.yaml", "task: lm\ntrain: {stepss: 3}\n");
  const auto r = test::expect_train_refused(
      dir, "c.yaml:2: unknown key train.stepss (did you mean train.steps?)");
  EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
}

// `train --run-dir` starts afresh there: a folder of the user's (a config.yaml of their own,
// notes, the root folder) was written over, its metrics.jsonl removed and tb/ erased, exit 0.
TEST(Cli, TrainRefusesAFolderThatIsNotAStochRun) {
  const std::string dir = test::temp_dir("cli");
  write_text(dir + "/c.yaml", test::tiny_lm_config(2));
  const std::string mine = dir + "/mine";
  test::fs::create_directories(mine);
  write_text(mine + "/notes.md", "my notes\n");
  write_text(mine + "/metrics.jsonl", "mine\n");
  test::expect_refused("train " + dir + "/c.yaml --run-dir " + mine,
                       "--run-dir " + mine + ": holds notes.md, which is not part of a stoch run");
  EXPECT_EQ(test::read_text(mine + "/metrics.jsonl"), "mine\n");
  test::fs::remove(mine + "/notes.md");
  write_text(mine + "/config.yaml", "task: lm\n");  // the user's own config, not a run's
  test::expect_refused("train " + dir + "/c.yaml --run-dir " + mine,
                       mine + "/config.yaml: not a run's config written by stoch");
  EXPECT_EQ(test::read_text(mine + "/config.yaml"), "task: lm\n");
  EXPECT_EQ(test::read_text(mine + "/metrics.jsonl"), "mine\n");
  test::expect_refused("train " + dir + "/c.yaml --run-dir " + dir + "/c.yaml", "not a folder");
  test::expect_refused("train " + dir + "/c.yaml --run-dir /", "--run-dir /: holds ");
  // A run that died while replacing its config left stoch's own temporary: still a run folder.
  test::fs::create_directories(dir + "/died");
  write_text(dir + "/died/config.yaml.tmp.123", "partial");
  EXPECT_EQ(test::run_stoch("train " + dir + "/c.yaml --run-dir " + dir + "/died").code, 0);
  // An empty folder is fine.
  test::fs::create_directories(dir + "/empty");
  const auto r = test::run_stoch("train " + dir + "/c.yaml --run-dir " + dir + "/empty");
  EXPECT_EQ(r.code, 0) << r.output;
}

// A mistyped rank count started hundreds of processes (each with the model) before anything
// could refuse it.
TEST(Cli, AnNprocFarPastTheMachineIsRefused) {
  const std::string dir = test::temp_dir("cli");
  write_text(dir + "/c.yaml", test::tiny_lm_config(2));
  test::expect_train_refused(dir, "--nproc 100000: at most ", " --nproc 100000");
}

// Output that cannot be written in full fails the command (it exited 0, and a config printed
// into a full file system read back with defaults for the keys cut off).
TEST(Cli, OutputThatCannotBeWrittenFailsTheCommand) {
  const std::string config = std::string(STOCH_SOURCE_DIR) + "/configs/quickstart.yaml";
  const auto r =
      test::run_command("{ " + std::string(STOCH_BINARY) + " config " + config + " >/dev/full; }");
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_NE(r.output.find("error stdout: the command's output could not be written in full"),
            std::string::npos)
      << r.output;
  EXPECT_EQ(test::run_command(std::string(STOCH_BINARY) + " config " + config + " >/dev/null").code,
            0);
}

TEST(Cli, MissingDataFileExitsTwoBeforeCreatingTheRun) {
  const std::string dir = test::temp_dir("cli");
  write_text(dir + "/c.yaml", "task: lm\ndata: {source: text, files: [" + dir + "/nope.txt]}\n");
  test::expect_train_refused(dir, "nope.txt: input file not found");
}

TEST(Cli, BadCommandLineExitsTwo) {
  // A word that names no command is named, with the nearest command.
  auto bad = test::run_stoch("trian x.yaml");
  EXPECT_EQ(bad.code, 2);
  EXPECT_EQ(bad.output.rfind("stoch: error: 'trian' is not a command of stoch (did you mean "
                             "train?); its commands: train, ",
                             0),
            0u)
      << bad.output;
  bad = test::run_stoch("data foo");
  EXPECT_EQ(bad.code, 2);
  EXPECT_NE(bad.output.find("'foo' is not a command of stoch data; its commands: prepare, chess"),
            std::string::npos)
      << bad.output;
  EXPECT_EQ(test::run_stoch("train").code, 2);
  const auto r = test::run_stoch("config /nonexistent.yaml");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.output.find("/nonexistent.yaml: config file not found"), std::string::npos)
      << r.output;
}

TEST(Cli, ConfigPrintsResolvedDefaults) {
  const auto r = test::run_stoch(std::string("config ") + STOCH_SOURCE_DIR +
                                 "/configs/quickstart.yaml --set train.steps=7");
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("steps: 7"), std::string::npos);
  EXPECT_NE(r.output.find("keep_last: 2"), std::string::npos);  // a default the file never names
}

// --check builds the run as train would, so a rule only the network knows is found before a
// run is queued; without it the config prints (parsing alone cannot know it).
TEST(Cli, ConfigCheckRefusesWhatTrainRefusesAndWritesNothing) {
  const std::string dir = test::temp_dir("config-check");
  const std::string config = std::string(STOCH_SOURCE_DIR) + "/configs/quickstart.yaml";
  const std::string bad = " --set model.n_head=3";
  EXPECT_EQ(test::run_stoch("config " + config + bad + " --no-docs").code, 0);
  const auto r = test::run_command("cd " + dir + " && " + STOCH_BINARY + " config " + config + bad +
                                   " --check");
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_NE(r.output.find("model.n_head: 3 does not divide model.d_model = 64"), std::string::npos)
      << r.output;
  EXPECT_EQ(r.output.find("steps:"), std::string::npos) << r.output;  // no config printed
  // A hook that needs a language model, on a value task.
  const auto hook = test::run_stoch(std::string("config ") + STOCH_SOURCE_DIR +
                                    "/configs/value/nonstationary.yaml --check --set "
                                    "'hooks=[{name: entropy, every: 10}]'");
  EXPECT_EQ(hook.code, 2) << hook.output;
  EXPECT_NE(hook.output.find("hooks: entropy needs a language model"), std::string::npos)
      << hook.output;
  const auto good = test::run_command("cd " + dir + " && " + STOCH_BINARY + " config " + config +
                                      " --check --no-docs");
  EXPECT_EQ(good.code, 0) << good.output;
  EXPECT_NE(good.output.find("a run of this config builds (no run folder was written)"),
            std::string::npos)
      << good.output;
  EXPECT_NE(good.output.find("n_head: 4"), std::string::npos) << good.output;
  EXPECT_TRUE(test::fs::is_empty(dir)) << "config --check wrote into the current directory";
}

TEST(Config, FirstDifferingKeyIsTheSmallestKeyWhereTheLeavesPart) {
  const std::map<std::string, std::string> a = {{"a.x", "1"}, {"b.y", "2"}, {"c.z", "3"}};
  EXPECT_FALSE(config::first_differing_key(a, a));
  auto b = a;
  b["b.y"] = "5";
  EXPECT_EQ(config::first_differing_key(a, b), "b.y");
  b = a;
  b["a.w"] = "0";  // a key on one side only
  EXPECT_EQ(config::first_differing_key(a, b), "a.w");
  EXPECT_EQ(config::first_differing_key(b, a), "a.w");
  b = a;
  b.erase("c.z");
  EXPECT_EQ(config::first_differing_key(a, b), "c.z");
}

// run.precision: auto is bf16 for a language model on CUDA only; a value network's Q-values stay
// fp32 there, since bf16 would round them to 0.25 near 50. The explicit choices are kept.
TEST(Precision, AutoIsBf16OnlyForALanguageModelOnCuda) {
  const c10::Device cuda(c10::kCUDA, 0), cpu(c10::kCPU);
  EXPECT_TRUE(use_bf16_autocast("auto", cuda, /*language_model=*/true));
  EXPECT_FALSE(use_bf16_autocast("auto", cuda, false));
  EXPECT_FALSE(use_bf16_autocast("auto", cpu, true));
  EXPECT_TRUE(use_bf16_autocast("bf16", cuda, false));
  EXPECT_TRUE(use_bf16_autocast("bf16", cpu, false));
  EXPECT_FALSE(use_bf16_autocast("fp32", cuda, true));
}

}  // namespace
}  // namespace stoch
