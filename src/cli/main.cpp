// The `stoch` executable: builds its command line from the registered subcommands (cli/command.h),
// parses it with CLI11 and runs the one given.
#include <malloc.h>

#include <c10/util/Exception.h>

#include <CLI/CLI.hpp>

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <utility>
#include <vector>

#include "cli/command.h"
#include "core/cpu_isa.h"
#include "core/errors.h"
#include "core/log.h"
#include "core/registry.h"

namespace {

using stoch::cli::CommandEntry;
using stoch::cli::CommandRun;

// Adds every registered command (and the groups holding them) in --help order; returns each
// command's subcommand with what runs it.
std::vector<std::pair<CLI::App*, CommandRun>> add_commands(CLI::App& app) {
  const auto& commands = stoch::registry<CommandEntry>();
  std::vector<std::string> paths = commands.names();
  std::stable_sort(paths.begin(), paths.end(), [&](const std::string& a, const std::string& b) {
    return commands.find(a)->rank < commands.find(b)->rank;
  });
  std::vector<std::pair<CLI::App*, CommandRun>> out;
  for (const auto& path : paths) {
    const CommandEntry& e = *commands.find(path);
    const size_t space = path.find(' ');
    CLI::App* parent = &app;
    if (space != std::string::npos) {
      const std::string group = path.substr(0, space);
      if (!commands.find(group)) throw std::logic_error("command " + path + " has no group");
      parent = app.get_subcommand(group);  // added before its members: groups rank lower
    }
    CLI::App* sub = parent->add_subcommand(path.substr(space + 1), e.doc);
    if (e.add)
      out.emplace_back(sub, e.add(*sub));
    else
      sub->require_subcommand(1);
  }
  return out;
}

// A command's output on stdout (a printed config, eval's line, samples) that could not be
// written in full (a full disk, /dev/full) fails the command: exit 0 would pass off a file cut
// short, which a config read back fills with defaults.
int with_output_written(int code) {
  std::cout.flush();
  const bool failed = std::fflush(stdout) != 0 || std::ferror(stdout) || std::cout.fail();
  if (!failed) return code;
  stoch::log::error(
      "stdout: the command's output could not be written in full (a full disk, or a closed "
      "pipe?)");
  return code == stoch::kExitOk ? stoch::kExitFailure : code;
}

}  // namespace

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
  const auto commands = add_commands(app);

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
    for (const auto& [sub, run] : commands)
      if (*sub) return with_output_written(run());
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
