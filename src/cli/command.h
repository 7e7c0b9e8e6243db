// The `stoch` subcommands. Each lives in its own file, which registers it next to its code:
//   const bool registered = register_command("eval", "evaluate ...", 40, [](CLI::App& cmd) {
//     auto a = std::make_shared<EvalArgs>();
//     cmd.add_option("run_dir", a->run_dir, "run directory")->required();
//     return [a] { return eval(*a); };
//   });
// A path of two words ("data prepare") puts the command under a group registered with
// register_command_group. A command returns the process exit code; InputError escapes to main,
// which prints it as one line and exits 2.
#pragma once

#include <functional>
#include <string>

#include "core/registry.h"

namespace CLI {
class App;
}

namespace stoch::cli {

using CommandRun = std::function<int()>;

struct CommandEntry {
  std::string doc;
  int rank = 0;  // place in `stoch --help`, lowest first
  // Declares the command's options on its CLI11 subcommand and returns what runs it once
  // parsed. Empty for a group, which only holds subcommands.
  std::function<CommandRun(CLI::App&)> add;
};

inline bool register_command(const std::string& path, std::string doc, int rank,
                             std::function<CommandRun(CLI::App&)> add) {
  return registry<CommandEntry>().add(path, CommandEntry{std::move(doc), rank, std::move(add)});
}

inline bool register_command_group(const std::string& name, std::string doc, int rank) {
  return registry<CommandEntry>().add(name, CommandEntry{std::move(doc), rank, {}});
}

}  // namespace stoch::cli
