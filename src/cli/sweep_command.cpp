#include "cli/sweep_command.h"

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <set>

#include "cli/checks.h"
#include "cli/children.h"
#include "cli/command.h"
#include "cli/run_dir.h"
#include "cli/sweep_status.h"
#include "core/config_tree.h"
#include "core/cpus.h"
#include "core/errors.h"
#include "core/log.h"
#include "core/output_dir.h"
#include "core/run_lock.h"
#include "core/strings.h"
#include "core/whole_file.h"
#include "train/experiment.h"

namespace fs = std::filesystem;

namespace stoch::cli {
namespace {

// Folder names keep key=value readable but drop characters that paths and shells dislike.
std::string sanitize(const std::string& s) {
  std::string out;
  for (char c : s)
    out += (std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '=' || c == '-' ||
            c == '_')
               ? c
               : '_';
  return out;
}

// This process's environment without NAME=...: runs get the sweep's environment, and the lock
// handover variable only for their own run.
std::vector<std::string> environment_without(const std::string& name) {
  std::vector<std::string> env;
  const std::string prefix = name + "=";
  for (char** e = environ; *e != nullptr; ++e)
    if (std::string(*e).rfind(prefix, 0) != 0) env.emplace_back(*e);
  return env;
}

// The longest name most file systems allow (NAME_MAX).
constexpr size_t kMaxFolderName = 255;
const std::string kConsoleLog = ".console.log";  // RUN.console.log: a run's output, beside it

// The first key (but run.threads, which each call of the sweep passes on) whose value in the
// run's config.yaml differs from the one this sweep would start the run with (`want`, its
// resolved leaves), said as a line; "" when there is none.
std::string first_difference(std::map<std::string, std::string> want, const std::string& dir) {
  const std::string file = dir + "/config.yaml";
  check_run_config_whole(file);
  auto have = train::parse_experiment(train::load_config(file, {}));
  want.erase("run.threads");
  const auto d = config::first_difference(resolved_leaves(have, {"run.threads"}), want);
  if (!d) return "";
  return stoch::str(file, ": ", d->key, " is ", d->a, " where this sweep's config and --set give ",
                    d->b);
}

// A run folder in `out` that is none of `runs` (an earlier call's grid) but holds a run of one
// of `setups` (resolved config but the keys in `skip`, to run name): that run, said as a line.
std::optional<std::string> same_run_under_another_name(
    const std::string& out, const std::vector<SweepRun>& runs,
    const std::map<std::map<std::string, std::string>, std::string>& setups,
    const std::set<std::string>& skip) {
  if (setups.empty()) return std::nullopt;
  std::error_code ec;
  if (!fs::is_directory(out, ec)) return std::nullopt;
  std::set<std::string> names;
  for (const auto& r : runs) names.insert(r.name);
  for (const auto& entry : fs::directory_iterator(out, ec)) {
    const std::string name = entry.path().filename().string();
    const std::string file = (entry.path() / "config.yaml").string();
    if (names.count(name) || !fs::is_regular_file(file, ec)) continue;
    try {
      auto cfg = train::parse_experiment(train::load_config(file, {}));
      const auto same = setups.find(resolved_leaves(cfg, skip));
      if (same != setups.end())
        return stoch::str("--grid: ", same->second, " is the run ", entry.path().string(),
                          " already holds under another folder name (their resolved configs and "
                          "seeds agree: a value written another way, or a key moved between "
                          "--set and --grid); drop the point, or give it as that run was given");
    } catch (const InputError&) {
      // Not a run this stoch reads (another task's, a damaged file): compare says so.
    }
  }
  return std::nullopt;
}

// The message of an error line as stoch's console prints it ("12:34:56 error MESSAGE"); the
// line itself when it has another form.
std::string error_message(const std::string& line) {
  const std::string mark = " error ";
  const auto at = line.find(mark);
  return at == std::string::npos || at > 8 ? line : line.substr(at + mark.size());
}

// Builds run `cmd` describes as `stoch config --check` does, in a child process (a build sets
// process-wide state, such as LibTorch's kernel set, that the sweep's runs must not inherit),
// its output in a file outside the sweep folder. Throws InputError with the child's error when
// the build is refused (exit 2); other failures are left to the runs to report.
void check_first_run(Children& children, const std::string& self, std::vector<std::string> cmd,
                     const std::string& name) {
  const fs::path output =
      fs::temp_directory_path() / stoch::str("stoch-sweep-check-", ::getpid(), ".log");
  cmd[0] = self;
  children.start(cmd, {}, output.string(), kThisExecutable);
  std::optional<Children::Exit> exit;
  while (!exit) exit = children.wait(std::chrono::seconds(1));
  const auto text = read_whole_file(output.string()).value_or("");
  std::error_code ec;
  fs::remove(output, ec);
  if (exit->code != kExitBadInput) return;
  std::string last;
  for (const auto& line : split(text, '\n'))
    if (!line.empty()) last = line;
  throw InputError(stoch::str(error_message(last), " (the sweep's first run, ", name,
                              ", is refused; nothing was started)"));
}

}  // namespace

std::vector<SweepRun> expand_sweep(const SweepArgs& a) {
  // Each run's seed is the sweep's to set: a run.seed of the user's was overridden without a
  // word, and a grid over it made runs that all had the first seed.
  for (const auto& [option, list] : {std::make_pair("--grid", &a.grid), {"--set", &a.sets}})
    for (const auto& g : *list)
      if (config::split_assignment(g, option).first == "run.seed")
        throw InputError(stoch::str(option, " ", g,
                                    ": the sweep gives each run its seed (--seeds N, "
                                    "--first-seed S); use those"));
  std::vector<std::pair<std::string, std::vector<std::string>>> axes;
  for (const auto& g : a.grid) {
    const auto [key, values] = config::split_assignment(g, "--grid");
    auto list = split(values, ',');
    // Values equal as numbers (0.001 and 1e-3) would be one setup counted as two in compare.
    std::map<double, std::string> numbers;
    for (const auto& v : list) {
      if (v.empty()) throw InputError(stoch::str("--grid ", g, ": empty value in the list"));
      char* end = nullptr;
      const double x = std::strtod(v.c_str(), &end);
      if (end == v.c_str() || *end != '\0') continue;
      const auto [it, fresh] = numbers.emplace(x, v);
      if (!fresh)
        throw InputError(
            stoch::str("--grid ", g, ": ", it->second, " and ", v, " are the same value"));
    }
    axes.emplace_back(key, list);
  }
  std::vector<SweepRun> combos = {{"", {}}};
  for (const auto& [key, values] : axes) {
    std::vector<SweepRun> next;
    for (const auto& c : combos)
      for (const auto& v : values) {
        SweepRun r = c;
        r.name += (r.name.empty() ? "" : ",") + sanitize(key + "=" + v);
        r.sets.push_back(key + "=" + v);
        next.push_back(r);
      }
    combos = next;
  }
  if (a.seeds > 0 && a.first_seed > std::numeric_limits<int64_t>::max() - (a.seeds - 1))
    throw InputError(stoch::str("--first-seed ", a.first_seed, " with --seeds ", a.seeds,
                                ": the last seed would pass ",
                                std::numeric_limits<int64_t>::max()));
  std::vector<SweepRun> runs;
  std::set<std::string> names;
  for (const auto& c : combos)
    for (int64_t i = 0; i < a.seeds; ++i) {
      const int64_t s = a.first_seed + i;
      SweepRun r = c;
      r.name += stoch::str(r.name.empty() ? "" : ",", "seed=", s);
      r.sets.push_back(stoch::str("run.seed=", s));
      // The run's console log beside its folder is the longest name made from it.
      if (r.name.size() + kConsoleLog.size() > kMaxFolderName)
        throw InputError(stoch::str("--grid: the folder name ", r.name.substr(0, 40), "... is ",
                                    r.name.size(), " bytes; with ", kConsoleLog,
                                    " that is over the ", kMaxFolderName,
                                    " a file name may hold; use shorter values"));
      if (!names.insert(r.name).second)
        throw InputError(stoch::str("--grid: two grid points share the folder name ", r.name,
                                    " (a repeated value, or values that differ only in characters "
                                    "a folder name replaces with _)"));
      runs.push_back(r);
    }
  return runs;
}

namespace {

// run.threads given with --set or --grid wins over the sweep's share of the cores.
bool sets_threads(const std::vector<std::string>& sets) {
  return std::any_of(sets.begin(), sets.end(), [](const std::string& s) {
    return config::split_assignment(s).first == "run.threads";
  });
}

// One call of `stoch sweep`: its runs and where each stands (survey), what it refuses before
// writing anything, the children it starts J at a time, and its last line.
class SweepCall {
 public:
  explicit SweepCall(const SweepArgs& a)
      : a_(a),
        runs_(expand_sweep(a)),
        out_(a.out.empty() ? "runs/sweep-" + fs::path(a.config).stem().string() : a.out),
        threads_(std::max<int64_t>(1, static_cast<int64_t>(usable_cpus()) / a.jobs)) {}

