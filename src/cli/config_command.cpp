// stoch config: the resolved config with every default and its doc, without running anything.
#include <CLI/CLI.hpp>

#include <iostream>
#include <memory>

#include "cli/command.h"
#include "core/errors.h"
#include "core/log.h"
#include "core/strings.h"
#include "train/experiment.h"
#include "train/trainer.h"

namespace stoch::cli {
namespace {

struct ConfigArgs {
  std::string config;
  std::vector<std::string> sets;
  bool no_docs = false;
  bool check = false;  // also build the run as `train` would
};

int print_config(const ConfigArgs& a) {
  auto cfg = train::parse_experiment(train::load_config(a.config, a.sets));
  if (a.check) {
    train::check_run(cfg);
    log::info(stoch::str(a.config, ": a run of this config builds (no run folder was written)"));
  }
  std::cout << train::to_yaml(cfg, !a.no_docs);
  return kExitOk;
}

const bool registered =
    register_command("config", "print the resolved config with every default, then exit", 30,
                     [](CLI::App& cmd) -> CommandRun {
                       auto a = std::make_shared<ConfigArgs>();
                       cmd.add_option("config", a->config, "YAML config file")->required();
                       cmd.add_option("--set", a->sets, "override a key: KEY=VALUE (repeatable)");
                       cmd.add_flag("--no-docs", a->no_docs, "omit the doc comments");
                       cmd.add_flag("--check", a->check,
                                    "first build the run's data, model, optimiser and hooks as "
                                    "train does (one process), writing nothing; exit 2 on what "
                                    "train would refuse");
                       return [a] { return print_config(*a); };
                     });

}  // namespace
}  // namespace stoch::cli
