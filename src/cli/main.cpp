// The `stoch` executable: builds its command line from the registered subcommands (cli/command.h),
// parses it with CLI11 and runs the one given.
#include <malloc.h>

#include <c10/util/Exception.h>

#include <CLI/CLI.hpp>

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <memory>
#include <utility>
#include <vector>

#include "cli/command.h"
#include "core/cpu_isa.h"
#include "core/errors.h"
#include "core/log.h"
#include "core/registry.h"
#include "core/strings.h"

namespace {

using stoch::cli::CommandEntry;
using stoch::cli::CommandRun;

// Help that shows each option's default as "(default X)", where CLI11 writes "TYPE=X" right
// after a validator's range ("INT:>= 1=200").
class DefaultsFormatter : public CLI::Formatter {
 public:
  std::string make_option_opts(const CLI::Option* opt) const override {
    std::string out = CLI::Formatter::make_option_opts(opt);
    const std::string d = opt->get_default_str();
    if (d.empty() || !opt->get_option_text().empty()) return out;
    const std::string type =
        opt->get_type_name().empty() ? "" : " " + get_label(opt->get_type_name());
    const std::string written = type + "=" + d;
    if (out.compare(0, written.size(), written) != 0) return out;
    return type + " (default " + d + ")" + out.substr(written.size());
  }
};

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

// For "A subcommand is required": the word that named no command (`stoch evl`, `stoch data foo`)
// with the nearest one, or the group left without its command. Empty when options came first,
// where CLI11's own message stands.
std::string missing_command(CLI::App& app, int argc, char** argv) {
  CLI::App* cur = &app;
  std::string path = "stoch";
  const auto names = [&] {
    std::vector<std::string> out;
    for (const CLI::App* sub : cur->get_subcommands({})) out.push_back(sub->get_name());
    return out;
  };
  for (int i = 1; i < argc; ++i) {
    const std::string word = argv[i];
    if (word.empty() || word[0] == '-') return "";
    const auto known = names();
    if (std::find(known.begin(), known.end(), word) == known.end()) {
      const std::string near = stoch::nearest(word, known);
      return "'" + word + "' is not a command of " + path +
             (near.empty() ? "" : " (did you mean " + near + "?)") +
             "; its commands: " + stoch::join(known, ", ");
    }
    cur = cur->get_subcommand(word);
    path += " " + word;
    if (cur->get_subcommands({}).empty()) return "";
  }
  return path + " needs a command: " + stoch::join(names(), ", ");
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
  // Every option's help shows its default (subcommands copy both when they are added).
  app.option_defaults()->always_capture_default();
  auto formatter = std::make_shared<DefaultsFormatter>();
  formatter->column_width(44);  // room for "INT:>= 1 (default 200)" beside most names
  app.formatter(formatter);
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
    std::string what = ex.what();
    if (dynamic_cast<const CLI::RequiredError*>(&ex))
      if (const std::string missing = missing_command(app, argc, argv); !missing.empty())
        what = missing;
    std::cerr << "stoch: error: " << what << " (see stoch --help)\n";
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