  int run() {
    survey();
    if (a_.status) {
      for (const auto& d : differing_) log::warn("sweep: " + d);
      return print_status(out_, runs_, progress_, a_.jobs);
    }
    refuse_what_would_mix();
    for (size_t i = 0; i < runs_.size(); ++i) {
      if (progress_[i].state == RunState::kFinished) {
        log::info(stoch::str("sweep: ", runs_[i].name, " finished; skipping"));
      } else if (const auto owner = run_lock_owner(dir(i))) {
        leave(i, *owner);
      } else {
        todo_.push_back(i);
      }
    }
    children_.emplace();
    // A fault every run shares (a data folder not prepared, keys the task refuses together) is
    // said once, before anything is written, instead of by each run in turn.
    if (!todo_.empty() && progress_[todo_[0]].state != RunState::kInterrupted) {
      std::vector<std::string> check = {"stoch", "config", a_.config, "--check", "--no-docs"};
      const auto sets = set_args(todo_[0]);
      check.insert(check.end(), sets.begin(), sets.end());
      check_first_run(*children_, self_, check, runs_[todo_[0]].name);
      if (const int sig = children_->signal()) return 128 + sig;
    }
    make_output_dir(out_, "--out");
    announce();
    for (;;) {
      while (!children_->signal() && next_ < todo_.size() &&
             static_cast<int64_t>(running_.size()) < a_.jobs)
        launch(todo_[next_++]);
      if (running_.empty() || children_->running() == 0) break;
      if (const auto exit = children_->wait(std::chrono::seconds(1))) ended(*exit);
    }
    return last_line();
  }

 private:
  std::string dir(size_t i) const { return out_ + "/" + runs_[i].name; }

  // Each run's config (every one validated before any starts, so a typo fails at once with
  // exit 2), where it stands, and what would make the sweep mix runs.
  void survey() {
    const config::Node base = train::load_config(a_.config, a_.sets);
    // Each run's resolved config, to its name: one setup and seed twice would be one sample
    // that compare counts twice. run.threads is each call's share of the cores, so it is left
    // out, unless the grid itself varies it (a thread-scaling sweep).
    skip_ = sets_threads(a_.grid) ? std::set<std::string>{} : std::set<std::string>{"run.threads"};
    std::map<std::map<std::string, std::string>, std::string> setups;
    for (size_t i = 0; i < runs_.size(); ++i) {
      config::Node point = base;
      for (const auto& s : runs_[i].sets) config::apply_override(point, s, "--grid");
      auto cfg = train::parse_experiment(point);
      progress_.push_back(progress_of(dir(i), cfg.train.steps));
      auto leaves = resolved_leaves(cfg, skip_);
      const auto [same, fresh] = setups.emplace(leaves, runs_[i].name);
      if (!fresh && !twice_)
        twice_ = stoch::str("--grid: ", same->second, " and ", runs_[i].name,
                            " are one run (a value written two ways: their resolved configs "
                            "agree); give each value once");
      if (progress_.back().state == RunState::kFresh) {
        // Only a run not begun yet can duplicate one under another name: a begun one resumes.
        fresh_setups_.emplace(std::move(leaves), runs_[i].name);
      } else if (auto d = first_difference(std::move(leaves), dir(i)); !d.empty()) {
        // A run to resume or skip keeps its own config.yaml (a fresh one is trained anew).
        differing_.push_back(std::move(d));
      }
    }
  }

  void refuse_what_would_mix() const {
    if (twice_) throw InputError(*twice_);
    if (const auto earlier = same_run_under_another_name(out_, runs_, fresh_setups_, skip_))
      throw InputError(*earlier);
    // compare takes runs that differ only in such keys for one setup (and refuses one seed twice).
    const auto rounding_only = train::same_setup_keys();
    for (const auto& g : a_.grid) {
      const std::string key = config::split_assignment(g, "--grid").first;
      if (std::find(rounding_only.begin(), rounding_only.end(), key) != rounding_only.end())
        log::warn(stoch::str("sweep: --grid ", key,
                             " changes at most rounding (`stoch config` says so): compare counts "
                             "its values as one setup, and refuses two runs of one seed"));
    }
    if (!differing_.empty())
      throw InputError(stoch::str(
          differing_[0], " (", counted(static_cast<int64_t>(differing_.size()), "run"),
          " begun with other settings; the sweep would mix them: give its first config and "
          "--set, or another --out)"));
  }

  void announce() const {
    log::info(stoch::str("sweep: ", runs_.size(), " runs in ", out_, ", ", todo_.size(), " to do, ",
                         a_.jobs, " at a time, ",
                         sets_threads(a_.sets) ? std::string("run.threads as set")
                                               : stoch::str(counted(threads_, "thread"), " each")));
    if (!todo_.empty()) log::info("sweep: " + sweep_summary(runs_, progress_, a_.jobs));
    // Each run warns in its own log, which a sweep's user does not watch: the sweep says it too.
    const bool threads_chosen = sets_threads(a_.sets) ||
                                std::any_of(runs_.begin(), runs_.end(),
                                            [](const SweepRun& r) { return sets_threads(r.sets); });
    if (!threads_chosen && !todo_.empty()) {
      const int jobs = static_cast<int>(std::min<size_t>(a_.jobs, todo_.size()));
      if (const auto busy = busy_machine_sweep_warning(static_cast<int>(threads_), jobs);
          !busy.empty())
        log::warn("sweep: " + busy);
    }
  }

  // Run i is being written by another process (another sweep, a train or a resume): it is left
  // to it and looked at again at the end.
  void leave(size_t i, const std::string& owner) {
    progress_[i].running = true;
    log::warn(stoch::str("sweep: ", runs_[i].name, " is being written by another process (", owner,
                         "); skipping it"));
    left_to_others_.push_back(i);
  }

  // The --set arguments run i is started with: the sweep's, its grid point's, its threads (only
  // the threads when it is resumed: its config.yaml holds the rest). The threads are the last
  // run.threads given, else the sweep's share; a resumed run gets them too, so this call's
  // --jobs or --set run.threads reaches runs begun by another.
  std::vector<std::string> set_args(size_t i) const {
    std::vector<std::string> sets = a_.sets;
    sets.insert(sets.end(), runs_[i].sets.begin(), runs_[i].sets.end());
    std::string threads = stoch::str("run.threads=", threads_);
    for (const auto& s : sets)
      if (config::split_assignment(s).first == "run.threads") threads = s;
    std::vector<std::string> args;
    if (progress_[i].state != RunState::kInterrupted)
      for (const auto& s : sets) args.insert(args.end(), {"--set", s});
    args.insert(args.end(), {"--set", threads});
    return args;
  }

  // The command for run i as its folder stands now: resume from its checkpoint, else train.
  std::vector<std::string> command_for(size_t i) const {
    std::vector<std::string> cmd = {self_};
    if (progress_[i].state == RunState::kInterrupted)
      cmd.insert(cmd.end(), {"resume", dir(i)});
    else
      cmd.insert(cmd.end(), {"train", a_.config, "--run-dir", dir(i)});
    const auto sets = set_args(i);
    cmd.insert(cmd.end(), sets.begin(), sets.end());
    return cmd;
  }

  // Claimed before the launch: the sweep takes the run's lock, looks at the run again under it
  // and hands the lock to the process it starts, so nothing else can take the run in between,
  // and sweeps sharing a folder split it. A run another process has finished or is writing since
  // this sweep began is left to it.
  void launch(size_t i) {
    const std::string& name = runs_[i].name;
    make_output_dir(dir(i), "--out");
    std::string owner;
    const auto claim = RunLock::try_take(dir(i), owner);
    if (!claim) {
      leave(i, owner.empty() ? "owner unknown" : owner);
      return;
    }
    progress_[i] = progress_of(dir(i), progress_[i].steps);
    if (progress_[i].state == RunState::kFinished) {
      log::info(stoch::str("sweep: ", name, " was finished by another process; skipping"));
      return;
    }
    const auto cmd = command_for(i);
    log::info(stoch::str("sweep: ", cmd[1] == "resume" ? "resuming " : "starting ", name));
    // Kept until the child has started; from then on only the child holds the lock.
    const RunLock::Handover handover = claim->hand_over();
    std::vector<std::string> env = environment_without(RunLock::kHandoverEnv);
    if (!handover.env().empty()) env.push_back(handover.env());
    running_[children_->start(cmd, env, dir(i) + kConsoleLog, kThisExecutable)] = i;
  }

  void ended(const Children::Exit& exit) {
    const size_t i = running_[exit.pid];
    const std::string& name = runs_[i].name;
    running_.erase(exit.pid);
    if (exit.code == 0) {
      refresh_progress(out_, runs_, progress_);
      log::info(stoch::str("sweep: ", name, " done; ", sweep_summary(runs_, progress_, a_.jobs)));
    } else if (children_->signal() && exit.code == 128 + children_->signal()) {
      stopped_.push_back(i);
      log::info(stoch::str("sweep: ", name, " stopped"));
    } else {
      ++failed_;
      refused_ += exit.code == kExitBadInput ? 1 : 0;
      log::warn(stoch::str("sweep: ", name, " exited with ", exit.code, " (see ", dir(i),
                           kConsoleLog, ")"));
    }
  }

  // The sweep's last line and exit code.
  int last_line() {
    if (const int sig = children_->signal()) {
      // A run signalled while still setting up ends before its first checkpoint: say so, rather
      // than count it as kept.
      refresh_progress(out_, runs_, progress_);
      const auto kept = std::count_if(stopped_.begin(), stopped_.end(),
                                      [&](size_t i) { return progress_[i].step > 0; });
      const auto lost = static_cast<std::ptrdiff_t>(stopped_.size()) - kept;
      log::error(stoch::str("sweep: stopped by ", sig == SIGINT ? "SIGINT" : "SIGTERM", "; ", kept,
                            " runs stopped at a checkpoint, ",
                            lost ? stoch::str(lost, " stopped before their first one, ") : "",
                            todo_.size() - next_,
                            " not started; re-run the same command to continue"));
      return 128 + sig;
    }
    if (failed_) {
      // A refused input fails again as it is: retrying helps only runs that failed otherwise.
      log::error(stoch::str("sweep: ", failed_, " runs failed",
                            refused_ ? stoch::str(" (", refused_,
                                                  " refused their input, exit 2: fix what their "
                                                  "console logs name first)")
                                     : "",
                            "; re-run the same command to retry them"));
      return kExitFailure;
    }
    // Runs left to other processes that have finished meanwhile complete this sweep too.
    refresh_progress(out_, runs_, progress_);
    const auto busy = static_cast<size_t>(
        std::count_if(left_to_others_.begin(), left_to_others_.end(),
                      [&](size_t i) { return progress_[i].state != RunState::kFinished; }));
    if (busy) {
      log::error(stoch::str("sweep: ", busy,
                            " runs were left to the processes writing them; re-run the same "
                            "command once they stop to finish the sweep"));
      return kExitFailure;
    }
    log::info(stoch::str("sweep: all runs finished in ", out_,
                         "; compare them with `stoch compare ", shell_word(out_), "`"));
    return kExitOk;
  }

  const SweepArgs& a_;
  const std::vector<SweepRun> runs_;
  const std::string out_;
  const int64_t threads_;  // each run's share of the cores
  std::vector<Progress> progress_;
  std::vector<std::string> differing_;  // runs begun with other settings than this call's
  std::set<std::string> skip_;          // keys left out when runs are compared
  std::map<std::map<std::string, std::string>, std::string> fresh_setups_;
  std::optional<std::string> twice_;
  std::vector<size_t> todo_, left_to_others_;
  std::vector<size_t> stopped_;  // runs that ended on the sweep's signal
  // Runs are children that stop with the sweep: a signal to it checkpoints every running run.
  // Made once the sweep is about to start them (it takes over SIGINT and SIGTERM).
  std::optional<Children> children_;
  const std::string self_ = this_executable();
  std::map<pid_t, size_t> running_;             // child pid -> run index
  size_t next_ = 0, failed_ = 0, refused_ = 0;  // refused: exit 2, the run's input
};

}  // namespace

int sweep(const SweepArgs& a) {
  return SweepCall(a).run();
}

namespace {

const bool registered = register_command(
    "sweep", "run a grid of configs times seeds (re-run to continue)", 90,
    [](CLI::App& cmd) -> CommandRun {
      auto a = std::make_shared<SweepArgs>();
      cmd.add_option("config", a->config, "YAML config file")->required();
      cmd.add_option("--grid", a->grid, "KEY=V1,V2,... (repeatable; the grid is their product)");
      cmd.add_option("--set", a->sets, "KEY=VALUE applied to every run");
      cmd.add_option("--seeds", a->seeds, "seeds per grid point")->check(integer_in(1));
      cmd.add_option("--first-seed", a->first_seed, "first seed (then +1 each)")
          ->check(integer_in(0));
      cmd.add_option("--jobs", a->jobs, "runs at a time; CPU threads are shared among them")
          ->check(integer_in(1));
      cmd.add_option("--out", a->out, "sweep folder (default runs/sweep-<config name>)");
      cmd.add_flag("--status", a->status,
                   "print where each run stands (finished, running, interrupted, not started), "
                   "its pace, the share of steps checkpointed and the time left at --jobs; "
                   "start nothing");
      return [a] { return sweep(*a); };
    });

}  // namespace
}  // namespace stoch::cli
